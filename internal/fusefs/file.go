package fusefs

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/writepath"
)

// file is an open regular file: the store's descriptor, read and written
// with pread/pwrite at the kernel's offsets.
type file struct {
	node     *Node
	f        *os.File
	fd       int
	pt       bool // passthrough: the kernel reads and writes f itself
	writable bool // opened for writing
	// w is the handle's part of the write path: commits, and for a
	// passthrough writer what it last saw of the inode.
	w *writepath.Handle
}

// ptFile is a file in passthrough mode; go-fuse registers its descriptor
// with the kernel as the inode's backing file.
type ptFile struct{ *file }

var (
	_ fs.FileReader          = (*file)(nil)
	_ fs.FileWriter          = (*file)(nil)
	_ fs.FileGetattrer       = (*file)(nil)
	_ fs.FileFsyncer         = (*file)(nil)
	_ fs.FileFlusher         = (*file)(nil)
	_ fs.FileReleaser        = (*file)(nil)
	_ fs.FileLseeker         = (*file)(nil)
	_ fs.FileAllocater       = (*file)(nil)
	_ fs.FilePassthroughFder = ptFile{}
)

// opened wraps f, which the store just opened for n with open flags of;
// n.mu is held.
func (n *Node) opened(f *os.File, of int, pt bool) fs.FileHandle {
	if n.opens == 0 {
		n.fsys.wp.Opened(&n.w, f)
	}
	n.opens++
	n.fsys.Stats.Opens.Add(1)
	if of&unix.O_CREAT == 0 { // an open, not a create: an access (access.go)
		n.recordAccess()
	}
	h := &file{node: n, f: f, fd: int(f.Fd()), pt: pt, writable: wantsWrite(of)}
	// A passthrough writer's writes never reach the daemon: the write
	// path compares the inode at its commits, and the exporter waits for
	// its release (FS.UnseenWriter).
	h.w = n.fsys.wp.NewHandle(&n.w, f, pt, h.writable)
	if pt {
		n.fsys.Stats.PassthroughOpens.Add(1)
		return ptFile{h}
	}
	return h
}

// asFile returns the file behind a handle go-fuse passes back, or nil.
func asFile(h fs.FileHandle) *file {
	switch h := h.(type) {
	case *file:
		return h
	case ptFile:
		return h.file
	}
	return nil
}

// PassthroughFd gives the kernel the descriptor to read and write directly.
// It stays open until Release; the kernel keeps its own reference once the
// descriptor is registered.
func (p ptFile) PassthroughFd() (int, bool) { return p.fd, true }

func (h *file) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.node.fsys.Stats.Reads.Add(1)
	if imp := h.node.fsys.imp; imp != nil {
		// A released file's bytes are fetched before they are read
		// (invariant 3, docs/invariants.md: never zeros from a hole).
		if err := imp.EnsureData(ctx, h.node.rel(), h.f, off, int64(len(dest))); err != nil {
			return nil, errno(err)
		}
	}
	// Spliced from the descriptor to the kernel where possible.
	return fuse.ReadResultFd(uintptr(h.fd), off, len(dest)), 0
}

// Write bumps the content version before the first write after an open
// or a VersionRead (store.BumpVersion's protocol), then writes, then bumps
// again while an export may be reading the file (writepath's BeginWrite,
// EndWrite).
func (h *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	h.node.fsys.Stats.Writes.Add(1)
	wp, in := h.node.fsys.wp, &h.node.w
	if err := wp.Room(); err != nil {
		return 0, errno(err)
	}
	if err := wp.BeginWrite(in, h.f); err != nil {
		return 0, errno(err)
	}
	n, err := unix.Pwrite(h.fd, data, off)
	if berr := wp.EndWrite(in, h.f, n > 0); err == nil {
		err = berr
	}
	if err != nil {
		return 0, errno(err)
	}
	return uint32(n), 0
}

func (h *file) getattr(out *fuse.AttrOut) syscall.Errno {
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return errno(err)
	}
	h.node.fsys.setAttr(&out.Attr, &st)
	return 0
}

func (h *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno { return h.getattr(out) }

// Fsync makes the file's data (and with flags bit 0 clear, its metadata)
// durable on the store, and journals a change (commit) before it answers.
// fdatasync covers the state xattr too: ext4 and XFS journal an inode's
// extended attributes with it.
func (h *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	sync := func() error { return unix.Fsync(h.fd) }
	if flags&1 != 0 { // FUSE_FSYNC_FDATASYNC
		sync = func() error { return unix.Fdatasync(h.fd) }
	}
	return errno(h.node.fsys.wp.Commit(ctx, h.w, h.node.rel, sync))
}

// Flush is called at every close(2) of a descriptor of the file. Writes
// went to the store's descriptor at once; a change since the last journal
// entry is journaled, durably, before close returns (invariant 1).
func (h *file) Flush(ctx context.Context) syscall.Errno {
	return errno(h.node.fsys.wp.Commit(ctx, h.w, h.node.rel, nil))
}

// Release closes the store's descriptor after the last close. Writes of a
// shared mapping written back after the last close(2) are journaled here.
//
// The kernel keeps the inode in the handle's io mode (passthrough or
// cached) until the reply to RELEASE, and refuses an open in the other mode
// meanwhile (EIO to the caller). An open that arrives while a Release is
// in progress — the kernel sends RELEASE after close(2) has returned —
// therefore keeps the mode of the handles being released
// (Node.releasing; Node.Open), as while they are open, and so does one that
// arrives within releaseGrace after the last Release returned (go-fuse
// writes the reply after that).
func (h *file) Release(ctx context.Context) syscall.Errno {
	n := h.node
	n.releasing.Add(1)
	defer func() {
		n.mu.Lock()
		if n.opens == 0 {
			n.releasedAt = time.Now()
		}
		n.releasing.Add(-1)
		n.mu.Unlock()
	}()
	err := n.fsys.wp.Commit(ctx, h.w, n.rel, nil)
	n.mu.Lock()
	n.forget(h)
	n.mu.Unlock()
	if cerr := h.f.Close(); err == nil {
		err = cerr
	}
	return errno(err)
}

// forget undoes what opened counted for h; n.mu is held. A passthrough
// writer stops counting only now, after its last commit: the exporter
// never sees the count drop before the final change is journaled.
func (n *Node) forget(h *file) {
	n.opens--
	h.w.Released()
	if n.opens == 0 {
		n.fsys.wp.Closed(&n.w)
	}
}

// discard closes h, whose open failed after opened (n.mu is held, so
// Release cannot run). It may have changed the file (an O_TRUNC open), so
// the inode is left unjournaled: the next flush or release of the inode
// appends.
func (h *file) discard() {
	h.w.Discard()
	h.node.forget(h)
	h.f.Close()
}

// Lseek answers SEEK_DATA and SEEK_HOLE from the store file (the kernel
// handles the other whences itself). The descriptor's own offset is never
// used for I/O, so moving it is harmless.
func (h *file) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	r, err := unix.Seek(h.fd, int64(off), int(whence))
	if err != nil {
		return 0, errno(err)
	}
	return uint64(r), 0
}

// Allocate is fallocate(2); a mode that can change content (punching or
// zeroing a range, or growing the size) counts as a write.
func (h *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	wp, in := h.node.fsys.wp, &h.node.w
	if mode&unix.FALLOC_FL_PUNCH_HOLE == 0 {
		if err := wp.Room(); err != nil { // a hole punched frees space
			return errno(err)
		}
	}
	if err := wp.BeginWrite(in, h.f); err != nil {
		return errno(err)
	}
	err := unix.Fallocate(h.fd, mode, int64(off), int64(size))
	if berr := wp.EndWrite(in, h.f, err == nil); err == nil {
		err = berr
	}
	return errno(err)
}
