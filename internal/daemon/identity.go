package daemon

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/store"
)

// IdentityFile is the file in the store's metadata folder that names the
// file system. It is written once, at the first mount, and never changed:
// the id is what associations, the catalog and clients refer to.
const IdentityFile = "filesystem.json"

// Identity is the content of IdentityFile.
type Identity struct {
	FileSystemId  string    // fs- and 17 lowercase hex digits
	CreationTime  time.Time // when the store was first mounted
	FormatVersion int       // of the store layout; 1
}

// NewFileSystemID returns "fs-" and 17 random lowercase hex digits (68 bits
// from crypto/rand), the shape of an FSx file system id.
func NewFileSystemID() (string, error) {
	var b [9]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "fs-" + hex.EncodeToString(b[:])[:17], nil
}

// LoadIdentity reads the identity of the store at st, or initialises it on
// the first mount (created is then true). Initialisation is atomic and safe
// against a concurrent first mount from another node of a shared store: the
// file is written under a temporary name, fsynced, and renamed into place
// with RENAME_NOREPLACE; whoever loses the race reads the winner's file.
func LoadIdentity(st *store.Store) (id Identity, created bool, err error) {
	dir, err := unix.Open(st.MetaPath(), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return id, false, fmt.Errorf("open %s: %w", st.MetaPath(), err)
	}
	defer unix.Close(dir)
	id, err = readIdentity(dir)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		if err != nil {
			err = fmt.Errorf("%s/%s: %w", st.MetaPath(), IdentityFile, err)
		}
		return id, false, err
	}
	fsid, err := NewFileSystemID()
	if err != nil {
		return id, false, err
	}
	id = Identity{FileSystemId: fsid, CreationTime: time.Now().UTC().Truncate(time.Second), FormatVersion: 1}
	data, err := json.MarshalIndent(id, "", "  ")
	if err != nil {
		return id, false, err
	}
	data = append(data, '\n')
	tmp := IdentityFile + ".tmp." + fsid
	if err := writeFileAt(dir, tmp, data); err != nil {
		return id, false, fmt.Errorf("write %s/%s: %w", st.MetaPath(), tmp, err)
	}
	if err := unix.Renameat2(dir, tmp, dir, IdentityFile, unix.RENAME_NOREPLACE); err != nil {
		unix.Unlinkat(dir, tmp, 0)
		if err == unix.EEXIST {
			id, err = readIdentity(dir)
			return id, false, err
		}
		return id, false, fmt.Errorf("create %s/%s: %w", st.MetaPath(), IdentityFile, err)
	}
	if err := unix.Fsync(dir); err != nil {
		return id, false, fmt.Errorf("fsync %s: %w", st.MetaPath(), err)
	}
	return id, true, nil
}

func readIdentity(dir int) (Identity, error) {
	var id Identity
	fd, err := unix.Openat(dir, IdentityFile, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			return id, os.ErrNotExist
		}
		return id, err
	}
	f := os.NewFile(uintptr(fd), IdentityFile)
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return id, err
	}
	if err := json.Unmarshal(data, &id); err != nil || !mounts.ValidID(id.FileSystemId) {
		if err == nil {
			err = fmt.Errorf("FileSystemId %q is not fs- and 17 lowercase hex digits", id.FileSystemId)
		}
		return id, fmt.Errorf("corrupt identity file (%v); restore it from a backup rather than removing it: a new id would no longer match the file system's associations and clients", err)
	}
	return id, nil
}

// writeFileAt creates name in dir (which must not exist) with data, fsynced.
func writeFileAt(dir int, name string, data []byte) error {
	fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(dir, name, 0)
	}
	return err
}
