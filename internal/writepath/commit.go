package writepath

import (
	"context"
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
)

// Handle is one open file of an Inode: the store's descriptor, and for a
// writer in passthrough mode what it last saw of the inode.
type Handle struct {
	in       *Inode
	f        *os.File
	fd       int
	pt       bool // passthrough: the kernel reads and writes f itself
	writable bool // opened for writing
	// unseen: a passthrough writer, counted in in.unseen from the open
	// to the release (see UnseenOpen).
	unseen bool

	smu  sync.Mutex
	seen statSeen // passthrough writers: the inode as last seen (Commit)
}

// NewHandle returns the handle of an open of in on store file fl, in
// passthrough mode or not, writable or not. A writable passthrough
// handle's writes never reach the daemon: Commit compares the inode with
// how it is now, and the exporter waits for its release (UnseenWriter).
func (w *Writer) NewHandle(in *Inode, fl *os.File, passthrough, writable bool) *Handle {
	h := &Handle{in: in, f: fl, fd: int(fl.Fd()), pt: passthrough, writable: writable}
	if passthrough && writable {
		h.unseen = true
		in.unseen.Add(1)
		h.resee()
	}
	return h
}

// Released ends h after its last commit (the release): a passthrough
// writer stops counting only now, so the exporter never sees the count
// drop before the final change is journaled.
func (h *Handle) Released() {
	if h.unseen {
		h.in.unseen.Add(-1)
	}
}

// Discard is called for h when its open failed after NewHandle (before
// Released, which ends it as usual). It may have changed the file (an
// O_TRUNC open), so the inode is left unjournaled: the next flush or
// release of the inode appends.
func (h *Handle) Discard() {
	if h.writable {
		h.in.unjournaled.Store(true)
	}
}

// kindFor is the journal kind of a content change of regular file fl:
// NEW while the repository has never had it (no `exists`), else CHANGED.
func (w *Writer) kindFor(fl *os.File) catalog.Kind {
	st, err := w.store.FileState(fl)
	if err == nil && st.Flags.Has(hsm.Exists) {
		return catalog.KindChanged
	}
	return catalog.KindNew
}

// released reports whether open file fl is released.
func (w *Writer) released(fl *os.File) bool {
	st, err := w.store.FileState(fl)
	return err == nil && st.Flags.Has(hsm.Released)
}

// Commit is the close (flush, release) and fsync side of the write path,
// for handle h of the file now at rel(): when the inode changed since the
// last append, the version is bumped once more — every byte acknowledged
// now has landed, so an upload that read the version before any of them
// cannot mark the file clean, even if the exporter read the version after
// the first write's bump (the window between VersionRead and the
// exporter's read) — and the journal entry is appended; it is committed
// before the caller replies (invariant 1): relaxed for a close (sync nil),
// durable for an fsync (see journal). sync (fsync) makes the data durable
// in between. A failure leaves the inode unjournaled, so the next flush or
// release tries again, and is returned: the close or fsync reports it.
//
// Commits of one inode run one at a time (Inode.cmu): a close or fsync
// that finds nothing left to journal returns only once the commit that
// took the change (another handle's flush, fsync or release) has appended
// it, or, if that append failed, after appending it itself.
func (w *Writer) Commit(ctx context.Context, h *Handle, rel func() string, sync func() error) error {
	in := h.in
	in.cmu.Lock()
	defer in.cmu.Unlock()
	if h.pt && h.writable {
		h.noticePassthroughWrites()
	}
	durable := sync != nil
	if !in.unjournaled.Swap(false) {
		if !durable {
			return nil
		}
		err := sync()
		if in.unsynced.Swap(false) {
			// Closed (relaxed append), then fsynced: the user now asks
			// for durability of what the earlier entry promised.
			if jerr := w.journal(ctx, catalog.JournalAppend{Path: rel(), Kind: w.kindFor(h.f)}); jerr != nil {
				in.unsynced.Store(true)
				err = errors.Join(err, jerr)
			}
		}
		return err
	}
	err := w.Bump(in, h.f)
	if sync != nil {
		err = errors.Join(err, sync())
	}
	// The entry goes in even if the bump or the sync failed: the bytes
	// that did land are exported eventually.
	// A close appends relaxed (committed, not fsynced: it survives kill -9
	// of the daemon, and a machine crash only loses it together with the
	// unsynced data it describes); an fsync appends durably.
	if jerr := w.journalContent(ctx, rel(), h, !durable); jerr != nil {
		err = errors.Join(err, jerr)
	}
	if err != nil {
		in.unjournaled.Store(true)
	} else {
		in.unsynced.Store(!durable)
	}
	return err
}

// journalContent appends NEW or CHANGED for a content change of h's inode
// under its path rel and every other name of a hard-linked file (the
// content is the inode's; see links.go).
func (w *Writer) journalContent(ctx context.Context, rel string, h *Handle, relaxed bool) error {
	kind := w.kindFor(h.f)
	if err := w.journal(ctx, catalog.JournalAppend{Path: rel, Kind: kind, Relaxed: relaxed}); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(h.fd, &st); err != nil {
		return err
	}
	return w.journalLinks(ctx, &st, rel, kind, relaxed)
}

// noticePassthroughWrites detects writes the kernel made directly to the
// store file (passthrough: the daemon never sees them) by the inode's
// change time and size, which every write moves (ext4 and XFS give a
// change after a stat a fine-grained time, Linux ≥ 6.13); a change marks
// the inode unjournaled, so Commit bumps the version and journals it.
func (h *Handle) noticePassthroughWrites() {
	var st unix.Stat_t
	if unix.Fstat(h.fd, &st) != nil {
		h.in.unjournaled.Store(true) // cannot tell: assume written
		return
	}
	seen := statSeen{st.Ctim, st.Mtim, st.Size}
	h.smu.Lock()
	moved := seen != h.seen
	h.seen = seen
	h.smu.Unlock()
	if moved {
		h.in.unjournaled.Store(true)
	}
}

// resee records the inode as it is now for noticePassthroughWrites.
func (h *Handle) resee() {
	var st unix.Stat_t
	if unix.Fstat(h.fd, &st) != nil {
		return
	}
	h.smu.Lock()
	h.seen = statSeen{st.Ctim, st.Mtim, st.Size}
	h.smu.Unlock()
}

// statSeen is what noticePassthroughWrites compares.
type statSeen struct {
	ctime, mtime unix.Timespec
	size         int64
}

// UnseenOpen is called at the open of h, a new handle: when h is a writer
// in passthrough mode (it joined readers that opened the inode first), its
// writes will go through the kernel, unseen by the daemon, and nothing
// would show that the file is changing until its release. So now, before
// the open returns, the version is bumped (an exported file becomes dirty)
// and NEW or CHANGED is appended for rel(), relaxed: if the daemon dies
// while the writer is open, the entry is pending and the restarted
// exporter uploads what the file holds then (invariant 1). While any such
// writer is open the exporter neither completes the entry nor marks the
// file clean (UnseenWriter); the writer's release journals its change as
// every passthrough writer's commit does. A failure fails the open.
//
// held is a lock the caller holds (the FUSE node's); it is let go while
// the journal appends (catalog I/O, over the network with a remote
// catalog): h is counted among the node's opens already, so the open-mode
// bookkeeping it guards is consistent meanwhile.
func (w *Writer) UnseenOpen(h *Handle, rel func() string, held sync.Locker) error {
	if h == nil || !h.unseen {
		return nil
	}
	if err := w.Bump(h.in, h.f); err != nil {
		return err
	}
	held.Unlock()
	err := w.journalContent(context.Background(), rel(), h, true)
	held.Lock()
	if err != nil {
		return err
	}
	h.in.unsynced.Store(true)
	h.resee() // the bump moved the ctime: only the writer's own changes count
	return nil
}

// UnseenWriter reports whether the inode (dev, ino) of the store is open
// by a writer in passthrough mode (exporter.Config's UnseenWriter): its
// content may be changing with no version bump to show it, so an export
// must not mark it clean nor complete its journal entry. The count rises
// before the open's bump and falls after the release's commit, so an
// export that saw it at zero and marks the file clean is followed by a
// bump (dirty again) and a newer journal entry.
func (w *Writer) UnseenWriter(dev, ino uint64) bool {
	w.omu.Lock()
	in := w.openInodes[inodeKey{dev, ino}]
	w.omu.Unlock()
	return in != nil && in.unseen.Load() > 0
}
