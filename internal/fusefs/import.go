package fusefs

import (
	"context"
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
)

// Importer is the lazy import behind the mount (internal/importer). The
// nodes call it and nothing else of the import: EnsureListed before a
// lookup in or a readdir of a directory, EnsureData before serving a read
// of a file that is not in passthrough mode, and before a write open of a
// released file.
type Importer interface {
	// EnsureListed makes directory dir (store-relative, "." = root) show
	// its repository entries.
	EnsureListed(ctx context.Context, dir string) error
	// EnsureData makes bytes [off, off+n) of file rel, open as f, local.
	EnsureData(ctx context.Context, rel string, f *os.File, off, n int64) error
}

// restorer is what an Importer may also offer to restore a whole file
// durably (internal/importer's Restore): EnsureData returns once bytes are
// readable, which may be before they are committed, and a file about to be
// written must no longer be released.
type restorer interface {
	Restore(ctx context.Context, rel string, progress func(n int64)) error
}

// listed runs the importer's EnsureListed for directory rel.
func (f *FS) listed(ctx context.Context, rel string) error {
	if f.imp == nil {
		return nil
	}
	if err := f.imp.EnsureListed(ctx, rel); err != nil {
		// Debug only: the importer logs each failed listing once, with
		// the endpoint and the prefix, however many lookups waited for
		// it (an interrupted caller is no failure: its errno is EINTR
		// and the next lookup lists again).
		f.log.Debug("lazy listing failed or interrupted", "dir", rel, "interrupted", ctx.Err() != nil, "err", err)
		return err
	}
	return nil
}

// released returns the state of open file fl when it is released.
func (f *FS) released(fl *os.File) (store.State, bool) {
	st, err := f.store.FileState(fl)
	if err != nil || !st.Flags.Has(hsm.Released) {
		return st, false
	}
	return st, true
}

// restore makes every byte of released file rel local before it is opened
// for writing or truncated to a size other than 0, so that a local write
// can never be overwritten by a later fetch. The lock of the node is not
// held: the fetch is network I/O.
func (f *FS) restore(ctx context.Context, rel string) error {
	if f.imp == nil {
		return nil
	}
	fl, err := f.store.OpenFile(rel, unix.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer fl.Close()
	st, ok := f.released(fl)
	if !ok {
		return nil
	}
	if r, ok := f.imp.(restorer); ok {
		err = r.Restore(ctx, rel, nil)
	} else {
		err = f.imp.EnsureData(ctx, rel, fl, 0, st.Size)
	}
	if err != nil {
		f.log.Warn("restore before write failed", "path", rel, "err", err)
		return err
	}
	return nil
}

// exclusiver is what an Importer may also offer to change a released file
// while none of its fetches runs (internal/importer's Exclusive).
type exclusiver interface {
	Exclusive(ctx context.Context, rel string, f *os.File, fn func() error) error
}

// truncate empties open file fl (an O_TRUNC open, a truncate to 0). For a
// released file nothing of the object matters any more: it is truncated
// and its state becomes hsm.Truncated (not released, no map) while the
// importer lets no fetch run, so no fetched bytes land in it afterwards.
func (f *FS) truncate(ctx context.Context, rel string, fl *os.File) error {
	do := func() error {
		if err := fl.Truncate(0); err != nil {
			return err
		}
		_, err := f.store.UpdateFileState(fl, truncState)
		return ignoreNoChange(err)
	}
	if _, ok := f.released(fl); ok {
		if ex, ok := f.imp.(exclusiver); ok {
			return ex.Exclusive(ctx, rel, fl, do)
		}
	}
	return do()
}

func truncState(st *store.State) error {
	if !st.Flags.Has(hsm.Released) {
		return errNoChange
	}
	st.Flags, st.Chunks = hsm.Truncated(st.Flags), nil
	return nil
}

func ignoreNoChange(err error) error {
	if errors.Is(err, errNoChange) || errors.Is(err, store.ErrNoState) {
		return nil
	}
	return err
}

var errNoChange = errors.New("no change")

// node returns the inode the kernel knows for rel, or nil.
func (f *FS) node(rel string) *Node {
	n := f.root.Load()
	if n == nil {
		return nil
	}
	if rel == "." {
		return n
	}
	in := n.EmbeddedInode()
	for _, name := range strings.Split(rel, "/") {
		if in = in.GetChild(name); in == nil {
			return nil
		}
	}
	c, _ := in.Operations().(*Node)
	return c
}

// InUse reports whether store-relative path rel is open through the mount
// now, or its last handle is being released (the importer's release
// refuses such files: an open during a Release keeps its passthrough mode,
// which must never read a released file).
func (f *FS) InUse(rel string) bool { return f.nodeIs(rel, (*Node).busy) }

// nodeIs reports pred of rel's node, called under the node's lock; false
// when the kernel knows no node for rel.
func (f *FS) nodeIs(rel string, pred func(*Node) bool) bool {
	n := f.node(rel)
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return pred(n)
}

// Invalidate tells the kernel that rel changed behind the mount (the
// importer re-imported, released, removed or made it): the name is
// dropped from the kernel's dentry cache, so the next lookup finds the new
// inode — or, for a name that has just appeared, does not answer from a
// cached failed lookup (--negative-timeout) — and a known inode's cached
// pages and attributes are dropped.
func (f *FS) Invalidate(rel string) {
	if n := f.node(rel); n != nil {
		n.NotifyContent(0, 0) // length 0: every page to the end
	}
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		if p := f.node(rel[:i]); p != nil {
			p.NotifyEntry(rel[i+1:])
		}
	} else if p := f.root.Load(); p != nil && rel != "." {
		p.NotifyEntry(rel)
	}
}
