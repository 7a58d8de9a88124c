package fusefs

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// inodeKey identifies a store inode (the exporter names files this way in
// VersionRead).
type inodeKey struct{ dev, ino uint64 }

// wstate is the write bookkeeping of an inode (one per Node; hard links
// share it). See "Write path" in the package comment.
type wstate struct {
	// mu is the per-file lock of store.BumpVersion's protocol: writes
	// served by the daemon hold it shared from their look at bumped to
	// the end of their pwrite; VersionRead takes it exclusively.
	mu     sync.RWMutex
	bumped bool // the version was bumped since the open or the last VersionRead
	// exporting: the exporter read the inode's version recently (since
	// this open, or shortly before it): writes bump again after their
	// bytes land, see Write.
	exporting bool
	// unjournaled: content changed (or the file was created) since the
	// last journal append; the next flush, fsync or release appends.
	unjournaled atomic.Bool
	// cmu serializes the commits (file.commit) of the inode, from taking
	// unjournaled to the end of the append. unjournaled is the inode's,
	// not a handle's: the commit that takes it appends for every handle,
	// so another handle's flush or fsync that finds it clear must wait
	// for that append before it answers (invariant 1, docs/invariants.md). Without cmu, the
	// kernel's late RELEASE of an earlier handle took the change of an
	// O_TRUNC open and the open's close returned before its entry was
	// committed (TestCommitWaitsForOtherHandles). Held across the
	// catalog append, which every waiter has to wait for anyway; it
	// never blocks another inode.
	cmu sync.Mutex
	// unsynced: the last append for the inode was relaxed (a close): a
	// later fsync appends again, durably, even with nothing new written.
	unsynced atomic.Bool
	// unseen counts the open handles of writers in passthrough mode,
	// whose writes the daemon never sees (FS.UnseenWriter).
	unseen atomic.Int32
	// releasing counts Releases in progress (file.go): the kernel holds
	// the inode's io mode until their replies, so an open meanwhile keeps
	// the mode of the handles being released (Node.Open).
	releasing atomic.Int32
	key       inodeKey // valid while the node is open
}

// VersionRead is exporter.Config.VersionRead: the exporter is about to read
// the content version of the inode (dev, ino) for an upload. The "bumped"
// bit is cleared under the per-file lock, after every write that saw it
// set has finished, so the next write bumps the version again and the
// upload does not mark the file clean (invariant 2). Inodes not open
// through the mount need nothing: their next open starts unbumped.
//
// The exporter reads the version only after VersionRead returns, so a
// write can bump between the two, and later writes would pass unbumped
// while the upload runs. So from VersionRead on, until the last close,
// every write of the inode bumps the version once more after its bytes
// landed: a byte that lands after the exporter's read is always followed
// by a bump, which either keeps the upload from marking the file clean or
// makes it dirty again. An inode opened after VersionRead gets the same
// treatment: the last recentReads VersionReads are remembered.
func (f *FS) VersionRead(dev, ino uint64) {
	k := inodeKey{dev, ino}
	f.vmu.Lock()
	if old := f.recent[f.recentPos]; old != (inodeKey{}) {
		if f.recentSet[old]--; f.recentSet[old] <= 0 {
			delete(f.recentSet, old)
		}
	}
	f.recent[f.recentPos] = k
	f.recentPos = (f.recentPos + 1) % len(f.recent)
	f.recentSet[k]++
	f.vmu.Unlock()
	// Recorded above before the lookup, and registerOpen adds to
	// openInodes before it checks recentSet: one of the two sees the other.
	f.omu.Lock()
	n := f.openInodes[k]
	f.omu.Unlock()
	if n == nil {
		return
	}
	n.w.mu.Lock()
	n.w.bumped = false
	n.w.exporting = true
	n.w.mu.Unlock()
}

// recentReads is how many VersionReads FS remembers for inodes opened
// later (an export in flight is one of the last few: the exporter runs at
// most its Workers at once).
const recentReads = 4096

// readRecently reports whether the exporter read k's version among the
// last recentReads VersionReads.
func (f *FS) readRecently(k inodeKey) bool {
	f.vmu.Lock()
	defer f.vmu.Unlock()
	return f.recentSet[k] > 0
}

// registerOpen records n as open on store inode fl (first open) so that
// VersionRead finds it; n.mu is held.
func (n *Node) registerOpen(fl *os.File) {
	var st unix.Stat_t
	if unix.Fstat(int(fl.Fd()), &st) != nil {
		return
	}
	k := inodeKey{st.Dev, st.Ino}
	f := n.fsys
	f.omu.Lock()
	f.openInodes[k] = n
	f.omu.Unlock()
	exporting := f.readRecently(k)
	n.w.mu.Lock()
	n.w.bumped = false // the first write after an open bumps
	n.w.exporting = exporting
	n.w.key = k
	n.w.mu.Unlock()
}

// unregisterOpen forgets n after its last release; n.mu is held.
func (n *Node) unregisterOpen() {
	f := n.fsys
	f.omu.Lock()
	if f.openInodes[n.w.key] == n {
		delete(f.openInodes, n.w.key)
	}
	f.omu.Unlock()
}

// bump records a local modification of open file fl: the content version
// goes up and an exported file becomes dirty (store.BumpVersion).
func (f *FS) bump(fl *os.File) error {
	_, err := f.store.BumpVersion(fl)
	return err
}

// beginWrite is called before a write the daemon serves: it bumps the
// version unless that was done since the open or the last VersionRead,
// and returns with n.w.mu held shared; the caller calls endWrite after its
// pwrite. The bump comes before the bytes land, so an exporter that read
// the version earlier sees it move.
func (n *Node) beginWrite(fl *os.File) error {
	w := &n.w
	for {
		w.mu.RLock()
		if w.bumped {
			return nil
		}
		w.mu.RUnlock()
		w.mu.Lock()
		if !w.bumped {
			if err := n.fsys.bump(fl); err != nil {
				w.mu.Unlock()
				return err
			}
			w.bumped = true
		}
		w.mu.Unlock()
	}
}

// endWrite ends a write begun by beginWrite; changed says bytes may have
// landed. While the exporter may be reading the inode (exporting), the
// version is bumped again now that they have (see VersionRead); a failure
// of that bump is returned (the write is not acknowledged).
func (n *Node) endWrite(fl *os.File, changed bool) error {
	var err error
	if changed {
		n.w.unjournaled.Store(true)
		if n.w.exporting {
			err = n.fsys.bump(fl)
		}
	}
	n.w.mu.RUnlock()
	return err
}

// changed records a content change made by the daemon itself (an O_TRUNC
// open, fallocate): the version is bumped under the per-file lock and the
// next flush journals it.
func (n *Node) changed(fl *os.File) error {
	if err := n.beginWrite(fl); err != nil {
		return err
	}
	return n.endWrite(fl, true)
}

// commit is the close (flush, release) and fsync side of the write path:
// when the inode changed since the last append, the version is bumped once
// more — every byte acknowledged now has landed, so an upload that read the
// version before any of them cannot mark the file clean, even if the
// exporter read the version after the first write's bump (the window
// between VersionRead and the exporter's read) — and the journal entry is
// appended; it is committed before the caller replies (invariant 1):
// relaxed for a close, durable for an fsync (see journal). sync
// (fsync) makes the data durable in between. A failure leaves the inode
// unjournaled, so the next flush or release tries again, and is returned:
// the close or fsync reports it.
//
// Commits of one inode run one at a time (w.cmu): a close or fsync that
// finds nothing left to journal returns only once the commit that took
// the change (another handle's flush, fsync or release) has appended it,
// or, if that append failed, after appending it itself.
func (h *file) commit(ctx context.Context, sync func() error) error {
	n := h.node
	n.w.cmu.Lock()
	defer n.w.cmu.Unlock()
	if h.pt && h.writable {
		h.noticePassthroughWrites()
	}
	durable := sync != nil
	if !n.w.unjournaled.Swap(false) {
		if !durable {
			return nil
		}
		err := sync()
		if n.w.unsynced.Swap(false) {
			// Closed (relaxed append), then fsynced: the user now asks
			// for durability of what the earlier entry promised.
			rel := n.rel()
			if jerr := n.fsys.wp.Append(ctx, catalog.JournalAppend{Path: rel, Kind: n.fsys.wp.KindFor(h.f)}); jerr != nil {
				n.w.unsynced.Store(true)
				err = errors.Join(err, jerr)
			}
		}
		return err
	}
	err := n.bumpLocked(h.f)
	if sync != nil {
		err = errors.Join(err, sync())
	}
	// The entry goes in even if the bump or the sync failed: the bytes
	// that did land are exported eventually.
	// A close appends relaxed (committed, not fsynced: it survives kill -9
	// of the daemon, and a machine crash only loses it together with the
	// unsynced data it describes); an fsync appends durably.
	if jerr := h.journalContent(ctx, !durable); jerr != nil {
		err = errors.Join(err, jerr)
	}
	if err != nil {
		n.w.unjournaled.Store(true)
	} else {
		n.w.unsynced.Store(!durable)
	}
	return err
}

// journalContent appends NEW or CHANGED for a content change of h's
// inode (writepath: every name of a hard-linked file).
func (h *file) journalContent(ctx context.Context, relaxed bool) error {
	return h.node.fsys.wp.JournalContent(ctx, h.node.rel(), h.f, h.fd, relaxed)
}

// bumpLocked bumps the version under the per-file lock (exclusive: no
// write of the daemon is half done) and leaves the bit set.
func (n *Node) bumpLocked(fl *os.File) error {
	n.w.mu.Lock()
	defer n.w.mu.Unlock()
	if err := n.fsys.bump(fl); err != nil {
		return err
	}
	n.w.bumped = true
	return nil
}

// noticePassthroughWrites detects writes the kernel made directly to the
// store file (passthrough: the daemon never sees them) by the inode's
// change time and size, which every write moves (ext4 and XFS give a
// change after a stat a fine-grained time, Linux ≥ 6.13); a change marks
// the inode unjournaled, so commit bumps the version and journals it.
func (h *file) noticePassthroughWrites() {
	var st unix.Stat_t
	if unix.Fstat(h.fd, &st) != nil {
		h.node.w.unjournaled.Store(true) // cannot tell: assume written
		return
	}
	seen := statSeen{st.Ctim, st.Mtim, st.Size}
	h.smu.Lock()
	moved := seen != h.seen
	h.seen = seen
	h.smu.Unlock()
	if moved {
		h.node.w.unjournaled.Store(true)
	}
}

// resee records the inode as it is now for noticePassthroughWrites.
func (h *file) resee() {
	var st unix.Stat_t
	if unix.Fstat(h.fd, &st) != nil {
		return
	}
	h.smu.Lock()
	h.seen = statSeen{st.Ctim, st.Mtim, st.Size}
	h.smu.Unlock()
}

// unseenWriter is called at the open of h, after opened: when h is a
// writer in passthrough mode (it joined readers that opened the inode
// first), its writes will go through the kernel, unseen by the daemon, and
// nothing would show that the file is changing until its release. So now,
// before the open returns, the version is bumped (an exported file becomes
// dirty) and NEW or CHANGED is appended, relaxed: if the daemon dies while
// the writer is open, the entry is pending and the restarted exporter
// uploads what the file holds then (invariant 1). While any such writer is
// open the exporter neither completes the entry nor marks the file clean
// (FS.UnseenWriter); the writer's release journals its change as every
// passthrough writer's commit does. A failure fails the open.
//
// n.mu is held by the caller (Node.Open); it is let go while the journal
// appends (catalog I/O, over the network with a remote catalog): h is
// counted among the node's opens already, so the open-mode bookkeeping it
// guards is consistent meanwhile.
func (n *Node) unseenWriter(h *file) error {
	if h == nil || !h.unseen {
		return nil
	}
	if err := n.bumpLocked(h.f); err != nil {
		return err
	}
	n.mu.Unlock()
	err := h.journalContent(context.Background(), true)
	n.mu.Lock()
	if err != nil {
		return err
	}
	n.w.unsynced.Store(true)
	h.resee() // the bump moved the ctime: only the writer's own changes count
	return nil
}

// UnseenWriter reports whether the inode (dev, ino) of the store is open
// through the mount by a writer in passthrough mode (exporter.Config's
// UnseenWriter): its content may be changing with no version bump to show
// it, so an export must not mark it clean nor complete its journal entry.
// The count rises before the open's bump and falls after the release's
// commit, so an export that saw it at zero and marks the file clean is
// followed by a bump (dirty again) and a newer journal entry.
func (f *FS) UnseenWriter(dev, ino uint64) bool {
	f.omu.Lock()
	n := f.openInodes[inodeKey{dev, ino}]
	f.omu.Unlock()
	return n != nil && n.w.unseen.Load() > 0
}

// statSeen is what noticePassthroughWrites compares.
type statSeen struct {
	ctime, mtime unix.Timespec
	size         int64
}
