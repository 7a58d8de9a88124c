package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-hpc/ferry/internal/hsm"
	"golang.org/x/sys/unix"
)

// Stub describes a file imported from an object: its data stays in the
// repository until read.
type Stub struct {
	Size      int64     // object size
	Mode      uint32    // permission bits (07777); type bits, if any, must be S_IFREG
	UID, GID  int       // owner; -1 keeps the daemon's
	Mtime     time.Time // zero: now
	Atime     time.Time // zero: Mtime
	ETag      string
	Flags     hsm.Flags // normally hsm.Imported(); must include released
	ChunkSize int64     // the association's ImportedFileChunkSize in bytes
}

// stubStep is called after each step of stub creation; a test helper
// process replaces it to die at a given step.
var stubStep = func(step string) {}

// CreateStub creates rel as a stub: a sparse file of st.Size bytes with no
// data, st's owner, mode and times, and a state record (st.Flags, ETag,
// size, an empty chunk map). It fails with EEXIST if rel exists.
//
// It is one crash-safe step: the file is made under a temporary name
// (TempPrefix + random) in the same directory, gets its size, state xattr,
// owner, mode and times, and only then is renamed into place with
// RENAME_NOREPLACE. A crash at any point leaves either no rel at all or a
// complete stub, never a stub without its state; a leftover temporary file
// is invisible through the Store and RemoveTempStubs deletes it.
//
// The new name is not fsynced: on a journaling file system the rename is
// ordered after the xattr it follows. A batch import makes a directory's
// new names durable with one SyncDir before it marks the directory listed.
func (s *Store) CreateStub(rel string, st Stub) error {
	fd, base, release, err := s.parent(rel, true)
	if err != nil {
		return pathErr("create stub", rel, err)
	}
	defer release()
	tmp, err := s.makeStub(fd, st, 0)
	if err != nil {
		return pathErr("create stub", rel, err)
	}
	if err := unix.Renameat2(fd, tmp, fd, base, unix.RENAME_NOREPLACE); err != nil {
		unix.Unlinkat(fd, tmp, 0)
		return pathErr("create stub", rel, err)
	}
	stubStep("renamed")
	return nil
}

// ErrChanged: ReplaceStub found the file changed locally meanwhile.
var ErrChanged = errors.New("file changed locally while being replaced")

// ReplaceStub replaces rel, a file whose object CHANGED, with a stub of the
// new object (auto-import CHANGED). check is called with the state of the
// file being replaced and refuses by returning an error — the importer
// passes a check built on hsm.Reimport, keeping invariant 6 (an import never
// discards unexported local changes). The stub's content version is the old
// one plus one, so an exporter holding the old version sees a change.
//
// The swap is atomic (RENAME_EXCHANGE) and verified afterwards: if the
// replaced file's state changed between the check and the swap (a local
// write bumps the version), the swap is undone and ErrChanged returned. A
// writer that keeps the file open past the swap writes to the unlinked old
// inode; the mount must not replace a file it has open for writing.
// A missing rel is simply created.
func (s *Store) ReplaceStub(rel string, st Stub, check func(old State) error) error {
	fd, base, release, err := s.parent(rel, true)
	if err != nil {
		return pathErr("replace stub", rel, err)
	}
	defer release()
	oldState := func(name string) (State, error) {
		var o State
		err := s.withPathFdAt(fd, name, func(proc string) error {
			p, err := readXattr(-1, proc)
			if err != nil {
				return err
			}
			o, err = s.decode(p)
			return err
		})
		return o, err
	}
	old, err := oldState(base)
	switch {
	case errors.Is(err, unix.ENOENT):
		return s.CreateStub(rel, st)
	case errors.Is(err, ErrNoState):
		// A local file never exported: the check sees flags 0.
	case err != nil:
		return pathErr("replace stub", rel, err)
	}
	if err := check(old); err != nil {
		return pathErr("replace stub", rel, err)
	}
	tmp, err := s.makeStub(fd, st, old.Version+1)
	if err != nil {
		return pathErr("replace stub", rel, err)
	}
	if err := unix.Renameat2(fd, tmp, fd, base, unix.RENAME_EXCHANGE); err != nil {
		unix.Unlinkat(fd, tmp, 0)
		return pathErr("replace stub", rel, err)
	}
	// tmp is now the old file.
	now, err := oldState(tmp)
	if errors.Is(err, ErrNoState) {
		err = nil
	}
	if err == nil && (now.Version != old.Version || now.Flags != old.Flags) {
		err = ErrChanged
	}
	if err != nil {
		if xerr := unix.Renameat2(fd, tmp, fd, base, unix.RENAME_EXCHANGE); xerr != nil {
			// Cannot swap back: leave both, the old one under the
			// temporary name is kept for recovery to report.
			return pathErr("replace stub", rel, fmt.Errorf("%w; swapping back failed: %v", err, xerr))
		}
		unix.Unlinkat(fd, tmp, 0)
		return pathErr("replace stub", rel, err)
	}
	if err := unix.Unlinkat(fd, tmp, 0); err != nil {
		return pathErr("replace stub", rel, err)
	}
	if old.MapID != nil && s.maps != nil {
		_ = s.maps.DeleteChunkMap(*old.MapID)
	}
	return nil
}

// makeStub creates a complete stub under a temporary name in directory fd
// and returns the name.
func (s *Store) makeStub(dirfd int, st Stub, version hsm.Version) (string, error) {
	if st.Size < 0 {
		return "", fmt.Errorf("negative size %d: %w", st.Size, unix.EINVAL)
	}
	if t := st.Mode & unix.S_IFMT; t != 0 && t != unix.S_IFREG {
		return "", fmt.Errorf("stub mode %#o is not a regular file: %w", st.Mode, unix.EINVAL)
	}
	if err := st.Flags.Check(); err != nil || !st.Flags.Has(hsm.Released) {
		if err == nil {
			err = errors.New("a stub must be released")
		}
		return "", fmt.Errorf("stub flags %s: %w", st.Flags, withErrno(err, unix.EINVAL))
	}
	chunks, err := NewBitmap(st.Size, st.ChunkSize)
	if err != nil {
		return "", withErrno(err, unix.EINVAL)
	}
	state := State{Flags: st.Flags, Size: st.Size, ETag: st.ETag, Version: version, Chunks: chunks}
	rec, err := s.encode(&state)
	if err != nil {
		return "", err
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	tmp := TempPrefix + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(dirfd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	stubStep("created")
	fail := func(err error) (string, error) {
		unix.Close(fd)
		unix.Unlinkat(dirfd, tmp, 0)
		return "", err
	}
	if err := unix.Ftruncate(fd, st.Size); err != nil {
		return fail(err)
	}
	stubStep("truncated")
	if err := unix.Fsetxattr(fd, StateXattr, rec, 0); err != nil {
		return fail(err)
	}
	stubStep("xattr")
	if st.UID >= 0 || st.GID >= 0 {
		if err := unix.Fchown(fd, st.UID, st.GID); err != nil {
			return fail(err)
		}
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return fail(err)
	}
	mtime := st.Mtime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	atime := st.Atime
	if atime.IsZero() {
		atime = mtime
	}
	if err := unix.UtimesNanoAt(dirfd, tmp, []unix.Timespec{Timespec(atime), Timespec(mtime)}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fail(err)
	}
	if err := unix.Close(fd); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return "", err
	}
	stubStep("attrs")
	return tmp, nil
}

// withPathFdAt opens name in directory dirfd O_PATH without following it
// and calls fn with a /proc/self/fd path to it; symlinks are refused.
func (s *Store) withPathFdAt(dirfd int, name string, fn func(proc string) error) error {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return withErrno(ErrSymlinkState, unix.EPERM)
	}
	return fn(procFd(fd))
}
