package fusefs

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/writepath"
)

// Node is a file, directory or symlink of the store.
type Node struct {
	fs.Inode
	fsys *FS

	// Open-mode bookkeeping for passthrough (see the package comment).
	mu      sync.Mutex
	opens   int  // open file handles
	pt      bool // they are in passthrough mode
	ptWrite bool // the backing descriptor is writable
	// releasedAt: when the last handle's Release returned (see
	// releaseGrace).
	releasedAt time.Time

	// releasing counts Releases in progress (file.go): the kernel holds
	// the inode's io mode until their replies, so an open meanwhile keeps
	// the mode of the handles being released (Open).
	releasing atomic.Int32

	w writepath.Inode // content versions and journal (internal/writepath)
}

var (
	_ fs.NodeLookuper       = (*Node)(nil)
	_ fs.NodeGetattrer      = (*Node)(nil)
	_ fs.NodeSetattrer      = (*Node)(nil)
	_ fs.NodeOpener         = (*Node)(nil)
	_ fs.NodeCreater        = (*Node)(nil)
	_ fs.NodeMkdirer        = (*Node)(nil)
	_ fs.NodeUnlinker       = (*Node)(nil)
	_ fs.NodeRmdirer        = (*Node)(nil)
	_ fs.NodeRenamer        = (*Node)(nil)
	_ fs.NodeSymlinker      = (*Node)(nil)
	_ fs.NodeMknoder        = (*Node)(nil)
	_ fs.NodeReadlinker     = (*Node)(nil)
	_ fs.NodeLinker         = (*Node)(nil)
	_ fs.NodeStatfser       = (*Node)(nil)
	_ fs.NodeOpendirHandler = (*Node)(nil)
)

// errno translates a store error into what FUSE answers. A call whose
// request the kernel interrupted (a signal to the caller: go-fuse cancels
// the request's context) while it waited for a listing or a fetch answers
// EINTR, which callers retry, not EIO; the shared work goes on.
func errno(err error) syscall.Errno {
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	return store.Errno(err)
}

// rel is the node's path relative to the store root ("." for the root).
func (n *Node) rel() string {
	p := n.Path(n.Root())
	if p == "" {
		return "."
	}
	return p
}

// child is the relative path of name in directory n.
func (n *Node) child(name string) string {
	if p := n.Path(n.Root()); p != "" {
		return p + "/" + name
	}
	return name
}

// newChild makes the inode for st, a new or looked-up child of n.
func (n *Node) newChild(ctx context.Context, st *unix.Stat_t, out *fuse.EntryOut) *fs.Inode {
	n.fsys.setAttr(&out.Attr, st)
	return n.NewInode(ctx, &Node{fsys: n.fsys}, n.fsys.stable(st))
}

// tooLong answers ENAMETOOLONG for a name over NAME_MAX (the kernel leaves
// the check to the file system; the store would call it an invalid path).
func tooLong(names ...string) syscall.Errno {
	for _, n := range names {
		if len(n) > keypath.MaxNameLen {
			return syscall.ENAMETOOLONG
		}
	}
	return 0
}

func (n *Node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := tooLong(name); e != 0 {
		return nil, e
	}
	if err := n.fsys.listed(ctx, n.rel()); err != nil {
		return nil, errno(err)
	}
	rel := n.child(name)
	st, err := n.fsys.store.Lookup(rel)
	if err != nil {
		return nil, errno(err)
	}
	n.fsys.wp.LookedUp(ctx, rel, &st)
	return n.newChild(ctx, &st, out), 0
}

func (n *Node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h := asFile(f); h != nil {
		return h.getattr(out)
	}
	st, err := n.fsys.store.Lstat(n.rel())
	if err != nil {
		return errno(err)
	}
	n.fsys.setAttr(&out.Attr, &st)
	return 0
}

// Setattr applies chmod, chown, truncate and utimes in that order (a
// truncate before the times, so an explicit mtime is not overwritten by it).
// A size change on an open file goes to its descriptor, everything else to
// the store by path. A size change bumps the content version before and
// after it (a released file emptied is not released any more only after);
// every change is journaled as CHANGED before the answer.
func (n *Node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	s, rel := n.fsys.store, n.rel()
	changed := false
	if m, ok := in.GetMode(); ok {
		if err := s.Chmod(rel, m); err != nil {
			return errno(err)
		}
		changed = true
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if uok || gok {
		u, g := -1, -1
		if uok {
			u = int(uid)
		}
		if gok {
			g = int(gid)
		}
		if err := s.Chown(rel, u, g); err != nil {
			return errno(err)
		}
		changed = true
	}
	if size, ok := in.GetSize(); ok {
		if size != 0 {
			// A released file keeps its object's bytes below the new
			// size: they must be local before the size changes.
			if err := n.fsys.restore(ctx, rel); err != nil {
				return errno(err)
			}
		}
		if err := n.setSize(ctx, rel, asFile(f), int64(size)); err != nil {
			return errno(err)
		}
		changed = true
	}
	if in.Valid&(fuse.FATTR_ATIME|fuse.FATTR_MTIME) != 0 {
		at, mt := store.UtimeOmit, store.UtimeOmit
		switch {
		case in.Valid&fuse.FATTR_ATIME_NOW != 0:
			at = store.UtimeNow
		case in.Valid&fuse.FATTR_ATIME != 0:
			at = unix.Timespec{Sec: int64(in.Atime), Nsec: int64(in.Atimensec)}
		}
		switch {
		case in.Valid&fuse.FATTR_MTIME_NOW != 0:
			mt = store.UtimeNow
		case in.Valid&fuse.FATTR_MTIME != 0:
			mt = unix.Timespec{Sec: int64(in.Mtime), Nsec: int64(in.Mtimensec)}
		}
		if err := s.Utimes(rel, at, mt); err != nil {
			return errno(err)
		}
		changed = true
	}
	if changed {
		// CHANGED for every name of a hard-linked file: metadata is
		// the inode's.
		if err := n.fsys.wp.MetaChanged(ctx, rel); err != nil {
			return errno(err)
		}
	}
	return n.Getattr(ctx, f, out)
}

// setSize truncates rel, through open handle h when there is one, with the
// content version bumped around it. A truncation to 0 with an importer
// goes through FS.truncate (see there).
func (n *Node) setSize(ctx context.Context, rel string, h *file, size int64) error {
	fl := (*os.File)(nil)
	if h != nil {
		fl = h.f
	} else {
		var err error
		if fl, err = n.fsys.store.OpenFile(rel, unix.O_WRONLY, 0); err != nil {
			return err
		}
		defer fl.Close()
	}
	return n.fsys.wp.Resize(&n.w, fl, func() error {
		if size != 0 || n.fsys.imp == nil {
			return fl.Truncate(size)
		}
		return n.fsys.truncate(ctx, rel, fl)
	})
}

// own gives rel, just created by the daemon, to the caller when the daemon
// may give files to others (CAP_CHOWN, as root: the kernel checks
// permissions against owners, so a file must belong to whoever made it).
// The group is the caller's unless the directory is set-group-ID, where the
// file system already gave it the directory's group. A daemon without
// CAP_CHOWN keeps what it creates as its own: without allow_other the
// caller is always the daemon's user anyway.
func (n *Node) own(ctx context.Context, rel string, st *unix.Stat_t) error {
	if !n.fsys.owner {
		return nil
	}
	c, ok := fuse.FromContext(ctx)
	if !ok {
		return nil
	}
	gid := int(c.Gid)
	if st.Gid != n.fsys.egid {
		gid = -1 // inherited from a set-group-ID directory
	}
	if err := n.fsys.store.Chown(rel, int(c.Uid), gid); err != nil {
		return err
	}
	st.Uid = c.Uid
	if gid >= 0 {
		st.Gid = uint32(gid)
	}
	return nil
}

// made finishes an operation that created rel: ownership, attributes, inode.
// If rel cannot be given to the caller it is removed again with undo.
func (n *Node) made(ctx context.Context, rel string, out *fuse.EntryOut, undo func(string) error) (*fs.Inode, syscall.Errno) {
	st, err := n.fsys.store.Lstat(rel)
	if err == nil {
		err = n.own(ctx, rel, &st)
	}
	if err != nil {
		if undo != nil {
			_ = undo(rel)
		}
		return nil, errno(err)
	}
	return n.newChild(ctx, &st, out), 0
}

func (n *Node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := tooLong(name); e != 0 {
		return nil, e
	}
	rel := n.child(name)
	if err := n.fsys.store.Mkdir(rel, mode&0o7777); err != nil {
		return nil, errno(err)
	}
	if m, ok := n.fsys.imp.(dirMaker); ok {
		// Its content is the file system's: never listed from its
		// prefix (which would bring back objects of files renamed or
		// deleted in it since). Best effort: a failure costs a listing.
		if err := m.Made(context.WithoutCancel(ctx), rel); err != nil {
			n.fsys.log.Warn("made directory not recorded as listed; it is listed at its first lookup", "dir", rel, "err", err)
		}
	}
	return n.madeNew(ctx, rel, out, n.fsys.store.Rmdir)
}

// dirMaker is what an Importer may offer to learn of directories made
// through the mount (internal/importer's Made).
type dirMaker interface {
	Made(ctx context.Context, dir string) error
}

func (n *Node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := tooLong(name); e != 0 {
		return nil, e
	}
	rel := n.child(name)
	if err := n.fsys.store.Symlink(target, rel); err != nil {
		return nil, errno(err)
	}
	return n.madeNew(ctx, rel, out, n.fsys.store.Unlink)
}

// Mknod makes a FIFO, a unix socket (bind(2) of a socket in the mount
// comes here), a device (the kernel lets only CAP_MKNOD callers ask), or an
// empty regular file (mknod(2) with S_IFREG). A special file lives in the
// store only: the exporter skips its entries (counted as skipped, as
// exporter.exportPath decides by the file's type), an export task never
// picks it, and `ferry hsm state` shows it never_archive. Its NEW entry is
// journaled all the same, like every name made through the mount, so the
// export counters show it.
func (n *Node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := tooLong(name); e != 0 {
		return nil, e
	}
	rel := n.child(name)
	if err := n.fsys.store.Mknod(rel, mode&(unix.S_IFMT|0o7777), uint64(dev)); err != nil {
		return nil, errno(err)
	}
	return n.madeNew(ctx, rel, out, n.fsys.store.Unlink)
}

// madeNew is made for a directory, symlink or mknod's file, journaled NEW once it has
// its owner.
func (n *Node) madeNew(ctx context.Context, rel string, out *fuse.EntryOut, undo func(string) error) (*fs.Inode, syscall.Errno) {
	in, e := n.made(ctx, rel, out, undo)
	if e != 0 {
		return nil, e
	}
	if err := n.fsys.wp.Made(ctx, rel); err != nil {
		return nil, errno(err)
	}
	return in, 0
}

func (n *Node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if e := tooLong(name); e != 0 {
		return nil, e
	}
	t, ok := target.(*Node)
	if !ok || t.fsys != n.fsys {
		return nil, syscall.EXDEV
	}
	st, err := n.fsys.wp.Link(ctx, t.rel(), n.child(name))
	if err != nil {
		return nil, errno(err)
	}
	return n.newChild(ctx, &st, out), 0
}

func (n *Node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.fsys.store.Readlink(n.rel())
	if err != nil {
		return nil, errno(err)
	}
	return []byte(t), 0
}

// Unlink removes a name (writepath: its object goes only if the
// association's policy has DELETED).
func (n *Node) Unlink(ctx context.Context, name string) syscall.Errno {
	return errno(n.fsys.wp.Unlink(ctx, n.child(name)))
}

func (n *Node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return errno(n.fsys.wp.Rmdir(ctx, n.child(name)))
}

func (n *Node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st, err := n.fsys.store.Statfs()
	if err != nil {
		return errno(err)
	}
	setStatfs(out, &st)
	return 0
}

// openFlags are the open(2) flags the store open gets for a FUSE open:
// O_APPEND is dropped because the kernel sends every write with its offset
// (pwrite on an O_APPEND descriptor would ignore it), FMODE_EXEC is not an
// open flag, O_DIRECT is the kernel's business (the daemon's descriptor
// stays buffered: go-fuse's buffers meet no alignment rule), and creation
// flags are the caller's to add.
func openFlags(flags uint32) int {
	return int(flags) &^ (unix.O_APPEND | fuse.FMODE_EXEC | unix.O_DIRECT | unix.O_CREAT | unix.O_EXCL | unix.O_NOCTTY)
}

// releaseGrace: for this long after the Release of an inode's last handle
// returned, a new open keeps that handle's io mode. The kernel holds the
// inode in the mode until it has read the reply to RELEASE, which go-fuse
// writes after Release returns, and answers an open in the other mode
// meanwhile with EIO (TestOpenDuringRelease). The reply takes microseconds;
// the grace is long enough for a loaded machine and short enough that a
// file written and then read later is read in passthrough.
const releaseGrace = time.Second

// justReleased reports whether the last handle of n was released less
// than releaseGrace ago (n.mu held, no handle open).
func (n *Node) justReleased() bool {
	return !n.releasedAt.IsZero() && time.Since(n.releasedAt) < releaseGrace
}

// modeFree reports whether the next open of rel may choose its io mode
// afresh: no handle is open, being released or released less than
// releaseGrace ago.
func (f *FS) modeFree(rel string) bool {
	return !f.nodeIs(rel, func(n *Node) bool { return n.busy() || n.justReleased() })
}

// busy reports whether a handle of n is open or being released (n.mu
// held): the kernel holds the inode's io mode.
func (n *Node) busy() bool { return n.opens > 0 || n.releasing.Load() > 0 }

// wantsWrite says whether open flags allow writing.
func wantsWrite(flags int) bool { return flags&unix.O_ACCMODE != unix.O_RDONLY }

// local reports whether every byte of open file f is in the store, which
// makes it fit for passthrough. A file with an unreadable state is treated
// as not local (its reads stay in the daemon, where they can fail loudly).
func (n *Node) local(f *os.File) bool {
	st, err := n.fsys.store.FileState(f)
	if errors.Is(err, store.ErrNoState) {
		return true
	}
	return err == nil && !st.Flags.Has(hsm.Released)
}

// Open opens the file (open). A released file served by the daemon keeps
// the kernel's cached pages (FOPEN_KEEP_CACHE): without it the kernel
// drops the inode's pages at every open and waits for each locked one, so
// while a read of a chunk waits for the repository (up to the importer's
// FetchTimeout) every other open of the file waited too — even to read
// chunks already local. Kept pages of a released file are the object's
// bytes of the stub's ETag; whatever changes them behind the mount
// (re-import, release) drops them explicitly (FS.Invalidate).
func (n *Node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, fl, e := n.open(ctx, flags)
	if f := asFile(h); e == 0 && f != nil && !f.pt && !n.local(f.f) {
		fl |= fuse.FOPEN_KEEP_CACHE
	}
	return h, fl, e
}

func (n *Node) open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	s, rel, of := n.fsys.store, n.rel(), openFlags(flags)
	if wantsWrite(of) && of&unix.O_TRUNC == 0 {
		// A released file is restored before anyone may write to it.
		if err := n.fsys.restore(ctx, rel); err != nil {
			return nil, 0, errno(err)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.busy() || n.justReleased() {
		// The kernel insists every open of the inode uses the mode
		// of those already open (or being released: file.go Release).
		if n.pt && wantsWrite(of) && !n.ptWrite {
			return nil, 0, syscall.ETXTBSY
		}
		f, err := n.openStore(ctx, rel, of)
		if err != nil {
			return nil, 0, errno(err)
		}
		if n.busy() || !n.pt || n.local(f) {
			return n.openedTrunc(f, of, n.pt)
		}
		// Released since its last handle closed: its reads must wait
		// for data, so it cannot be passthrough; the first-open path
		// below chooses.
		f.Close()
	}
	if !n.fsys.passthrough || wantsWrite(of) {
		// A first open for writing is served by the daemon, which sees
		// every write and keeps the content version exactly
		// (writepath BeginWrite); passthrough is for files opened to be read.
		f, err := n.openStore(ctx, rel, of)
		if err != nil {
			return nil, 0, errno(err)
		}
		n.pt = false
		return n.openedTrunc(f, of, false)
	}
	// First open, for reading: try a read-write descriptor, which can
	// back every later passthrough open of the inode, whatever its access
	// mode (the kernel still enforces the caller's mode on the caller's
	// file).
	f, err := n.openStore(ctx, rel, of&^unix.O_ACCMODE|unix.O_RDWR)
	rw := err == nil
	if err != nil {
		if f, err = n.openStore(ctx, rel, of); err != nil {
			return nil, 0, errno(err)
		}
	}
	pt := n.local(f)
	if !pt && rw && of&unix.O_ACCMODE != unix.O_RDWR {
		// Not passthrough: give the handle exactly the access asked for.
		f.Close()
		if f, err = s.OpenFile(rel, of&^unix.O_TRUNC, 0); err != nil {
			return nil, 0, errno(err)
		}
	}
	n.pt, n.ptWrite = pt, rw
	return n.opened(f, of, pt), 0, 0
}

// openedTrunc is opened for an open that may carry O_TRUNC: emptying the
// file is a content change (version bumped, journaled at close).
func (n *Node) openedTrunc(f *os.File, of int, pt bool) (fs.FileHandle, uint32, syscall.Errno) {
	h := n.opened(f, of, pt)
	var err error
	if of&unix.O_TRUNC != 0 && wantsWrite(of) {
		err = n.fsys.wp.Changed(&n.w, f)
	}
	if err == nil {
		// A passthrough writer's open journals (n.mu let go meanwhile).
		err = n.fsys.wp.UnseenOpen(asFile(h).w, n.rel, &n.mu)
	}
	if err != nil {
		asFile(h).discard() // n.mu is held: not Release
		return nil, 0, errno(err)
	}
	return h, 0, 0
}

// openStore opens rel in the store. With an importer, an O_TRUNC open for
// writing truncates after the open (FS.truncate): a released file's state
// must say, before anyone reads, that nothing is left to fetch.
func (n *Node) openStore(ctx context.Context, rel string, of int) (*os.File, error) {
	if of&unix.O_TRUNC == 0 || !wantsWrite(of) || n.fsys.imp == nil {
		return n.fsys.store.OpenFile(rel, of, 0)
	}
	f, err := n.fsys.store.OpenFile(rel, of&^unix.O_TRUNC, 0)
	if err != nil {
		return nil, err
	}
	if err := n.fsys.truncate(ctx, rel, f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Create makes a new regular file. O_EXCL is always added: the kernel only
// sends CREATE for a name it believes absent, and treats the answer as a
// file the caller created, skipping its permission check. Opening a file
// that appeared meanwhile (through the store directory, or another node)
// would hand the caller a file it may have no right to, so that race
// answers EEXIST.
func (n *Node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if e := tooLong(name); e != 0 {
		return nil, nil, 0, e
	}
	s, rel := n.fsys.store, n.child(name)
	// Read-write: the descriptor may back passthrough opens (see Open).
	of := openFlags(flags)&^unix.O_ACCMODE | unix.O_RDWR | unix.O_CREAT | unix.O_EXCL
	f, err := s.OpenFile(rel, of, mode&0o7777) // openat2 refuses type bits
	if err != nil {
		return nil, nil, 0, errno(err)
	}
	var st unix.Stat_t
	err = unix.Fstat(int(f.Fd()), &st)
	if err == nil {
		err = n.own(ctx, rel, &st)
	}
	if err != nil {
		f.Close()
		_ = s.Unlink(rel)
		return nil, nil, 0, errno(err)
	}
	ch := n.newChild(ctx, &st, out)
	c := ch.Operations().(*Node)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.opens == 0 {
		// Served by the daemon, as every first open for writing.
		c.pt, c.ptWrite = false, true
	}
	h := c.opened(f, of, c.pt)
	c.w.Created() // NEW at the first close
	return ch, h, 0, 0
}

func (n *Node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	rel := n.rel()
	if err := n.fsys.listed(ctx, rel); err != nil {
		return nil, 0, errno(err)
	}
	r, err := n.fsys.store.Readdir(rel)
	if err != nil {
		return nil, 0, errno(err)
	}
	return &dir{fsys: n.fsys, rel: rel, r: r}, 0, 0
}
