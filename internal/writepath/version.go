package writepath

import (
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// inodeKey identifies a store inode (the exporter names files this way in
// VersionRead).
type inodeKey struct{ dev, ino uint64 }

// Inode is the write bookkeeping of a store inode: its content version
// protocol and whether its last change is journaled. The FUSE node of the
// inode holds one (hard links share it); the zero value is ready.
type Inode struct {
	// mu is the per-file lock of store.BumpVersion's protocol: writes
	// served by the daemon hold it shared from their look at bumped to
	// the end of their pwrite; VersionRead takes it exclusively.
	mu     sync.RWMutex
	bumped bool // the version was bumped since the open or the last VersionRead
	// exporting: the exporter read the inode's version recently (since
	// this open, or shortly before it): writes bump again after their
	// bytes land, see EndWrite.
	exporting bool
	// unjournaled: content changed (or the file was created) since the
	// last journal append; the next flush, fsync or release appends.
	unjournaled atomic.Bool
	// cmu serializes the commits (Writer.Commit) of the inode, from
	// taking unjournaled to the end of the append. unjournaled is the
	// inode's, not a handle's: the commit that takes it appends for every
	// handle, so another handle's flush or fsync that finds it clear must
	// wait for that append before it answers (invariant 1,
	// docs/invariants.md). Without cmu, the kernel's late RELEASE of an
	// earlier handle took the change of an O_TRUNC open and the open's
	// close returned before its entry was committed (internal/fusefs
	// TestCommitWaitsForOtherHandles). Held across the catalog append,
	// which every waiter has to wait for anyway; it never blocks another
	// inode.
	cmu sync.Mutex
	// unsynced: the last append for the inode was relaxed (a close): a
	// later fsync appends again, durably, even with nothing new written.
	unsynced atomic.Bool
	// unseen counts the open handles of writers in passthrough mode,
	// whose writes the daemon never sees (Writer.UnseenWriter).
	unseen atomic.Int32
	key    inodeKey // valid while the inode is open
}

// Created records that the inode's file was just created: its NEW entry
// is appended at the first flush, fsync or release.
func (in *Inode) Created() { in.unjournaled.Store(true) }

// VersionRead is exporter.Config.VersionRead: the exporter is about to read
// the content version of the inode (dev, ino) for an upload. The "bumped"
// bit is cleared under the per-file lock, after every write that saw it
// set has finished, so the next write bumps the version again and the
// upload does not mark the file clean (invariant 2). Inodes not open
// (Opened) need nothing: their next open starts unbumped.
//
// The exporter reads the version only after VersionRead returns, so a
// write can bump between the two, and later writes would pass unbumped
// while the upload runs. So from VersionRead on, until the last close,
// every write of the inode bumps the version once more after its bytes
// landed: a byte that lands after the exporter's read is always followed
// by a bump, which either keeps the upload from marking the file clean or
// makes it dirty again. An inode opened after VersionRead gets the same
// treatment: the last recentReads VersionReads are remembered.
func (w *Writer) VersionRead(dev, ino uint64) {
	k := inodeKey{dev, ino}
	w.vmu.Lock()
	if old := w.recent[w.recentPos]; old != (inodeKey{}) {
		if w.recentSet[old]--; w.recentSet[old] <= 0 {
			delete(w.recentSet, old)
		}
	}
	w.recent[w.recentPos] = k
	w.recentPos = (w.recentPos + 1) % len(w.recent)
	w.recentSet[k]++
	w.vmu.Unlock()
	// Recorded above before the lookup, and Opened adds to openInodes
	// before it checks recentSet: one of the two sees the other.
	w.omu.Lock()
	in := w.openInodes[k]
	w.omu.Unlock()
	if in == nil {
		return
	}
	in.mu.Lock()
	in.bumped = false
	in.exporting = true
	in.mu.Unlock()
}

// recentReads is how many VersionReads a Writer remembers for inodes
// opened later (an export in flight is one of the last few: the exporter
// runs at most its Workers at once).
const recentReads = 4096

// readRecently reports whether the exporter read k's version among the
// last recentReads VersionReads.
func (w *Writer) readRecently(k inodeKey) bool {
	w.vmu.Lock()
	defer w.vmu.Unlock()
	return w.recentSet[k] > 0
}

// Opened records in as open on store file fl (its first open) so that
// VersionRead finds it; the caller serializes the opens and closes of in.
func (w *Writer) Opened(in *Inode, fl *os.File) {
	var st unix.Stat_t
	if unix.Fstat(int(fl.Fd()), &st) != nil {
		return
	}
	k := inodeKey{st.Dev, st.Ino}
	w.omu.Lock()
	w.openInodes[k] = in
	w.omu.Unlock()
	exporting := w.readRecently(k)
	in.mu.Lock()
	in.bumped = false // the first write after an open bumps
	in.exporting = exporting
	in.key = k
	in.mu.Unlock()
}

// Closed forgets in after its last close (see Opened).
func (w *Writer) Closed(in *Inode) {
	w.omu.Lock()
	if w.openInodes[in.key] == in {
		delete(w.openInodes, in.key)
	}
	w.omu.Unlock()
}

// bump records a local modification of open file fl: the content version
// goes up and an exported file becomes dirty (store.BumpVersion).
func (w *Writer) bump(fl *os.File) error {
	_, err := w.store.BumpVersion(fl)
	return err
}

// BeginWrite is called before a write the daemon serves: it bumps the
// version unless that was done since the open or the last VersionRead,
// and returns with in.mu held shared (unless it fails); the caller calls
// EndWrite after its pwrite. The bump comes before the bytes land, so an
// exporter that read the version earlier sees it move.
func (w *Writer) BeginWrite(in *Inode, fl *os.File) error {
	for {
		in.mu.RLock()
		if in.bumped {
			return nil
		}
		in.mu.RUnlock()
		in.mu.Lock()
		if !in.bumped {
			if err := w.bump(fl); err != nil {
				in.mu.Unlock()
				return err
			}
			in.bumped = true
		}
		in.mu.Unlock()
	}
}

// EndWrite ends a write begun by BeginWrite; changed says bytes may have
// landed. While the exporter may be reading the inode (exporting), the
// version is bumped again now that they have (see VersionRead); a failure
// of that bump is returned (the write is not acknowledged).
func (w *Writer) EndWrite(in *Inode, fl *os.File, changed bool) error {
	var err error
	if changed {
		in.unjournaled.Store(true)
		if in.exporting {
			err = w.bump(fl)
		}
	}
	in.mu.RUnlock()
	return err
}

// Changed records a content change made by the daemon itself (an O_TRUNC
// open): the version is bumped under the per-file lock and the next flush
// journals it.
func (w *Writer) Changed(in *Inode, fl *os.File) error {
	if err := w.BeginWrite(in, fl); err != nil {
		return err
	}
	return w.EndWrite(in, fl, true)
}

// Bump bumps the version under the per-file lock (exclusive: no write of
// the daemon is half done) and leaves the bit set.
func (w *Writer) Bump(in *Inode, fl *os.File) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := w.bump(fl); err != nil {
		return err
	}
	in.bumped = true
	return nil
}

// Resize changes the size of open file fl with resize (a truncate), the
// content version bumped before it — unless fl is released: a released
// file emptied is not released any more only after — and after it. Its
// CHANGED entry is MetaChanged's.
func (w *Writer) Resize(in *Inode, fl *os.File, resize func() error) error {
	if !w.released(fl) {
		if err := w.Bump(in, fl); err != nil {
			return err
		}
	}
	if err := resize(); err != nil {
		return err
	}
	return w.Bump(in, fl)
}
