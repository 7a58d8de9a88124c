package exporter

import (
	"maps"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// Counters for the export metrics the daemon serves at /metrics. The exporter keeps them in memory (they
// restart at zero with the daemon, as Prometheus counters may); the daemon
// reads Stats at scrape time and exposes them, with the catalog's Depth and
// OldestAge for the backlog.

// LagBounds are the upper bounds, in seconds, of the export lag histogram's
// buckets (close → object visible); a last, implicit bucket is +Inf.
var LagBounds = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600}

// Histogram is a fixed-bucket histogram in Prometheus's shape.
type Histogram struct {
	Bounds []float64 // upper bounds (seconds), ascending
	// Cumulative[i] counts samples <= Bounds[i] (Prometheus's buckets);
	// Count counts all samples, +Inf included.
	Cumulative []uint64
	Count      uint64
	Sum        float64 // seconds
}

// Quantile estimates the q-quantile (0 < q ≤ 1) by linear interpolation in
// its bucket, as Prometheus's histogram_quantile does; +Inf samples report
// the last bound.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	lower, prev := 0.0, uint64(0)
	for i, b := range h.Bounds {
		if c := h.Cumulative[i]; float64(c) >= rank {
			if c == prev {
				return b
			}
			return lower + (b-lower)*(rank-float64(prev))/float64(c-prev)
		}
		lower, prev = b, h.Cumulative[i]
	}
	return h.Bounds[len(h.Bounds)-1]
}

// Stats is a snapshot of the exporter's counters.
type Stats struct {
	BytesExported   int64 // bytes uploaded (copies and metadata updates count none)
	ObjectsExported int64 // objects written (uploads, copies, directory and symlink objects)
	ObjectsDeleted  int64 // objects removed (DELETED policy, renames)
	EntriesDone     int64 // journal entries completed
	Skipped         int64 // entries completed without export (outside exporting associations, event not in the policy, path gone)
	// Failures counts failed attempts by error code (S3's code, PathSizeTooLong,
	// FileSizeTooLarge, FileChanged for an upload refused because the file
	// changed under it, …). Permanent ones are also in Parked.
	Failures map[string]int64
	Parked   int64 // entries parked after a permanent failure
	InFlight int64 // exports running now
	// WriterOpen counts attempts that waited for a writer the mount
	// cannot see (ErrWriterOpen); they are not failures.
	WriterOpen int64
	// Lag is the export lag: the latest append of an entry (close or
	// fsync) to the moment its export completed.
	Lag Histogram
}

type stats struct {
	bytes, objects, deleted, done, skipped, parked, inflight, writerOpen atomic.Int64

	mu       sync.Mutex
	failures map[string]int64
	lag      []uint64 // per bucket, not cumulative; len(LagBounds)+1
	lagCount uint64
	lagSum   float64
}

func (s *stats) init() {
	s.failures = map[string]int64{}
	s.lag = make([]uint64, len(LagBounds)+1)
}

func (s *stats) fail(code string) {
	s.mu.Lock()
	s.failures[code]++
	s.mu.Unlock()
}

func (s *stats) observeLag(d time.Duration) {
	sec := max(d.Seconds(), 0)
	i := sort.SearchFloat64s(LagBounds, sec)
	s.mu.Lock()
	s.lag[i]++
	s.lagCount++
	s.lagSum += sec
	s.mu.Unlock()
}

// finish records a completed entry; the lag of an entry that exported
// something runs from its latest append to now.
func (s *stats) finish(skipped bool, je catalog.JournalEntry) {
	s.done.Add(1)
	if skipped {
		s.skipped.Add(1)
		return
	}
	s.observeLag(time.Since(je.UpdatedAt))
}

// Stats returns a snapshot of the counters.
func (e *Exporter) Stats() Stats {
	s := &e.stats
	out := Stats{
		BytesExported: s.bytes.Load(), ObjectsExported: s.objects.Load(), ObjectsDeleted: s.deleted.Load(),
		EntriesDone: s.done.Load(), Skipped: s.skipped.Load(), Parked: s.parked.Load(), InFlight: s.inflight.Load(),
		WriterOpen: s.writerOpen.Load(),
	}
	s.mu.Lock()
	out.Failures = maps.Clone(s.failures)
	out.Lag = Histogram{Bounds: LagBounds, Cumulative: make([]uint64, len(LagBounds)), Count: s.lagCount, Sum: s.lagSum}
	var c uint64
	for i := range LagBounds {
		c += s.lag[i]
		out.Lag.Cumulative[i] = c
	}
	s.mu.Unlock()
	return out
}
