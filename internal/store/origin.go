package store

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/hsm"
)

// MarkOrigins records, in the state of rel (a regular file) or of every
// regular file below rel (a directory), the path the file has now as its
// Origin, for each file whose object the repository has (flag Exists) and
// that has no Origin yet. Call it, holding MoveLock exclusively, before
// renaming rel, and keep holding it through the rename: the object stays
// under the key of the recorded path until the exporter moves it, and a
// file's object key is never derived from a name a rename may have changed
// since (see State.Origin). A crash between MarkOrigins and the rename
// leaves origins equal to the current paths, which means the same as none.
//
// Multiply linked files that are not released are left alone: the state is
// the inode's, shared by names whose objects are under different keys, so
// one origin cannot describe them (the exporter moves their objects by the
// journal entry's old name).
//
// Directories get the same record (DirXattr), rel itself and every
// directory below it, whether or not the exporter wrote their objects yet.
//
// A directory is walked depth first, one batch of entries per level in
// memory: the cost grows with the number of entries below rel, one lstat
// each and one state read and write per file the repository has.
func (s *Store) MarkOrigins(ctx context.Context, rel string) error {
	st, err := s.Lstat(rel)
	if err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return s.markOrigin(rel, &st)
	case unix.S_IFDIR:
		if err := s.markDirOrigin(rel); err != nil {
			return err
		}
		return s.markOriginsBelow(ctx, rel)
	}
	return nil
}

var errNoChange = errors.New("no change")

func (s *Store) markOrigin(rel string, sta *unix.Stat_t) error {
	_, err := s.UpdateState(rel, func(st *State) error {
		if st.Origin != "" || !st.Flags.Has(hsm.Exists) ||
			(!st.Flags.Has(hsm.Released) && sta.Nlink > 1) {
			return errNoChange
		}
		st.Origin = rel
		return nil
	})
	if errors.Is(err, errNoChange) || errors.Is(err, ErrNoState) {
		return nil
	}
	return err
}

func (s *Store) markOriginsBelow(ctx context.Context, dir string) error {
	return s.WalkBelow(ctx, dir, func(p string, typ uint32) error {
		switch typ {
		case unix.S_IFDIR:
			return s.markDirOrigin(p)
		case unix.S_IFREG:
			sta, err := s.Lstat(p)
			if err != nil {
				return err
			}
			return s.markOrigin(p, &sta)
		}
		return nil
	})
}

// DirXattr is set on a directory whose object (the `dir/` key), if it has
// one, is under another path's key: MarkOrigins records the path the
// directory had before a rename, the exporter removes the attribute once it
// has written the object under the current name (or sets the name it wrote
// if the directory moved on meanwhile). The directory's counterpart of
// State.Origin, so that a chain of directory renames moves the directory
// objects too. Absent: the object, if any, is under the directory's own
// key. Only renamed directories carry it, so exporting a directory changes
// nothing on it (no ctime change).
const DirXattr = "user.ferry.dir"

// DirOrigin returns the path whose key holds directory rel's object, ""
// for rel's own.
func (s *Store) DirOrigin(rel string) (origin string, err error) {
	err = s.pathState("get directory origin", rel, func(proc string, st *unix.Stat_t) error {
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return unix.ENOTDIR
		}
		origin, err = getDirXattr(-1, proc)
		return err
	})
	return origin, err
}

// FileDirOrigin is DirOrigin for a directory open as f.
func (s *Store) FileDirOrigin(f *os.File) (origin string, err error) {
	err = WithFd(f, func(fd int) error {
		origin, err = getDirXattr(fd, "")
		return err
	})
	return origin, pathErr("get directory origin", f.Name(), err)
}

// SetFileDirOrigin records that directory f's object is under origin's key
// ("" removes the record: under its own). Callers other than MarkOrigins
// hold MoveLock shared and check where f is (At) under it.
func (s *Store) SetFileDirOrigin(f *os.File, origin string) error {
	if len(origin) > maxOriginLen {
		return pathErr("set directory origin", f.Name(), fmt.Errorf("origin of %d bytes; at most %d", len(origin), maxOriginLen))
	}
	return pathErr("set directory origin", f.Name(), WithFd(f, func(fd int) error {
		return withOwnerWrite(procFd(fd), func() error {
			if origin == "" {
				if err := unix.Fremovexattr(fd, DirXattr); err != nil && err != unix.ENODATA {
					return err
				}
				return nil
			}
			return unix.Fsetxattr(fd, DirXattr, []byte(origin), 0)
		})
	}))
}

func getDirXattr(fd int, proc string) (string, error) {
	buf := make([]byte, maxOriginLen+1)
	var n int
	var err error
	if proc != "" {
		n, err = unix.Getxattr(proc, DirXattr, buf)
	} else {
		n, err = unix.Fgetxattr(fd, DirXattr, buf)
	}
	switch {
	case err == unix.ENODATA:
		return "", nil
	case err != nil:
		return "", err
	}
	return string(buf[:n]), nil
}

// markDirOrigin records rel as the origin of directory rel's object unless
// one is recorded.
func (s *Store) markDirOrigin(rel string) error {
	return s.pathState("mark directory origin", rel, func(proc string, _ *unix.Stat_t) error {
		origin, err := getDirXattr(-1, proc)
		if err != nil || origin != "" {
			return err
		}
		return withOwnerWrite(proc, func() error { return unix.Setxattr(proc, DirXattr, []byte(rel), 0) })
	})
}
