package fusefs

import (
	"bytes"
	"context"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/testutil"
	"github.com/ferry-hpc/ferry/internal/writepath"
)

// gateJournal is a Journal whose next append can be held (arm): it says
// so on started and goes to the catalog only once release is closed. It
// records every append the catalog acknowledged.
type gateJournal struct {
	writepath.Journal
	mu       sync.Mutex
	started  chan struct{} // armed: closed when the held append arrives
	release  chan struct{}
	appended []catalog.JournalAppend
}

// arm holds the next append until the returned release is closed, and
// forgets the appends so far.
func (g *gateJournal) arm() (started, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.appended = nil
	g.started, g.release = make(chan struct{}), make(chan struct{})
	return g.started, g.release
}

func (g *gateJournal) Append(ctx context.Context, entries ...catalog.JournalAppend) error {
	g.mu.Lock()
	started, release := g.started, g.release
	g.started, g.release = nil, nil
	g.mu.Unlock()
	if started != nil {
		close(started)
		<-release
	}
	err := g.Journal.Append(ctx, entries...)
	if err == nil {
		g.mu.Lock()
		g.appended = append(g.appended, entries...)
		g.mu.Unlock()
	}
	return err
}

// committed reports whether the catalog acknowledged an append for path,
// a durable one if durable.
func (g *gateJournal) committed(path string, durable bool) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, e := range g.appended {
		if e.Path == path && (!durable || !e.Relaxed) {
			return true
		}
	}
	return false
}

// flushWaitsForCommit reports whether a flush or fsync of this process's
// mount waits in the write path's Commit for the inode's commit lock
// (writepath.Inode's cmu). The daemon serves the mount from the test's own
// process, so its goroutines are in runtime.Stack: a function line
// `sync.(*Mutex).Lock(` directly above `writepath.(*Writer).Commit(`,
// called by Flush or Fsync.
func flushWaitsForCommit() bool {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		var fns [][]byte
		for _, l := range bytes.Split(g, []byte("\n")) {
			if len(l) > 0 && l[0] != '\t' && !bytes.HasPrefix(l, []byte("goroutine ")) {
				fns = append(fns, l)
			}
		}
		for i := 0; i+2 < len(fns); i++ {
			if bytes.HasPrefix(fns[i], []byte("sync.(*Mutex).Lock(")) &&
				bytes.Contains(fns[i+1], []byte("/writepath.(*Writer).Commit(")) &&
				(bytes.Contains(fns[i+2], []byte("/fusefs.(*file).Flush(")) ||
					bytes.Contains(fns[i+2], []byte("/fusefs.(*file).Fsync("))) {
				return true
			}
		}
	}
	return false
}

// TestCommitWaitsForOtherHandles: whether an inode changed since its last
// entry is one bit per inode, shared by its handles, so the commit (flush,
// fsync or release) that takes it appends for all of them. A close or
// fsync of another handle that finds the bit clear meanwhile must not
// answer before that append is committed (invariant 1); an fsync must in
// addition find the entry durable. Here handle B writes, handle A's close
// takes the change and its append is held; B's close or fsync must wait
// for it. Without the commit lock, B answered at once with nothing
// journaled: that was TestJournalEntries' flake under load (when it ran
// through the mount; "O_TRUNC open: journal [],
// want [{ExtData/keep NEW }]"), where the kernel's RELEASE of the previous
// step's handle, sent after its close(2) returned, took the change of the
// O_TRUNC open, and the O_TRUNC handle's close returned before the entry
// was committed.
//
// Deterministic: A's append is held until B either answers (the bug: its
// entry cannot be committed yet) or is seen waiting for A's commit.
func TestCommitWaitsForOtherHandles(t *testing.T) {
	for _, tc := range []struct {
		name    string
		op      func(*os.File) error
		durable bool // the entry must be durable when op returns
	}{
		{"close", (*os.File).Close, false},
		{"fsync", (*os.File).Sync, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g *gateJournal
			je := mountJournalWith(t, t.TempDir(), Options{}, false, func(j writepath.Journal) writepath.Journal {
				g = &gateJournal{Journal: j}
				return g
			})
			rel := "ExtData/f"
			must(t, os.WriteFile(je.m(rel), []byte("0"), 0o644))
			a, err := os.OpenFile(je.m(rel), os.O_RDWR, 0)
			must(t, err)
			b, err := os.OpenFile(je.m(rel), os.O_RDWR, 0)
			must(t, err)
			defer b.Close() // after op's close: an error, ignored
			// The creating handle's RELEASE (sent after its close
			// returned) must be over, or it could take B's change.
			testutil.Eventually(t, 10*time.Second, "the release of the creating handle", func() bool {
				return je.fsys.nodeIs(rel, func(n *Node) bool { return n.opens == 2 && n.releasing.Load() == 0 })
			})
			// The creation's close appended relaxed; an fsync now
			// makes it durable, so only B's write is left to journal.
			must(t, b.Sync())
			_, err = b.WriteAt([]byte("b"), 0)
			must(t, err)
			je.drainJournal(t)

			started, release := g.arm()
			doneA := make(chan error, 1)
			go func() { doneA <- a.Close() }()
			select {
			case <-started: // A's flush took the change; its append is held
			case err := <-doneA:
				t.Fatalf("close of A returned (%v) without appending B's write", err)
			case <-time.After(10 * time.Second):
				t.Fatal("timed out waiting for A's flush to append")
			}
			doneB := make(chan error, 1)
			go func() { doneB <- tc.op(b) }()

			deadline := time.Now().Add(10 * time.Second)
			for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
				select {
				case err := <-doneB:
					// A's append is still held: nothing of B's write can
					// be committed.
					ok := g.committed(rel, tc.durable)
					close(release)
					must(t, <-doneA)
					if !ok {
						t.Fatalf("B's %s returned (err %v) before the entry of its write was committed (A's append still held)", tc.name, err)
					}
					return
				default:
				}
				if flushWaitsForCommit() {
					break
				}
				if time.Now().After(deadline) {
					close(release)
					t.Fatalf("timed out: B's %s neither returned nor waits for A's commit", tc.name)
				}
				time.Sleep(wait)
			}
			close(release)
			must(t, <-doneA)
			must(t, <-doneB)
			if !g.committed(rel, tc.durable) {
				t.Fatalf("B's %s returned with no entry for its write (durable: %v)", tc.name, tc.durable)
			}
			if got := entriesOf(je.pending(t, "")); len(got) != 1 || got[0] != (entry{rel, "NEW", ""}) {
				t.Fatalf("journal %v, want [{%s NEW }]", got, rel)
			}
		})
	}
}
