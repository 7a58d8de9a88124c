package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// watch is the outage clock of one wait on the repository made of several
// requests: a directory's listing (its ListObjectsV2 pages, the HEADs of
// its objects and directory objects, its symlinks' bodies), or a
// re-import's HEAD. FetchTimeout counts from the last byte any of its
// requests received, so a listing that moves page by page is never cut
// off, and one that hears nothing fails after one bound, however many
// requests it has in flight.
type watch struct {
	// last is when the wait began or last received a byte of a
	// successful answer (Importer.now). Error answers (503 SlowDown,
	// 500) do not count: a storm of them is the repository not serving.
	last    atomic.Int64
	retries *atomic.Int64 // the counter of its repeated attempts
	holds   atomic.Bool   // a listing's: it holds a listing slot (acquireList)
}

// newWatch starts a watch now; its retries count in retries.
func (im *Importer) newWatch(retries *atomic.Int64) *watch {
	w := &watch{retries: retries}
	w.last.Store(int64(im.now()))
	return w
}

// quiet is how long w has heard nothing, counted from since at the
// earliest (a request that began later is not blamed for the silence
// before it).
func (im *Importer) quiet(w *watch, since time.Duration) time.Duration {
	return im.now() - max(since, time.Duration(w.last.Load()))
}

// stallError is a wait given up after FetchTimeout without a byte. It
// wraps nothing: the last attempt's error (a refused connection, a context
// cancelled by the watchdog) is only quoted, so no network errno or
// context.Canceled reaches the caller as if it were its own (the mount
// would answer ECONNREFUSED or EINTR instead of EIO).
type stallError struct {
	quiet    time.Duration
	attempts int
	last     string
}

func (e *stallError) Error() string {
	return fmt.Sprintf("nothing from the repository for %v (%d attempts; last: %s)", e.quiet.Round(time.Millisecond), e.attempts, e.last)
}

// request sends one repository request of w, bounded the way a fetch is
// (docs/architecture.md, "Repository outages"): send is called with a
// context that a watchdog cancels when no byte arrives for AttemptTimeout,
// and with an option that turns the SDK's own retries off and reports the
// bytes received to w. A failure that may pass (retryable: no connection,
// reset, 5xx, 429, an abandoned attempt) is retried with full-jitter
// backoff until w has heard nothing for FetchTimeout (counted from this
// request's start at the earliest); then it fails with a *stallError.
// Other failures return at once, as send returned them. slot says whether
// each attempt holds one of the Concurrency request slots (HEADs and GETs
// do, listing pages do not: a listing holds a listing slot). ctx ends the
// wait (a listing's errgroup, Close) with its error.
func (im *Importer) request(ctx context.Context, w *watch, slot bool, send func(context.Context, func(*s3.Options)) error) error {
	began := im.now()
	backoff := firstBackoff
	last := ""
	for attempts := 0; ; {
		if slot {
			if err := im.acquireWithin(ctx, im.cfg.FetchTimeout-im.quiet(w, began)); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if last == "" {
					last = err.Error()
				}
				return &stallError{quiet: im.quiet(w, began), attempts: attempts, last: last}
			}
		}
		attempts++
		if attempts > 1 {
			w.retries.Add(1)
		}
		err := im.attemptOnce(ctx, w, send)
		if slot {
			<-im.req
		}
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !retryable(err) {
			return err
		}
		last = err.Error()
		left := im.cfg.FetchTimeout - im.quiet(w, began)
		if left <= 0 {
			return &stallError{quiet: im.quiet(w, began), attempts: attempts, last: last}
		}
		im.log.Debug("repository request failed, retrying", "attempt", attempts, "err", err)
		if err := im.pause(ctx, min(time.Duration(rand.Int64N(int64(backoff)))+time.Millisecond, left)); err != nil {
			return err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// pause waits for d, or until ctx ends (its error).
func (im *Importer) pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attemptOnce is one attempt of request: send under a watchdog that
// abandons it after AttemptTimeout without a byte (before the response,
// or between two reads of its body).
func (im *Importer) attemptOnce(ctx context.Context, w *watch, send func(context.Context, func(*s3.Options)) error) error {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := im.AttemptTimeout()
	dog := time.AfterFunc(idle, func() { cancel(errAttemptStalled) })
	defer dog.Stop()
	heard := func(ok bool) {
		dog.Reset(idle)
		if ok {
			w.last.Store(int64(im.now()))
		}
	}
	err := send(actx, func(o *s3.Options) {
		o.Retryer = aws.NopRetryer{}
		o.HTTPClient = heardClient{c: o.HTTPClient, heard: heard}
	})
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(actx), errAttemptStalled) {
		// Not wrapped: the SDK's error says "context canceled", which is
		// not what happened (and would read as EINTR).
		return fmt.Errorf("no byte from %s for %v: attempt abandoned", im.s3.Endpoint, idle)
	}
	return err
}

// heardClient is the SDK's HTTP client with every response and every read
// of a body reported to heard (ok: a successful answer, 2xx).
type heardClient struct {
	c     s3.HTTPClient
	heard func(ok bool)
}

func (h heardClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := h.c.Do(r)
	if err != nil {
		return resp, err
	}
	ok := resp.StatusCode < 300
	h.heard(ok)
	if resp.Body != nil {
		resp.Body = &heardBody{ReadCloser: resp.Body, heard: func() { h.heard(ok) }}
	}
	return resp, nil
}

// heardBody calls heard after every read that returned bytes.
type heardBody struct {
	io.ReadCloser
	heard func()
}

func (h *heardBody) Read(p []byte) (int, error) {
	n, err := h.ReadCloser.Read(p)
	if n > 0 {
		h.heard()
	}
	return n, err
}

// acquireWithin takes a request slot, waiting at most left: when every
// slot is held by requests the repository does not answer, waiting longer
// is waiting on the repository too. ctx ends the wait with its error.
func (im *Importer) acquireWithin(ctx context.Context, left time.Duration) error {
	select {
	case im.req <- struct{}{}:
		return nil
	default:
	}
	if left <= 0 {
		return errNoSlot
	}
	t := time.NewTimer(left)
	defer t.Stop()
	select {
	case im.req <- struct{}{}:
		return nil
	case <-t.C:
		return errNoSlot
	case <-ctx.Done():
		return ctx.Err()
	}
}
