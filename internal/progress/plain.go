package progress

import (
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// plainReporter serves Plain and None mode: Println lines go straight to w,
// and in Plain mode a ticker goroutine writes one progress line every
// interval once there is something to report.
type plainReporter struct {
	counters
	start time.Time
	label string

	mu  sync.Mutex // serializes writes to w; guards buf
	w   io.Writer
	buf []byte

	ticks atomic.Int64 // progress ticks seen, for tests

	stop      chan struct{} // closed by Close
	done      chan struct{} // closed when the ticker goroutine has returned
	closeOnce sync.Once
	summary   Summary
}

func newPlainReporter(w io.Writer, mode Mode, opts Options) *plainReporter {
	r := &plainReporter{
		start: time.Now(),
		label: opts.Label,
		w:     w,
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	if mode != Plain {
		close(r.done)
		return r
	}
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	go r.run(interval)
	return r
}

// run is the ticker goroutine; Close stops it through r.stop and waits for
// r.done.
func (r *plainReporter) run(interval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	meter := newRateMeter(r.start)
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			r.ticks.Add(1)
			s := r.load()
			s.rate = meter.update(s.doneBytes, now)
			if s.tracked() {
				r.Println(s.plainLine(r.label))
			}
		}
	}
}

// Println writes line and a newline to w in one Write, so that lines from
// many goroutines never interleave.
func (r *plainReporter) Println(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(append(r.buf[:0], line...), '\n')
	_, _ = r.w.Write(r.buf)
	if cap(r.buf) > 64<<10 {
		r.buf = nil // do not keep one huge line's buffer for good
	}
}

func (r *plainReporter) Close() Summary {
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done
		r.summary = Summary{
			Files:   r.doneFiles.Load(),
			Bytes:   r.doneBytes.Load(),
			Elapsed: time.Since(r.start),
		}
	})
	return r.summary
}
