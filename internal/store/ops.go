package store

import (
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Lstat describes rel without following a final symlink ("." is the root).
func (s *Store) Lstat(rel string) (unix.Stat_t, error) {
	var st unix.Stat_t
	dir, base, err := validate(rel, false)
	if err != nil {
		return st, pathErr("lstat", rel, err)
	}
	if base == "." {
		return st, pathErr("lstat", rel, unix.Fstat(s.root, &st))
	}
	fd, release, err := s.dirFd(dir)
	if err != nil {
		return st, pathErr("lstat", rel, err)
	}
	defer release()
	return st, pathErr("lstat", rel, unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW))
}

// Lookup is Lstat under the name the FUSE layer uses.
func (s *Store) Lookup(rel string) (unix.Stat_t, error) { return s.Lstat(rel) }

// OpenFile opens rel with open(2) flags and, with O_CREAT, permission bits
// mode. A final symlink is refused (ELOOP), as is any symlink on the way.
func (s *Store) OpenFile(rel string, flags int, mode uint32) (*os.File, error) {
	_, _, err := validate(rel, flags&unix.O_CREAT != 0)
	if err != nil {
		return nil, pathErr("open", rel, err)
	}
	fd, err := s.openat2(rel, flags|unix.O_NOFOLLOW, mode)
	if err == unix.EACCES && flags&unix.O_ACCMODE != unix.O_RDONLY {
		fd, err = s.openOwnReadOnly(rel, flags)
	}
	if err != nil {
		return nil, pathErr("open", rel, err)
	}
	return os.NewFile(uintptr(fd), rel), nil
}

// Mkdir creates directory rel.
func (s *Store) Mkdir(rel string, mode uint32) error {
	fd, base, release, err := s.parent(rel, true)
	if err != nil {
		return pathErr("mkdir", rel, err)
	}
	defer release()
	return pathErr("mkdir", rel, s.inDir(fd, func() error { return unix.Mkdirat(fd, base, mode) }))
}

// MkdirAll creates rel and any missing parents with mode. An existing
// directory is fine; an existing non-directory (a symlink included) is
// ENOTDIR / EEXIST as mkdir -p answers.
func (s *Store) MkdirAll(rel string, mode uint32) error {
	if _, _, err := validate(rel, true); err != nil {
		return pathErr("mkdir", rel, err)
	}
	if rel == "." {
		return nil
	}
	dfd, err := unix.Dup(s.root)
	if err != nil {
		return pathErr("mkdir", rel, err)
	}
	done := 0
	for done < len(rel) {
		end := done
		for end < len(rel) && rel[end] != '/' {
			end++
		}
		name := rel[done:end]
		if err := unix.Mkdirat(dfd, name, mode); err != nil && err != unix.EEXIST {
			unix.Close(dfd)
			return pathErr("mkdir", rel[:end], err)
		}
		// Open the component without following a symlink that may be
		// there (or raced in): RESOLVE_NO_SYMLINKS refuses it with ELOOP.
		next, err := unix.Openat2(dfd, name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: resolveFlags})
		unix.Close(dfd)
		if err != nil {
			if err == unix.ELOOP {
				err = unix.ENOTDIR
			}
			return pathErr("mkdir", rel[:end], err)
		}
		dfd = next
		done = end + 1
	}
	unix.Close(dfd)
	return nil
}

// Mknod creates the special file rel: a FIFO, a socket, a character or
// block device (dev: the device number, for devices only; making one needs
// CAP_MKNOD), or an empty regular file; mode holds the type and the
// permission bits. Directories and symlinks have their own calls (EINVAL).
// Special files carry no state (Linux allows user.* extended attributes on
// regular files and directories only) and are never exported: S3 cannot
// hold them, and the FSx metadata format describes files, directories and
// symlinks only.
func (s *Store) Mknod(rel string, mode uint32, dev uint64) error {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK, unix.S_IFREG:
	default:
		return pathErr("mknod", rel, unix.EINVAL)
	}
	fd, base, release, err := s.parent(rel, true)
	if err != nil {
		return pathErr("mknod", rel, err)
	}
	defer release()
	return pathErr("mknod", rel, unix.Mknodat(fd, base, mode, int(dev)))
}

// Special reports whether mode is a FIFO, socket or device: a file with no
// content the store keeps, no state and no object.
func Special(mode uint32) bool {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO, unix.S_IFSOCK, unix.S_IFCHR, unix.S_IFBLK:
		return true
	}
	return false
}

// Symlink creates symlink rel with target stored verbatim. The target is
// never interpreted or followed by the store.
func (s *Store) Symlink(target, rel string) error {
	fd, base, release, err := s.parent(rel, true)
	if err != nil {
		return pathErr("symlink", rel, err)
	}
	defer release()
	return pathErr("symlink", rel, s.inDir(fd, func() error { return unix.Symlinkat(target, fd, base) }))
}

// Readlink returns the target of symlink rel verbatim.
func (s *Store) Readlink(rel string) (string, error) {
	fd, base, release, err := s.parent(rel, false)
	if err != nil {
		return "", pathErr("readlink", rel, err)
	}
	defer release()
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, base, buf)
		if err != nil {
			return "", pathErr("readlink", rel, err)
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<20 {
			return "", pathErr("readlink", rel, unix.ENAMETOOLONG)
		}
	}
}

// Rename flags for Rename (renameat2(2)).
const (
	RenameNoReplace = unix.RENAME_NOREPLACE // fail with EEXIST if to exists
	RenameExchange  = unix.RENAME_EXCHANGE  // swap from and to atomically
)

// Rename renames from to to with renameat2 flags (0, RenameNoReplace or
// RenameExchange). Extended attributes, and so the file's state, move with
// the file.
func (s *Store) Rename(from, to string, flags uint) error {
	ofd, obase, orel, err := s.parent(from, false)
	if err != nil {
		return pathErr("rename", from, err)
	}
	defer orel()
	nfd, nbase, nrel, err := s.parent(to, true)
	if err != nil {
		return pathErr("rename", to, err)
	}
	defer nrel()
	if err := unix.Renameat2(ofd, obase, nfd, nbase, flags); err != nil {
		return &LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// Link makes to a hard link of from (a final symlink is linked itself).
func (s *Store) Link(from, to string) error {
	ofd, obase, orel, err := s.parent(from, false)
	if err != nil {
		return pathErr("link", from, err)
	}
	defer orel()
	nfd, nbase, nrel, err := s.parent(to, true)
	if err != nil {
		return pathErr("link", to, err)
	}
	defer nrel()
	if err := unix.Linkat(ofd, obase, nfd, nbase, 0); err != nil {
		return &LinkError{Op: "link", Old: from, New: to, Err: err}
	}
	return nil
}

// LinkError is an error of an operation on two paths; it keeps the errno.
type LinkError = os.LinkError

// Unlink removes the non-directory rel.
func (s *Store) Unlink(rel string) error {
	fd, base, release, err := s.parent(rel, false)
	if err != nil {
		return pathErr("unlink", rel, err)
	}
	defer release()
	return pathErr("unlink", rel, s.inDir(fd, func() error { return unix.Unlinkat(fd, base, 0) }))
}

// Rmdir removes the empty directory rel.
func (s *Store) Rmdir(rel string) error {
	fd, base, release, err := s.parent(rel, false)
	if err != nil {
		return pathErr("rmdir", rel, err)
	}
	defer release()
	return pathErr("rmdir", rel, s.inDir(fd, func() error { return unix.Unlinkat(fd, base, unix.AT_REMOVEDIR) }))
}

// Chmod sets the permission bits of rel ("." is the root). On a symlink it
// answers EOPNOTSUPP, as Linux does for lchmod.
func (s *Store) Chmod(rel string, mode uint32) error {
	err := s.withPathFd(rel, "chmod", func(fd int, st *unix.Stat_t) error {
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return unix.EOPNOTSUPP
		}
		// The O_PATH descriptor pins the inode; chmod through its
		// /proc/self/fd link reaches exactly that inode (a magic link the
		// kernel resolves to the open file, never a path lookup).
		return unix.Fchmodat(unix.AT_FDCWD, procFd(fd), mode, 0)
	})
	return err
}

// Chown sets the owner of rel without following a symlink (lchown); -1
// leaves an id unchanged.
func (s *Store) Chown(rel string, uid, gid int) error {
	if rel == "." {
		return pathErr("chown", rel, unix.Fchownat(s.root, "", uid, gid, unix.AT_EMPTY_PATH))
	}
	fd, base, release, err := s.parent(rel, false)
	if err != nil {
		return pathErr("chown", rel, err)
	}
	defer release()
	return pathErr("chown", rel, unix.Fchownat(fd, base, uid, gid, unix.AT_SYMLINK_NOFOLLOW))
}

// UtimeOmit leaves a time unchanged in Utimes; UtimeNow sets it to now.
var (
	UtimeOmit = unix.Timespec{Nsec: unix.UTIME_OMIT}
	UtimeNow  = unix.Timespec{Nsec: unix.UTIME_NOW}
)

// Utimes sets the access and modification times of rel without following
// a symlink.
func (s *Store) Utimes(rel string, atime, mtime unix.Timespec) error {
	ts := []unix.Timespec{atime, mtime}
	if rel == "." {
		return pathErr("utimes", rel, unix.UtimesNanoAt(unix.AT_FDCWD, procFd(s.root), ts, 0))
	}
	fd, base, release, err := s.parent(rel, false)
	if err != nil {
		return pathErr("utimes", rel, err)
	}
	defer release()
	return pathErr("utimes", rel, unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW))
}

// Timespec converts t for Utimes.
func Timespec(t time.Time) unix.Timespec { return unix.NsecToTimespec(t.UnixNano()) }

// Truncate sets the size of regular file rel.
func (s *Store) Truncate(rel string, size int64) error {
	f, err := s.OpenFile(rel, unix.O_WRONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return pathErr("truncate", rel, unwrapPath(err))
	}
	defer f.Close()
	return pathErr("truncate", rel, unix.Ftruncate(int(f.Fd()), size))
}

// Statfs describes the file system holding the store.
func (s *Store) Statfs() (unix.Statfs_t, error) {
	var st unix.Statfs_t
	return st, pathErr("statfs", ".", unix.Fstatfs(s.root, &st))
}

// SyncDir fsyncs directory rel, making the names created in it durable. A
// batch import calls it once per directory rather than once per stub.
func (s *Store) SyncDir(rel string) error {
	if _, _, err := validate(rel, false); err != nil {
		return pathErr("fsync", rel, err)
	}
	fd, err := s.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return pathErr("fsync", rel, err)
	}
	defer unix.Close(fd)
	return pathErr("fsync", rel, unix.Fsync(fd))
}

// withPathFd opens an O_PATH descriptor of rel itself (a final symlink
// included) and calls fn with it and its stat.
func (s *Store) withPathFd(rel, op string, fn func(fd int, st *unix.Stat_t) error) error {
	if _, _, err := validate(rel, false); err != nil {
		return pathErr(op, rel, err)
	}
	fd, err := s.openat2(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return pathErr(op, rel, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return pathErr(op, rel, err)
	}
	return pathErr(op, rel, fn(fd, &st))
}

func procFd(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// unwrapPath strips an *os.PathError so it is not wrapped twice.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}
