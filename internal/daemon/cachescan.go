package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
)

// The store's cache use (ferry status, Cache): how much file data is
// local and how much is released. No counter knows it (a restart, a
// shared store, files written behind the mount all change it), so it is
// counted by walking the store: one lstat per entry, and the state of the
// files that hold fewer blocks than their size (the only ones that can be
// released). A walk costs what the namespace costs, so it never runs on
// the hot path nor in the status call: a status that finds the last walk
// older than the scanner's period starts one in the background and answers
// with the last one ended (the first status waits for the first walk a
// little). The period is at least ten times the last walk's duration, so
// a large store is walked at most a tenth of the time, even under
// `ferry status --watch`.

// DefaultCacheScanAge is the default of Config.CacheScanAge.
const DefaultCacheScanAge = 10 * time.Second

// firstScanWait is how long the first status waits for the first walk.
const firstScanWait = 2 * time.Second

// cacheScan is the result of one walk of the store.
type cacheScan struct {
	local, released int64 // bytes
	files, rel      int64 // regular files, of them released
	end             time.Time
	took            time.Duration
	err             error
}

// cacheScanner walks the store when asked and keeps the last result. Its
// walks run under ctx, which close cancels; close waits for a walk
// running.
type cacheScanner struct {
	st     *store.Store
	minAge time.Duration
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	last    *cacheScan
	running chan struct{} // closed when the running walk ends; nil when none
}

func newCacheScanner(st *store.Store, minAge time.Duration) *cacheScanner {
	if minAge <= 0 {
		minAge = DefaultCacheScanAge
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &cacheScanner{st: st, minAge: minAge, ctx: ctx, cancel: cancel}
}

// get returns the last walk's result, starting a walk when the last one is
// old and none runs. Before any walk ended it waits up to firstScanWait for
// the first; ok is false when none ended yet.
func (c *cacheScanner) get() (cacheScan, bool) {
	c.mu.Lock()
	if c.running == nil && c.ctx.Err() == nil && (c.last == nil || time.Since(c.last.end) >= max(c.minAge, 10*c.last.took)) {
		done := make(chan struct{})
		c.running = done
		go c.walk(done)
	}
	running, last := c.running, c.last
	c.mu.Unlock()
	if last == nil && running != nil {
		t := time.NewTimer(firstScanWait)
		defer t.Stop()
		select {
		case <-running:
		case <-t.C:
		}
		c.mu.Lock()
		last = c.last
		c.mu.Unlock()
	}
	if last == nil {
		return cacheScan{}, false
	}
	return *last, true
}

// walk counts the store's file data and publishes the result.
func (c *cacheScanner) walk(done chan struct{}) {
	defer close(done)
	start := time.Now()
	var r cacheScan
	r.err = c.st.WalkBelow(c.ctx, ".", func(p string, typ uint32) error {
		if typ != unix.S_IFREG {
			return nil
		}
		st, err := c.st.Lstat(p)
		if err != nil {
			return nil // gone since the directory was read
		}
		alloc := st.Blocks * 512
		r.files++
		r.local += alloc
		if alloc >= st.Size {
			return nil
		}
		if s, err := c.st.GetState(p); err == nil && s.Flags.Has(hsm.Released) {
			r.rel++
			r.released += st.Size - alloc
		}
		return nil
	})
	if errors.Is(r.err, context.Canceled) {
		return // stopping: keep the last result
	}
	r.end = time.Now()
	r.took = r.end.Sub(start)
	c.mu.Lock()
	c.last = &r
	c.running = nil
	c.mu.Unlock()
}

// close stops a walk running and waits for it.
func (c *cacheScanner) close() error {
	c.cancel()
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if running != nil {
		<-running
	}
	return nil
}
