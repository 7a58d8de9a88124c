package store

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unsafe"

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

// CreateStub creates rel as a stub: a sparse file of st.Size bytes with no
// data, st's owner, mode and times, and a state record (st.Flags, ETag,
// size, an empty chunk map). It fails with EEXIST if rel exists.
//
// It is one crash-safe step: the file is made without a name, or under a
// temporary one, gets its size, state xattr, owner, mode and times, and
// only then gets rel as its name, by an operation that never replaces an
// existing entry. A crash at any point leaves either no rel at all or a
// complete stub, never a stub without its state (invariant 7).
//
// Two ways, the first preferred:
//
//   - O_TMPFILE: an unnamed inode in rel's directory, completed through its
//     descriptor and linked in with linkat(2) (which fails with EEXIST,
//     never replaces). A crash before the link leaves nothing at all: the
//     kernel frees the inode. On a journaled ext4 it costs 0.6–0.7× the
//     other way (BenchmarkCreateStub), which matters because a lazy
//     listing import creates one stub per object.
//   - The fallback, for file systems without O_TMPFILE or without hard
//     links (NFS, older kernels, some FUSE file systems): a file named
//     TempPrefix + random in rel's directory, renamed into place with
//     RENAME_NOREPLACE. A crash can leave the temporary file; it is
//     invisible through the Store and RemoveTempStubs deletes it.
//
// The first O_TMPFILE refusal of the file system (EOPNOTSUPP, EISDIR,
// EINVAL, ENOSYS at open; EPERM, EOPNOTSUPP, ENOSYS at link; ENOENT from a
// call on the unnamed file or its link while the directory is still there)
// switches the Store to the fallback for good, so the refusal is paid once.
//
// The new name is not fsynced: on a journaling file system the link or
// rename is ordered after the xattr it follows. A batch import makes a
// directory's new names durable with one SyncDir before it marks the
// directory listed.
func (s *Store) CreateStub(rel string, st Stub) error {
	fd, base, release, err := s.parent(rel, true)
	if err != nil {
		return pathErr("create stub", rel, err)
	}
	defer release()
	rec, times, err := s.prepareStub(st, 0)
	if err != nil {
		return pathErr("create stub", rel, err)
	}
	return pathErr("create stub", rel, s.inDir(fd, func() error { return s.createStubAt(fd, base, st, rec, times) }))
}

// createStubAt is CreateStub in directory fd, by one of its two ways.
func (s *Store) createStubAt(fd int, base string, st Stub, rec []byte, times *[2]unix.Timespec) error {
	if !s.noTmpfile.Load() {
		err := s.createStubTmpfile(fd, base, st, rec, times)
		if err != errNoTmpfile {
			return err
		}
	}
	tmp, err := s.makeStub(fd, st, rec, times)
	if err != nil {
		return err
	}
	if err := unix.Renameat2(fd, tmp, fd, base, unix.RENAME_NOREPLACE); err != nil {
		unix.Unlinkat(fd, tmp, 0)
		return err
	}
	s.stubStep("renamed") // the stub is complete: nothing left to fail
	return nil
}

// errNoTmpfile: the file system refused O_TMPFILE or linking its file;
// CreateStub falls back to a temporary name.
var errNoTmpfile = errors.New("O_TMPFILE unsupported")

// createStubTmpfile is CreateStub's O_TMPFILE way: an unnamed inode in
// directory dirfd, completed, then linked in as base. On any failure before
// the link there is nothing to remove: the inode has no name and is freed
// with its descriptor. It answers errNoTmpfile (and remembers it) when the
// file system cannot do this, before anything visible happened.
func (s *Store) createStubTmpfile(dirfd int, base string, st Stub, rec []byte, times *[2]unix.Timespec) error {
	fd, err := unix.Openat(dirfd, ".", unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	switch err {
	case nil:
	case unix.EOPNOTSUPP, unix.EISDIR, unix.EINVAL, unix.ENOSYS:
		// EISDIR: a kernel without O_TMPFILE sees O_DIRECTORY|O_RDWR.
		s.noTmpfile.Store(true)
		return errNoTmpfile
	default:
		return err
	}
	// Closing can fail only by losing written data, and none is written:
	// every attribute below is set by a call that reported its result.
	defer unix.Close(fd)
	if err := s.stubStep("created"); err != nil {
		return err
	}
	if err := s.fillStub(fd, st, rec, times); err != nil {
		return s.unnamedRefused(dirfd, err)
	}
	switch err := s.linkTmpfile(fd, dirfd, base); err {
	case nil:
	case unix.EPERM, unix.EOPNOTSUPP, unix.ENOSYS:
		// No hard links on this file system (EPERM is also a real
		// refusal, e.g. an immutable directory: the fallback then
		// answers it, and only speed is lost).
		s.noTmpfile.Store(true)
		return errNoTmpfile
	default:
		return s.unnamedRefused(dirfd, err)
	}
	s.stubStep("renamed") // the stub is complete: nothing left to fail
	return nil
}

// unnamedRefused returns errNoTmpfile, and remembers it, when err, from a
// call on the unnamed file or from linking it, is ENOENT while directory
// dirfd is still there: the file system makes O_TMPFILE files but works on
// them by path, which they lack (go-fuse's loopback: setxattr and link).
// A removed directory (link count 0) is a real ENOENT; any other error is
// returned as it is.
func (s *Store) unnamedRefused(dirfd int, err error) error {
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	var dst unix.Stat_t
	if unix.Fstat(dirfd, &dst) != nil || dst.Nlink == 0 {
		return err
	}
	s.noTmpfile.Store(true)
	return errNoTmpfile
}

// linkTmpfile gives the O_TMPFILE file fd the name base in dirfd. linkat
// with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH, which a root daemon has;
// without it the kernel answers ENOENT and the link goes through
// /proc/self/fd (Open checked /proc is there), remembered per Store.
func (s *Store) linkTmpfile(fd, dirfd int, base string) error {
	if !s.linkByProc.Load() {
		err := unix.Linkat(fd, "", dirfd, base, unix.AT_EMPTY_PATH)
		if err != unix.ENOENT {
			return err
		}
		// ENOENT is also a real answer (dirfd's directory was removed):
		// switch only if the other way works.
		if err := linkProc(fd, dirfd, base); err != nil {
			return err
		}
		s.linkByProc.Store(true)
		return nil
	}
	return linkProc(fd, dirfd, base)
}

func linkProc(fd, dirfd int, base string) error {
	return unix.Linkat(unix.AT_FDCWD, procFd(fd), dirfd, base, unix.AT_SYMLINK_FOLLOW)
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
	return s.inDir(fd, func() error { return s.replaceStubAt(fd, base, rel, st, check) })
}

// replaceStubAt is ReplaceStub of base in directory fd (rel's parent).
func (s *Store) replaceStubAt(fd int, base, rel string, st Stub, check func(old State) error) error {
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
	rec, times, err := s.prepareStub(st, old.Version+1)
	if err != nil {
		return pathErr("replace stub", rel, err)
	}
	tmp, err := s.makeStub(fd, st, rec, times)
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

// prepareStub checks st and returns its encoded state record (content
// version version) and its access and modification times.
func (s *Store) prepareStub(st Stub, version hsm.Version) ([]byte, *[2]unix.Timespec, error) {
	if st.Size < 0 {
		return nil, nil, fmt.Errorf("negative size %d: %w", st.Size, unix.EINVAL)
	}
	if t := st.Mode & unix.S_IFMT; t != 0 && t != unix.S_IFREG {
		return nil, nil, fmt.Errorf("stub mode %#o is not a regular file: %w", st.Mode, unix.EINVAL)
	}
	if err := st.Flags.Check(); err != nil || !st.Flags.Has(hsm.Released) {
		if err == nil {
			err = errors.New("a stub must be released")
		}
		return nil, nil, fmt.Errorf("stub flags %s: %w", st.Flags, withErrno(err, unix.EINVAL))
	}
	chunks, err := NewBitmap(st.Size, st.ChunkSize)
	if err != nil {
		return nil, nil, withErrno(err, unix.EINVAL)
	}
	state := State{Flags: st.Flags, Size: st.Size, ETag: st.ETag, Version: version, Chunks: chunks}
	rec, err := s.encode(&state)
	if err != nil {
		return nil, nil, err
	}
	mtime := st.Mtime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	atime := st.Atime
	if atime.IsZero() {
		atime = mtime
	}
	return rec, &[2]unix.Timespec{Timespec(atime), Timespec(mtime)}, nil
}

// fillStub gives the new empty file fd st's size, the state record rec,
// st's owner and mode, and times.
func (s *Store) fillStub(fd int, st Stub, rec []byte, times *[2]unix.Timespec) error {
	if err := unix.Ftruncate(fd, st.Size); err != nil {
		return err
	}
	if err := s.stubStep("truncated"); err != nil {
		return err
	}
	if err := unix.Fsetxattr(fd, StateXattr, rec, 0); err != nil {
		return err
	}
	if err := s.stubStep("xattr"); err != nil {
		return err
	}
	if st.UID >= 0 || st.GID >= 0 {
		if err := unix.Fchown(fd, st.UID, st.GID); err != nil {
			return err
		}
	}
	// After the chown, which clears set-user-ID and set-group-ID bits.
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return err
	}
	if err := Futimens(fd, times); err != nil {
		return err
	}
	return s.stubStep("attrs")
}

// stubStep runs the test hook of the stub creation step just done
// (testHooks.stubStep); without one it does nothing.
func (s *Store) stubStep(step string) error {
	if s.hooks.stubStep == nil {
		return nil
	}
	return s.hooks.stubStep(step)
}

// Futimens sets the access and modification times of the open file fd
// (utimensat with a NULL path; x/sys/unix has no futimens). UtimeOmit
// leaves a time as it is.
func Futimens(fd int, times *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(times)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// makeStub creates a complete stub under a temporary name in directory
// dirfd and returns the name; on failure it leaves no file.
func (s *Store) makeStub(dirfd int, st Stub, rec []byte, times *[2]unix.Timespec) (string, error) {
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", err
	}
	tmp := TempPrefix + hex.EncodeToString(rnd[:])
	fd, err := unix.Openat(dirfd, tmp, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	err = s.stubStep("created")
	if err == nil {
		err = s.fillStub(fd, st, rec, times)
	}
	if err != nil {
		unix.Close(fd)
		unix.Unlinkat(dirfd, tmp, 0)
		return "", err
	}
	if err := unix.Close(fd); err != nil {
		unix.Unlinkat(dirfd, tmp, 0)
		return "", err
	}
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
