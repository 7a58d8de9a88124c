package fusefs

// Repository outages as a lookup or a readdir of a never-listed directory
// sees them, through a real mount: MinIO behind a testutil.FaultProxy.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// mountOutage mounts a lazy store whose importer reaches MinIO through a
// fault proxy, with fetchTimeout; the objects of data/d/ are put and
// ExtData is listed (so ExtData/d exists, never listed).
func mountOutage(t *testing.T, fetchTimeout time.Duration) (*lazyEnv, *testutil.FaultProxy) {
	t.Helper()
	testutil.NeedFUSE(t)
	mc := testutil.SharedMinIO(t)
	mc.Client(t) // sets the credentials in the environment
	p := testutil.StartFaultProxy(t, mc.Endpoint)
	c, err := s3x.New(context.Background(), s3x.Config{EndpointURL: p.URL}) // the daemon's retryer (10 attempts)
	if err != nil {
		t.Fatal(err)
	}
	le := mountLazy(t, Options{}, importer.Config{S3: c, FetchTimeout: fetchTimeout})
	le.put(t, "data/d/a", []byte("a"), nil)
	le.put(t, "data/d/b", []byte("b"), nil)
	le.put(t, "data/d/sub/c", []byte("c"), nil)
	if _, err := os.ReadDir(le.m("ExtData")); err != nil {
		t.Fatal(err)
	}
	return le, p
}

// names lists directory p through the mount.
func names(p string) ([]string, error) {
	ents, err := os.ReadDir(p)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, err
}

// bounded runs fn in a goroutine and returns its error, or heals the
// proxy and fails the test when fn still runs after limit (the old code
// waited on a hung server without bound).
func bounded(t *testing.T, p *testutil.FaultProxy, limit time.Duration, what string, fn func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(limit):
		p.Set(testutil.Pass)
		<-ch
		t.Fatalf("%s still waits after %v: not bounded by --fetch-timeout", what, limit)
		return nil
	}
}

// TestLazyListingOutage: with the repository refusing connections or
// hanging, `ls` of a never-listed directory and `stat` of a name in it
// fail with EIO after about the fetch timeout (never ECONNREFUSED, never
// without bound); once the repository is back the same `ls` lists
// everything.
func TestLazyListingOutage(t *testing.T) {
	for _, fault := range []testutil.Fault{testutil.Refuse, testutil.Hang} {
		t.Run(fault.String(), func(t *testing.T) {
			const bound = 2 * time.Second
			le, p := mountOutage(t, bound)
			if err := p.Set(fault); err != nil {
				t.Fatal(err)
			}
			for _, op := range []struct {
				what string
				fn   func() error
			}{
				{"ls ExtData/d", func() error { _, err := names(le.m("ExtData/d")); return err }},
				{"stat ExtData/d/a", func() error { _, err := os.Lstat(le.m("ExtData/d/a")); return err }},
			} {
				start := time.Now()
				err := bounded(t, p, 60*time.Second, op.what, op.fn)
				took := time.Since(start)
				t.Logf("%s during the outage (%s): %v after %v", op.what, fault, err, took)
				if !errors.Is(err, syscall.EIO) {
					t.Errorf("%s during the outage: %v; want EIO", op.what, err)
				}
				if took < bound || took > 10*bound {
					t.Errorf("%s failed after %v; want the bound %v (and not much more)", op.what, took, bound)
				}
			}
			if s := le.im.Stats(); s.ListTimeouts != 2 {
				t.Errorf("%d listing timeouts; want 2 (one per call: the directory stays unlisted)", s.ListTimeouts)
			}
			if err := p.Set(testutil.Pass); err != nil {
				t.Fatal(err)
			}
			got, err := names(le.m("ExtData/d"))
			if err != nil || !slices.Equal(got, []string{"a", "b", "sub"}) {
				t.Fatalf("ls ExtData/d once the repository is back: %v, %v", got, err)
			}
			if got := read(t, le.m("ExtData/d/a")); got != "a" {
				t.Errorf("cat ExtData/d/a: %q", got)
			}
		})
	}
}

// TestLazyListingInterrupt: Ctrl-C on an `ls` waiting for a directory's
// first listing during a hang ends that `ls` while the listing is still
// running, and another `ls` waiting for the same listing is not failed by
// it: it gets the listing's outcome, EIO after the fetch timeout. Before,
// the second `ls` waited without bound.
func TestLazyListingInterrupt(t *testing.T) {
	const bound = 6 * time.Second
	le, p := mountOutage(t, bound)
	if err := p.Set(testutil.Hang); err != nil {
		t.Fatal(err)
	}
	ls := func() (*exec.Cmd, *strings.Builder, chan error) {
		var out strings.Builder
		c := exec.Command("ls", le.m("ExtData/d"))
		c.Stdout, c.Stderr = &out, &out
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		t.Cleanup(func() {
			c.Process.Kill()
		})
		return c, &out, done
	}
	first, _, firstDone := ls()
	testutil.Eventually(t, 10*time.Second, "the listing in flight", func() bool { return le.im.Stats().ListingsInFlight == 1 })
	_, secondOut, secondDone := ls()
	time.Sleep(100 * time.Millisecond) // let the second ls reach the daemon: nothing to wait on for it
	start := time.Now()
	if err := first.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-firstDone:
		t.Logf("the interrupted ls ended %v after SIGINT", time.Since(start))
		if n := le.im.Stats().ListingsInFlight; n != 1 {
			t.Errorf("the interrupted ls ended only when the listing did (%d in flight): it waited for it", n)
		}
	case <-time.After(30 * time.Second):
		p.Set(testutil.Pass)
		t.Fatal("the interrupted ls still waits")
	}
	select {
	case err := <-secondDone:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || !strings.Contains(secondOut.String(), "Input/output error") {
			t.Errorf("the other ls: %v, %q; want a failure with EIO (the listing's outcome, not the interrupt)", err, secondOut.String())
		}
	case <-time.After(60 * time.Second):
		p.Set(testutil.Pass)
		<-secondDone
		t.Fatal("the other ls still waits after 60 s: not bounded by --fetch-timeout")
	}
	if err := p.Set(testutil.Pass); err != nil {
		t.Fatal(err)
	}
	if got, err := names(le.m("ExtData/d")); err != nil || !slices.Equal(got, []string{"a", "b", "sub"}) {
		t.Fatalf("ls ExtData/d once the repository is back: %v, %v", got, err)
	}
}
