package progress

import (
	"fmt"
	"math"
	"sync/atomic"
	"time"
)

// counters is the state the hot path touches. Every field is written with a
// single atomic add and nothing else: no mutex, no channel. doneBytes, the
// field bumped per chunk, sits on its own cache line so the per-file
// counters do not bounce it between cores.
type counters struct {
	doneBytes  atomic.Int64
	_          [56]byte
	doneFiles  atomic.Int64
	totalFiles atomic.Int64
	totalBytes atomic.Int64
	_          [40]byte
}

func (c *counters) AddTotal(files, bytes int64) {
	if files != 0 {
		c.totalFiles.Add(files)
	}
	if bytes != 0 {
		c.totalBytes.Add(bytes)
	}
}

func (c *counters) Add(bytes int64) { c.doneBytes.Add(bytes) }

func (c *counters) FileDone() { c.doneFiles.Add(1) }

// snapshot is one reading of the counters plus the rate at that moment.
// The four loads are not one atomic step; a reading may mix values from
// either side of a concurrent Add, which a display can afford.
type snapshot struct {
	doneBytes, totalBytes int64
	doneFiles, totalFiles int64
	rate                  float64 // bytes per second, moving average
}

func (c *counters) load() snapshot {
	return snapshot{
		doneBytes:  c.doneBytes.Load(),
		totalBytes: c.totalBytes.Load(),
		doneFiles:  c.doneFiles.Load(),
		totalFiles: c.totalFiles.Load(),
	}
}

// tracked reports whether there is anything to show yet.
func (s snapshot) tracked() bool {
	return s.totalBytes != 0 || s.totalFiles != 0 || s.doneBytes != 0 || s.doneFiles != 0
}

// finished reports whether everything discovered has been done.
func (s snapshot) finished() bool {
	return s.doneBytes >= s.totalBytes && s.doneFiles >= s.totalFiles
}

// percent is the share of bytes done, or of files when no bytes are
// expected (only empty files), floored and capped at 100. ok is false when
// there is no total to compare with.
func (s snapshot) percent() (p int, ok bool) {
	done, total := s.doneBytes, s.totalBytes
	if total <= 0 {
		done, total = s.doneFiles, s.totalFiles
	}
	if total <= 0 {
		return 0, false
	}
	f := math.Floor(float64(done) * 100 / float64(total))
	return int(min(max(f, 0), 100)), true
}

// eta is the time left at the current rate; ok is false when the rate is
// zero and work remains.
func (s snapshot) eta() (d time.Duration, ok bool) {
	left := s.totalBytes - s.doneBytes
	if left <= 0 {
		return 0, true
	}
	if s.rate <= 0 {
		return 0, false
	}
	secs := float64(left) / s.rate
	if secs > float64(math.MaxInt64/int64(time.Second)) {
		return 0, false
	}
	return time.Duration(secs * float64(time.Second)), true
}

func (s snapshot) etaString() string {
	d, ok := s.eta()
	if !ok {
		return "-"
	}
	return d.Round(time.Second).String()
}

// plainLine renders "label: 1.2 GiB / 3.4 GiB (35%), 120/400 files,
// 350.2 MB/s, ETA 6s"; the label and its colon are left out when empty.
func (s snapshot) plainLine(label string) string {
	var prefix, pct string
	if label != "" {
		prefix = label + ": "
	}
	if p, ok := s.percent(); ok {
		pct = fmt.Sprintf(" (%d%%)", p)
	}
	return fmt.Sprintf("%s%s / %s%s, %d/%d files, %s, ETA %s",
		prefix, HumanSize(s.doneBytes), HumanSize(s.totalBytes), pct,
		s.doneFiles, s.totalFiles, formatRate(s.rate), s.etaString())
}

// barText renders the text right of the bar:
// "1.2 GiB / 3.4 GiB  120/400 files  350.2 MB/s  ETA 6s".
func (s snapshot) barText() string {
	return fmt.Sprintf("%s / %s  %d/%d files  %s  ETA %s",
		HumanSize(s.doneBytes), HumanSize(s.totalBytes),
		s.doneFiles, s.totalFiles, formatRate(s.rate), s.etaString())
}

// rateTau is the time constant of the moving-average rate: a sample's
// weight falls to 1/e after rateTau, so the rate follows a change within a
// few seconds without jumping with every chunk.
const rateTau = 3 * time.Second

// rateMeter is an exponentially weighted moving average of the transfer
// rate, weighted by time rather than by sample count so that the bar's
// short refresh and Plain's long interval give the same curve. It is owned
// by the sampler goroutine and not safe for concurrent use.
type rateMeter struct {
	lastBytes int64
	lastAt    time.Time
	rate      float64
	seeded    bool
}

func newRateMeter(start time.Time) rateMeter { return rateMeter{lastAt: start} }

// update takes a reading of done bytes at now and returns the new rate in
// bytes per second. Until the first bytes arrive the rate is zero; the
// first interval with bytes seeds the average directly, so the start of a
// transfer is not dragged down by the idle planning time before it.
func (m *rateMeter) update(done int64, now time.Time) float64 {
	dt := now.Sub(m.lastAt)
	if dt <= 0 {
		return m.rate
	}
	inst := float64(done-m.lastBytes) / dt.Seconds()
	m.lastBytes, m.lastAt = done, now
	switch {
	case !m.seeded:
		if done > 0 {
			m.rate, m.seeded = inst, true
		}
	default:
		alpha := 1 - math.Exp(-dt.Seconds()/rateTau.Seconds())
		m.rate += alpha * (inst - m.rate)
	}
	if m.rate < 0 {
		m.rate = 0
	}
	return m.rate
}
