package store

import (
	"context"
	"encoding/binary"
	"errors"
	"io"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/keypath"
)

// Dirent is one directory entry.
type Dirent struct {
	Name string
	Ino  uint64
	Type uint32 // file type bits as in st_mode (unix.S_IFREG, S_IFDIR, S_IFLNK…)
}

// DirReader streams a directory in batches (getdents64), never holding the
// whole directory in memory. Reserved names, "." and ".." are skipped.
type DirReader struct {
	rel string
	fd  int
	buf []byte
	pos int
	end int
	eof bool
}

// Readdir opens directory rel ("." is the root) for reading.
func (s *Store) Readdir(rel string) (*DirReader, error) {
	if _, _, err := validate(rel, false); err != nil {
		return nil, pathErr("readdir", rel, err)
	}
	fd, err := s.openat2(rel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, pathErr("readdir", rel, err)
	}
	return &DirReader{rel: rel, fd: fd, buf: make([]byte, 32<<10)}, nil
}

// Next returns up to n entries (n <= 0: one getdents64 buffer's worth). At the
// end of the directory it returns no entries and io.EOF.
func (d *DirReader) Next(n int) ([]Dirent, error) {
	var out []Dirent
	for n <= 0 || len(out) < n {
		if d.pos >= d.end {
			if d.eof || (n <= 0 && len(out) > 0) {
				break
			}
			k, err := unix.Getdents(d.fd, d.buf)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return out, pathErr("readdir", d.rel, err)
			}
			if k == 0 {
				d.eof = true
				break
			}
			d.pos, d.end = 0, k
		}
		// struct linux_dirent64 { u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[]; }
		rec := d.buf[d.pos:d.end]
		reclen := int(binary.NativeEndian.Uint16(rec[16:18]))
		if reclen < 20 || reclen > len(rec) {
			return out, pathErr("readdir", d.rel, unix.EIO)
		}
		ino := binary.NativeEndian.Uint64(rec[0:8])
		typ := rec[18]
		name := rec[19:reclen]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		d.pos += reclen
		nm := string(name)
		if nm == "." || nm == ".." {
			continue
		}
		if Reserved(d.rel, nm) {
			continue
		}
		e := Dirent{Name: nm, Ino: ino, Type: dtToMode(typ)}
		if typ == unix.DT_UNKNOWN {
			var st unix.Stat_t
			if err := unix.Fstatat(d.fd, nm, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
				e.Type = st.Mode & unix.S_IFMT
			} else if err == unix.ENOENT {
				continue // removed meanwhile
			} else {
				return out, pathErr("readdir", d.rel+"/"+nm, err)
			}
		}
		out = append(out, e)
	}
	if len(out) == 0 && d.eof {
		return nil, io.EOF
	}
	return out, nil
}

// Close releases the directory descriptor.
func (d *DirReader) Close() error {
	if d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

func dtToMode(t uint8) uint32 {
	switch t {
	case unix.DT_REG:
		return unix.S_IFREG
	case unix.DT_DIR:
		return unix.S_IFDIR
	case unix.DT_LNK:
		return unix.S_IFLNK
	case unix.DT_FIFO:
		return unix.S_IFIFO
	case unix.DT_SOCK:
		return unix.S_IFSOCK
	case unix.DT_CHR:
		return unix.S_IFCHR
	case unix.DT_BLK:
		return unix.S_IFBLK
	}
	return 0
}

// WalkBelow calls fn for every entry below directory dir (store-relative),
// depth first, a directory before what it holds, with the entry's path and
// file type bits (unix.S_IFREG, S_IFDIR, S_IFLNK…). Memory is one batch of
// 256 entries per level, never the tree. It stops at the first error of fn
// or of a directory read, and returns it; ctx is checked between batches.
func (s *Store) WalkBelow(ctx context.Context, dir string, fn func(p string, typ uint32) error) error {
	r, err := s.Readdir(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := r.Next(256)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := keypath.Join(dir, e.Name)
			if err := fn(p, e.Type); err != nil {
				return err
			}
			if e.Type == unix.S_IFDIR {
				if err := s.WalkBelow(ctx, p, fn); err != nil {
					return err
				}
			}
		}
	}
}
