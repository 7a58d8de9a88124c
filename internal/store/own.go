package store

import (
	"fmt"
	"os"

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
	return s.openOwn(pfd, rel, flags)
}

// openOwn opens the file of descriptor fd (any access, O_PATH included)
// again with flags through its /proc/self/fd link, with the owner's write
// bit added for the moment of the open when the file is this process's
// and lacks it; otherwise it answers EACCES.
func (s *Store) openOwn(fd int, name string, flags int) (int, error) {
	s.ownWrite.Lock()
	defer s.ownWrite.Unlock()
	proc := procFd(fd)
	open := func() (int, error) {
		return unix.Open(proc, flags&^(unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW)|unix.O_CLOEXEC, 0)
	}
	// Another open may have changed the mode since the refusal.
	if nfd, err := open(); err != unix.EACCES {
		return nfd, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return -1, unix.EACCES
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Uid != uint32(os.Geteuid()) || st.Mode&0o200 != 0 {
		return -1, unix.EACCES
	}
	perm := st.Mode & 0o7777
	if err := unix.Fchmodat(unix.AT_FDCWD, proc, perm|0o200, 0); err != nil {
		return -1, unix.EACCES
	}
	nfd, err := open()
	var now unix.Stat_t
	if unix.Fstat(fd, &now) == nil && now.Mode&0o7777 == perm|0o200 {
		if cerr := unix.Fchmodat(unix.AT_FDCWD, proc, perm, 0); cerr != nil && err == nil {
			unix.Close(nfd)
			return -1, fmt.Errorf("%s: mode %#o not restored after a write open: %w", name, perm, cerr)
		}
	}
	return nfd, err
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
			fd, err = s.openOwn(ffd, f.Name(), flags)
		}
		return err
	})
	if err != nil {
		return nil, &os.PathError{Op: "reopen", Path: f.Name(), Err: err}
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
