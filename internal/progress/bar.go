package progress

import (
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// barRefresh is how often the bar is redrawn and queued lines are printed.
const barRefresh = 150 * time.Millisecond

// maxPending bounds the Println lines queued between two refreshes. A
// Println that fills the queue past it prints the queue itself and waits
// for the render, which is the backpressure on a flood of lines.
const maxPending = 256 << 10

// barReporter draws one mpb bar. mpb is driven by hand (WithManualRefresh):
// the sampler goroutine, on every tick, copies the atomic counters into the
// bar, hands the queued Println lines to mpb in one Write, and asks for one
// render. Nothing on the hot path talks to mpb, whose every call is a
// channel round trip to its own goroutine.
type barReporter struct {
	counters
	start time.Time
	label string
	w     io.Writer

	p        *mpb.Progress
	refresh  chan any // manual refresh requests to mpb
	shutdown chan any // closed by mpb when the container has shut down

	// mu guards pending and state; it is held only to append a line.
	mu      sync.Mutex
	pending []byte
	state   barState

	// flushMu makes "hand queued lines to mpb, then render" one step, so
	// batches reach the terminal in order and at most a few are buffered in
	// mpb at a time. It also owns spare, bar and meter.
	flushMu sync.Mutex
	spare   []byte
	bar     *mpb.Bar
	meter   rateMeter

	snap atomic.Pointer[snapshot] // last sample, read by the bar decorator

	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the sampler goroutine has returned
	closeOnce sync.Once
	summary   Summary
}

type barState int

const (
	barRunning barState = iota // lines queue for mpb
	barClosed                  // mpb is gone; lines go straight to w
)

func newBarReporter(w io.Writer, opts Options) *barReporter {
	start := time.Now()
	r := &barReporter{
		start:    start,
		label:    opts.Label,
		w:        w,
		refresh:  make(chan any),
		shutdown: make(chan any),
		meter:    newRateMeter(start),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	r.snap.Store(&snapshot{})
	r.p = mpb.New(
		mpb.WithOutput(w),
		mpb.WithManualRefresh(r.refresh),
		mpb.WithShutdownNotifier(r.shutdown),
	)
	go r.run()
	return r
}

// run is the sampler goroutine; Close stops it through r.stop and waits for
// r.done.
func (r *barReporter) run() {
	defer close(r.done)
	t := time.NewTicker(barRefresh)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.flushMu.Lock()
			r.sample(now)
			lines := r.flushLines()
			if r.bar != nil || lines {
				r.render(now)
			}
			r.flushMu.Unlock()
		}
	}
}

// sample reads the counters into the bar, creating the bar the first time
// there is something to show (so a run with no work draws no bar).
// The caller holds flushMu.
func (r *barReporter) sample(now time.Time) snapshot {
	s := r.load()
	s.rate = r.meter.update(s.doneBytes, now)
	r.snap.Store(&s)
	if r.bar == nil && s.tracked() {
		r.bar = r.newBar()
	}
	if r.bar != nil {
		// The bar was created with total 0, which disables mpb's own
		// completion: it completes only when Close says so, however the
		// growing total and the done count happen to meet on the way.
		r.bar.SetTotal(max(s.totalBytes, 0), false)
		r.bar.SetCurrent(max(s.doneBytes, 0))
	}
	return s
}

func (r *barReporter) newBar() *mpb.Bar {
	var pre []decor.Decorator
	if r.label != "" {
		pre = append(pre, decor.Name(r.label))
	}
	text := decor.Any(func(decor.Statistics) string { return r.snap.Load().barText() })
	b, err := r.p.Add(0, mpb.BarStyle().Build(),
		mpb.PrependDecorators(pre...),
		mpb.AppendDecorators(text),
	)
	if err != nil {
		return nil // mpb has shut down (a render error); go on without a bar
	}
	return b
}

// flushLines hands the queued lines to mpb, which prints them above the bar
// at the next render. It reports whether there were any. The caller holds
// flushMu.
func (r *barReporter) flushLines() bool {
	r.mu.Lock()
	batch := r.pending
	r.pending = r.spare[:0]
	r.mu.Unlock()
	if len(batch) == 0 {
		r.spare = batch
		return false
	}
	if _, err := r.p.Write(batch); err != nil {
		// mpb is gone; do not lose the lines.
		_, _ = r.w.Write(batch)
	}
	if cap(batch) > 4*maxPending {
		batch = nil
	}
	r.spare = batch[:0]
	return true
}

// render asks mpb for one render and returns once mpb has taken the
// request (the render itself runs in mpb's goroutine, after every Write
// already taken). The caller holds flushMu.
func (r *barReporter) render(now time.Time) {
	select {
	case r.refresh <- now:
	case <-r.shutdown:
	}
}

// Println queues line for the next refresh. Only a queue past maxPending
// makes the caller print it, and so wait.
func (r *barReporter) Println(line string) {
	r.mu.Lock()
	if r.state == barClosed {
		defer r.mu.Unlock()
		r.pending = append(append(r.pending[:0], line...), '\n')
		_, _ = r.w.Write(r.pending)
		return
	}
	r.pending = append(append(r.pending, line...), '\n')
	full := len(r.pending) >= maxPending
	r.mu.Unlock()
	if full {
		r.flushMu.Lock()
		if r.flushLines() {
			r.render(time.Now())
		}
		r.flushMu.Unlock()
	}
}

func (r *barReporter) Close() Summary {
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done

		r.flushMu.Lock()
		now := time.Now()
		s := r.sample(now)
		r.flushLines()
		if r.bar != nil {
			if s.finished() {
				r.bar.SetTotal(max(s.totalBytes, 0), true)
			} else {
				r.bar.Abort(false) // keep the bar where it stopped
			}
		}
		r.render(now)
		r.p.Wait()
		r.flushMu.Unlock()

		// Lines queued while mpb was finishing: print them, and any later
		// ones, straight to w.
		r.mu.Lock()
		if len(r.pending) > 0 {
			_, _ = r.w.Write(r.pending)
		}
		r.pending = r.pending[:0]
		r.state = barClosed
		r.mu.Unlock()

		r.summary = Summary{
			Files:   s.doneFiles,
			Bytes:   s.doneBytes,
			Elapsed: now.Sub(r.start),
		}
	})
	return r.summary
}
