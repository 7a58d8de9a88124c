package store

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// # Running without privileges
//
// A daemon run by an ordinary user (or by root without CAP_CHOWN and
// CAP_DAC_OVERRIDE) owns every file of its store but may neither give a
// file to someone else nor write a file whose mode denies its owner
// writing. The first is the importer's business (posixmeta.Owners: files
// are imported as the daemon's own). The second is the store's: an object
// imported with file-permissions 0100444 is a stub the daemon must still
// fill (hydration), empty again (release) or let a writer through the mount
// change (the kernel checked that caller already: default_permissions). So
// an open for writing refused with EACCES, of a regular file the daemon
// owns and whose owner-write bit is clear, adds that bit for the time of
// the open and puts the mode back (openOwnReadOnly). The mode a stat shows
// changes for that moment only; a chmod through the mount meanwhile wins
// (the mode is put back only if it is still the one set here).

// MayChown reports whether this process may give files any owner: CAP_CHOWN
// is in its effective capabilities. Root normally has it; root started
// without it (setpriv --inh-caps=-chown --bounding-set=-chown, a container
// that drops it) does not, and neither does an ordinary user.
func MayChown() bool { return hasCap(unix.CAP_CHOWN) }

// hasCap reports whether capability c is in the effective set.
func hasCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.Geteuid() == 0
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}

// Groups returns the effective group and the supplementary groups of this
// process: the groups an owner without CAP_CHOWN may give its files.
func Groups() []uint32 {
	gs := []uint32{uint32(os.Getegid())}
	more, err := unix.Getgroups()
	if err != nil {
		return gs
	}
	for _, g := range more {
		gs = append(gs, uint32(g))
	}
	return gs
}

// openOwnReadOnly opens rel for writing (flags) after a plain open answered
// EACCES: if rel is a regular file of this process's uid whose mode lacks
// the owner's write bit, it opens it with that bit added for the moment of
// the open (see the comment at the top of the file). Any other case
// answers EACCES, the first answer.
func (s *Store) openOwnReadOnly(rel string, flags int) (int, error) {
	pfd, err := s.openat2(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return -1, unix.EACCES
	}
	defer unix.Close(pfd)
	return openOwn(pfd, flags)
}

// openOwn opens the file of descriptor fd (O_PATH included) again with
// flags through its /proc/self/fd link, as withOwnerWrite allows.
func openOwn(fd int, flags int) (int, error) {
	proc := procFd(fd)
	nfd := -1
	err := withOwnerWrite(proc, func() error {
		var err error
		nfd, err = unix.Open(proc, flags&^(unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW)|unix.O_CLOEXEC, 0)
		return err
	})
	return nfd, err
}

// ownerWrite serialises withOwnerWrite's mode changes.
var ownerWrite sync.Mutex

// withOwnerWrite runs op, which changes or opens for writing the file or
// directory path names (a /proc/self/fd link). If op answers EACCES and the
// inode is this process's and lacks the owner's write bit, op runs again
// with that bit added for its moment, and the mode is put back unless
// something changed it meanwhile (see the comment at the top of the file).
// Otherwise op's answer stands.
func withOwnerWrite(path string, op func() error) error {
	err := op()
	if !errors.Is(err, unix.EACCES) {
		return err
	}
	return ownerWritable(path, op, true)
}

// inDir runs op, which creates or removes names in directory dirfd. A
// directory whose mode denies its owner writing (a directory object
// imported 040555) is made writable for op's moment when it is this
// process's and the process has no CAP_DAC_OVERRIDE (the importer must
// still fill it). A cheap stat decides first, so op never runs twice.
func (s *Store) inDir(dirfd int, op func() error) error {
	if s.override {
		return op()
	}
	path := procFd(dirfd)
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil || st.Mode&0o200 != 0 || st.Uid != uint32(os.Geteuid()) {
		return op()
	}
	return ownerWritable(path, op, false)
}

// ownerWritable runs op with the owner's write bit of path added, if path
// is a regular file or directory of this process's that lacks it, and puts
// the mode back unless something changed it meanwhile; otherwise EACCES.
// With retry, op first runs once more under the lock (another caller may
// have changed the mode since op's refusal).
func ownerWritable(path string, op func() error, retry bool) error {
	ownerWrite.Lock()
	defer ownerWrite.Unlock()
	if retry {
		if err := op(); !errors.Is(err, unix.EACCES) {
			return err
		}
	}
	var st unix.Stat_t
	if unix.Stat(path, &st) != nil {
		return unix.EACCES
	}
	typ := st.Mode & unix.S_IFMT
	if typ != unix.S_IFREG && typ != unix.S_IFDIR || st.Uid != uint32(os.Geteuid()) || st.Mode&0o200 != 0 {
		if retry {
			return unix.EACCES
		}
		return op()
	}
	perm := st.Mode & 0o7777
	if unix.Fchmodat(unix.AT_FDCWD, path, perm|0o200, 0) != nil {
		return unix.EACCES
	}
	err := op()
	var now unix.Stat_t
	if unix.Stat(path, &now) == nil && now.Mode&0o7777 == perm|0o200 {
		if cerr := unix.Fchmodat(unix.AT_FDCWD, path, perm, 0); cerr != nil && err == nil {
			err = fmt.Errorf("mode %#o not restored: %w", perm, cerr)
		}
	}
	return err
}

// Reopen opens the file f has open again, by its /proc/self/fd link, with
// flags (the importer's writable descriptor of a file a reader opened
// read-only). A file the daemon owns whose mode denies the owner writing is
// opened as OpenFile opens it.
func (s *Store) Reopen(f *os.File, flags int) (*os.File, error) {
	var fd int
	err := WithFd(f, func(ffd int) error {
		var err error
		fd, err = unix.Open(procFd(ffd), flags|unix.O_CLOEXEC, 0)
		if err == unix.EACCES && flags&unix.O_ACCMODE != unix.O_RDONLY {
			fd, err = openOwn(ffd, flags)
		}
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "reopen", Path: f.Name(), Err: err}
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
