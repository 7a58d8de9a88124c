package importer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// listAsync runs EnsureListed(dir) in a goroutine; the channel gets its
// error.
func (o *outageEnv) listAsync(ctx context.Context, im *Importer, dir string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- im.EnsureListed(ctx, dir) }()
	return ch
}

// within waits for ch up to limit; past it the repository is healed (so
// the old unbounded code lets go of the goroutine) and the test fails.
func (o *outageEnv) within(ch <-chan error, limit time.Duration, what string) error {
	o.t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(limit):
		o.p.Set(testutil.Pass)
		o.t.Fatalf("%s still waits after %v: not bounded", what, limit)
		return nil
	}
}

// isListed says whether the catalog records dir listed.
func (o *outageEnv) isListed(dir string) bool {
	o.t.Helper()
	_, ok, err := o.cat.Listed(context.Background(), keypath.ToCatalog(dir))
	if err != nil {
		o.t.Fatal(err)
	}
	return ok
}

// putListingTree puts the objects of data/d/: two files, a symlink, a
// directory object and a file below it.
func (o *outageEnv) putListingTree() {
	o.put("data/d/a", []byte("a"), map[string]string{"file-permissions": "0100640"})
	o.put("data/d/b", []byte("bb"), nil)
	o.put("data/d/ln", []byte("a"), map[string]string{"file-permissions": "0120777"})
	o.put("data/d/sub/", nil, map[string]string{"file-permissions": "0040750"})
	o.put("data/d/sub/c", []byte("c"), nil)
}

// checkListingTree checks that ExtData/d shows everything of
// putListingTree, and is recorded listed.
func (o *outageEnv) checkListingTree() {
	o.t.Helper()
	for name, mode := range map[string]uint32{"a": unix.S_IFREG | 0o640, "b": unix.S_IFREG | 0o644, "ln": unix.S_IFLNK | 0o777, "sub": unix.S_IFDIR | 0o750} {
		if st, err := o.st.Lstat("ExtData/d/" + name); err != nil || st.Mode != mode {
			o.t.Errorf("ExtData/d/%s after the outage: mode %o, %v; want %o", name, st.Mode, err, mode)
		}
	}
	if !o.isListed("ExtData/d") {
		o.t.Error("ExtData/d not recorded listed after a listing that succeeded")
	}
}

// TestListingBoundedInOutage: with the repository refusing connections, or
// accepting them and never answering, the first listing of a directory
// retries and then fails once nothing came for FetchTimeout — with a
// *ListError (EIO, never the client's ECONNREFUSED), one log line naming
// the endpoint, the prefix and the directory, and the directory not
// recorded listed. Before: a hung server made the listing wait without
// bound, a refused one failed after the SDK's ~27 s of retries with
// ECONNREFUSED. The next listing once the repository is back lists
// everything.
func TestListingBoundedInOutage(t *testing.T) {
	for _, fault := range []testutil.Fault{testutil.Refuse, testutil.Hang} {
		t.Run(fault.String(), func(t *testing.T) {
			const bound = 2 * time.Second
			o := newOutageEnv(t, bound)
			o.putListingTree()
			if err := o.im.EnsureListed(context.Background(), "ExtData"); err != nil {
				t.Fatal(err)
			}
			o.set(fault)
			start := time.Now()
			err := o.within(o.listAsync(context.Background(), o.im, "ExtData/d"), 60*time.Second, "the listing during the outage")
			took := time.Since(start)
			t.Logf("%s: the listing failed after %v: %v", fault, took, err)
			var le *ListError
			if !errors.As(err, &le) || le.Code != CodeFetchTimeout || store.Errno(err) != unix.EIO || errors.Is(err, context.Canceled) {
				t.Fatalf("listing during the outage: %v (errno %v); want a *ListError %s (EIO)", err, store.Errno(err), CodeFetchTimeout)
			}
			if took < bound || took > 10*bound {
				t.Errorf("the listing failed after %v; want the bound %v (and not much more)", took, bound)
			}
			if o.isListed("ExtData/d") {
				t.Error("a failed listing recorded the directory listed")
			}
			testutil.Eventually(t, 10*time.Second, "no listing in flight", func() bool { return o.im.Stats().ListingsInFlight == 0 })
			s := o.im.Stats()
			if s.ListTimeouts != 1 || s.FetchTimeouts != 1 || s.ListRetries < 1 || s.FetchRetries != s.ListRetries {
				t.Errorf("stats: %d list timeouts (%d in all), %d list retries (%d in all); want 1 (1), ≥1 (the same)", s.ListTimeouts, s.FetchTimeouts, s.ListRetries, s.FetchRetries)
			}
			log := o.log.String()
			if n := strings.Count(log, "repository not answering"); n != 1 ||
				!strings.Contains(log, o.p.URL) || !strings.Contains(log, "prefix=s3://"+o.bucket+"/data/d/") || !strings.Contains(log, "dir=ExtData/d") {
				t.Errorf("want one log line naming the endpoint %s, the prefix and the directory (%d):\n%s", o.p.URL, n, log)
			}
			// The directory stays unlisted: the next call lists again.
			o.set(testutil.Pass)
			if err := o.im.EnsureListed(context.Background(), "ExtData/d"); err != nil {
				t.Fatalf("listing once the repository is back: %v", err)
			}
			o.checkListingTree()
		})
	}
}

// TestListingOutageWaitsWhileItMoves: a repository that answers slowly but
// answers (each answer held for most of an attempt's timeout) never trips
// the bound, however long the whole listing takes: FetchTimeout counts
// silence, not the listing's duration. (A guard: the old code, which had
// no bound, passes it too.)
func TestListingOutageWaitsWhileItMoves(t *testing.T) {
	const bound = 2 * time.Second
	o := newOutageEnv(t, bound)
	for i := range 8 {
		o.put(fmt.Sprintf("data/slow/f%02d", i), []byte("x"), nil)
	}
	if err := o.im.EnsureListed(context.Background(), "ExtData"); err != nil {
		t.Fatal(err)
	}
	// One HEAD at a time (a HEAD per file, as for a store without listed
	// metadata), each answer held 0.5 s (an attempt waits 2/3 s): the
	// listing lasts ~4.5 s, over twice the bound.
	cfg := o.cfg
	cfg.Concurrency, cfg.HeadEach = 1, true
	o.cfg = cfg
	im := o.start()
	o.p.Delay(500 * time.Millisecond)
	start := time.Now()
	err := o.within(o.listAsync(context.Background(), im, "ExtData/slow"), 120*time.Second, "the slow listing")
	o.p.Delay(0)
	took := time.Since(start)
	t.Logf("the slow listing took %v: %v", took, err)
	if err != nil {
		t.Fatalf("a slow listing that kept moving failed: %v", err)
	}
	if took < bound {
		t.Errorf("the listing took %v, less than the bound %v: the test did not test it", took, bound)
	}
	if s := im.Stats(); s.ListTimeouts != 0 || s.ListRetries != 0 {
		t.Errorf("%d listing timeouts, %d retries; want 0, 0", s.ListTimeouts, s.ListRetries)
	}
}

// TestPartialListingNotListed: a listing cut by the outage after its
// page and some of its HEADs has created some stubs; the directory is not
// recorded listed (by this importer or, after a restart, the catalog), and
// the next listing once the repository is back creates the rest and keeps
// what was there, without counting those as local conflicts.
func TestPartialListingNotListed(t *testing.T) {
	const bound = 2 * time.Second
	o := newOutageEnv(t, bound)
	// A HEAD per file, so that the cut falls among the entries (with the
	// metadata in the listing, a one-page listing is cut before any).
	o.cfg.HeadEach = true
	o.im = o.start()
	const n = 40
	for _, d := range []string{"twin", "part"} {
		for i := range n {
			o.put(fmt.Sprintf("data/%s/f%02d", d, i), []byte("x"), map[string]string{"file-permissions": "0100600"})
		}
	}
	if err := o.im.EnsureListed(context.Background(), "ExtData"); err != nil {
		t.Fatal(err)
	}
	// What a listing of such a directory costs, in bytes from the server.
	before := o.p.Served()
	if err := o.im.EnsureListed(context.Background(), "ExtData/twin"); err != nil {
		t.Fatal(err)
	}
	cost := o.p.Served() - before
	if err := o.p.HangAfter(cost / 2); err != nil {
		t.Fatal(err)
	}
	err := o.within(o.listAsync(context.Background(), o.im, "ExtData/part"), 60*time.Second, "the listing cut midway")
	var le *ListError
	if !errors.As(err, &le) || le.Code != CodeFetchTimeout {
		t.Fatalf("listing cut midway: %v; want a *ListError %s", err, CodeFetchTimeout)
	}
	made := o.count("ExtData/part")
	t.Logf("the cut listing (hang after %d of %d bytes) made %d of %d stubs", cost/2, cost, made, n)
	if made == 0 || made == n {
		t.Logf("the listing was not cut midway (%d stubs): the test checks less", made)
	}
	if o.isListed("ExtData/part") {
		t.Fatal("a listing cut midway recorded the directory listed")
	}
	o.set(testutil.Pass)
	fresh := o.start() // after a restart: the catalog must not say listed
	if err := fresh.EnsureListed(context.Background(), "ExtData/part"); err != nil {
		t.Fatalf("listing after the outage: %v", err)
	}
	if got := o.count("ExtData/part"); got != n {
		t.Errorf("%d entries after the second listing; want %d", got, n)
	}
	if s := fresh.Stats(); s.LocalConflicts != 0 || s.StubsCreated != int64(n-made) {
		t.Errorf("second listing: %d stubs created, %d local conflicts; want %d, 0 (the first listing's stubs are its own)", s.StubsCreated, s.LocalConflicts, n-made)
	}
	if !o.isListed("ExtData/part") {
		t.Error("not recorded listed after the second listing")
	}
}

// count is the number of entries of store directory dir.
func (o *outageEnv) count(dir string) int {
	o.t.Helper()
	r, err := o.st.Readdir(dir)
	if err != nil {
		o.t.Fatal(err)
	}
	defer r.Close()
	n := 0
	for {
		ents, err := r.Next(0)
		n += len(ents)
		if err != nil {
			return n
		}
	}
}

// TestInterruptedListingWait: a caller of a listing whose context ends
// (FUSE_INTERRUPT) returns at once with the context's error; another
// caller waiting for the same listing is not failed by that: it gets the
// listing's own outcome — the timeout after the bound during an outage
// (before: it waited without bound), the entries when the repository
// comes back in time.
func TestInterruptedListingWait(t *testing.T) {
	const bound = 4 * time.Second
	o := newOutageEnv(t, bound)
	o.putListingTree()
	if err := o.im.EnsureListed(context.Background(), "ExtData"); err != nil {
		t.Fatal(err)
	}
	for _, heal := range []bool{false, true} {
		o.set(testutil.Hang)
		ctx, cancel := context.WithCancel(context.Background())
		interrupted := o.listAsync(ctx, o.im, "ExtData/d")
		testutil.Eventually(t, 10*time.Second, "the listing in flight", func() bool { return o.im.Stats().ListingsInFlight == 1 })
		other := o.listAsync(context.Background(), o.im, "ExtData/d")
		cancel()
		select {
		case err := <-interrupted:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted caller: %v; want context.Canceled (EINTR)", err)
			}
		case <-time.After(bound / 2):
			t.Fatal("the interrupted caller still waits")
		}
		if n := o.im.Stats().ListingsInFlight; n != 1 {
			t.Fatalf("%d listings in flight after the interrupted caller left; want the listing to go on", n)
		}
		if heal {
			o.set(testutil.Pass)
		} else {
			testutil.Eventually(t, bound, "the listing counted as stalled", func() bool {
				s := o.im.Stats()
				return s.ListingsStalled == 1 && s.FetchesStalled == 1 && s.StalledSeconds >= o.im.AttemptTimeout().Seconds()
			})
		}
		err := o.within(other, 60*time.Second, "the other caller")
		var le *ListError
		switch {
		case heal && err != nil:
			t.Fatalf("the other caller, the repository back: %v", err)
		case heal:
			o.checkListingTree()
		case !errors.As(err, &le) || le.Code != CodeFetchTimeout:
			t.Fatalf("the other caller during the outage: %v; want the listing's *ListError %s, not the interrupt", err, CodeFetchTimeout)
		}
	}
}
