package fusefs

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
)

// AccessRecorder keeps the last-access times of files (Options.Access:
// the catalog, whose LeastRecentlyAccessed orders AUTO_RELEASE_DATA).
type AccessRecorder interface {
	// RecordAccess records access times (each path keeps the latest) in
	// one transaction.
	RecordAccess(ctx context.Context, accesses ...catalog.Access) error
}

// Access records (Options.Access). Every open of a regular file through the
// mount notes (path, now) in memory; one goroutine writes the batch with
// one RecordAccess every Options.AccessEvery, at once when it holds
// Options.AccessBatch distinct paths, and a last time at FS.Close. Only paths
// whose state says the repository knows them (`exists`: imported, released
// or exported files, the only candidates for release) are written, which
// keeps files outside associations and never-exported files out of the
// catalog; the filter reads the state at flush time, off the open's path.
// Memory is bounded: at most AccessBatch paths wait and as many are
// being written; an open that finds the batch full while the previous one
// is still being written is not recorded (counted in accessDropped) — the
// release order is best effort, never correctness. A path renamed or
// unlinked after its record is handled by the release task (it forgets
// records of paths gone).
const (
	DefaultAccessEvery = 2 * time.Second
	DefaultAccessBatch = 4096
)

// accessLog batches access records for an AccessRecorder.
type accessLog struct {
	rec     AccessRecorder
	max     int           // Options.AccessBatch
	every   time.Duration // Options.AccessEvery
	st      *store.Store
	log     *slog.Logger
	mu      sync.Mutex
	batch   map[string]time.Time
	kick    chan struct{} // cap 1: a full batch
	stop    chan struct{}
	done    chan struct{}
	start   sync.Once // the flusher, at the first record (or none, at close)
	once    sync.Once // close(stop)
	dropped atomic.Uint64
}

// newAccessLog returns the access log of rec (nil: none). Its flusher
// starts with the first record and stops at close.
func newAccessLog(opt Options, st *store.Store, lg *slog.Logger) *accessLog {
	if opt.Access == nil {
		return nil
	}
	a := &accessLog{
		rec: opt.Access, max: opt.AccessBatch, every: opt.AccessEvery, st: st, log: lg,
		batch: map[string]time.Time{},
		kick:  make(chan struct{}, 1),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if a.max <= 0 {
		a.max = DefaultAccessBatch
	}
	if a.every <= 0 {
		a.every = DefaultAccessEvery
	}
	return a
}

// record notes an access of store path rel at time at.
func (a *accessLog) record(rel string, at time.Time) {
	a.start.Do(func() { go a.run() })
	a.mu.Lock()
	_, known := a.batch[rel]
	if !known && len(a.batch) >= a.max {
		a.mu.Unlock()
		a.dropped.Add(1)
		a.wake()
		return
	}
	a.batch[rel] = at
	full := len(a.batch) >= a.max
	a.mu.Unlock()
	if full {
		a.wake()
	}
}

func (a *accessLog) wake() {
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// run flushes the batch every AccessEvery, when it fills up, and
// once more when close asks it to stop.
func (a *accessLog) run() {
	defer close(a.done)
	t := time.NewTicker(a.every)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			a.flush()
			return
		case <-t.C:
		case <-a.kick:
		}
		a.flush()
	}
}

// flush writes the batch's records of files the repository knows.
func (a *accessLog) flush() {
	a.mu.Lock()
	batch := a.batch
	if len(batch) == 0 {
		a.mu.Unlock()
		return
	}
	a.batch = make(map[string]time.Time, min(len(batch), a.max))
	a.mu.Unlock()
	out := make([]catalog.Access, 0, len(batch))
	for rel, at := range batch {
		if st, err := a.st.GetState(rel); err == nil && st.Flags.Has(hsm.Exists) {
			out = append(out, catalog.Access{Path: rel, At: at})
		}
	}
	if len(out) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.rec.RecordAccess(ctx, out...); err != nil {
		a.log.Warn("access times not recorded; release order falls back to file times", "files", len(out), "err", err)
	}
}

// close flushes what is batched and stops the flusher; none starts
// afterwards.
func (a *accessLog) close() {
	a.once.Do(func() { close(a.stop) })
	started := true
	a.start.Do(func() { started = false })
	if started {
		<-a.done
	}
}

// Close ends the work the FS does in the background: the access records
// batched so far are written (Options.Access) and the flusher stops. Call
// it once the mount has ended and before the AccessRecorder (the catalog)
// closes. Opens after Close are not recorded.
func (f *FS) Close() {
	if f.acc != nil {
		f.acc.close()
	}
}

// recordAccess notes an open of regular file n (n.mu is held).
func (n *Node) recordAccess() {
	if a := n.fsys.acc; a != nil {
		a.record(n.rel(), time.Now())
	}
}
