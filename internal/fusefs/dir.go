package fusefs

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/ferry-hpc/ferry/internal/store"
)

// dir is an open directory, read from the store in getdents64-sized batches
// as the kernel asks: a directory of any size costs one buffer of memory.
// go-fuse numbers the entries 1, 2, 3…; the kernel's offset is how many
// were consumed, so Seekdir (telldir/seekdir, rewinddir) reopens and skips.
type dir struct {
	fsys *FS
	rel  string
	r    *store.DirReader
	buf  []store.Dirent
	pos  int // entries handed out since the (re)open
	eof  bool
}

var (
	_ fs.FileReaddirenter = (*dir)(nil)
	_ fs.FileSeekdirer    = (*dir)(nil)
	_ fs.FileReleasedirer = (*dir)(nil)
	_ fs.FileFsyncdirer   = (*dir)(nil)
)

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	if len(d.buf) == 0 && !d.eof {
		ents, err := d.r.Next(0)
		if errors.Is(err, io.EOF) {
			d.eof = true
		} else if err != nil {
			return nil, errno(err)
		}
		d.buf = ents
	}
	if len(d.buf) == 0 {
		return nil, 0
	}
	e := d.buf[0]
	d.buf = d.buf[1:]
	d.pos++
	return &fuse.DirEntry{Name: e.Name, Mode: e.Type, Ino: e.Ino}, 0
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if off == uint64(d.pos) {
		return 0
	}
	r, err := d.fsys.store.Readdir(d.rel)
	if err != nil {
		return errno(err)
	}
	d.r.Close()
	d.r, d.buf, d.pos, d.eof = r, nil, 0, false
	for uint64(d.pos) < off {
		e, errno := d.Readdirent(ctx)
		if errno != 0 {
			return errno
		}
		if e == nil {
			break
		}
	}
	return 0
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) { d.r.Close() }

func (d *dir) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return errno(d.fsys.store.SyncDir(d.rel))
}
