package importer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// logBuf is a log destination tests read while the importer writes.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// outageEnv is an env whose importer reaches MinIO through a fault proxy;
// e.put still writes to MinIO directly.
type outageEnv struct {
	*env
	p   *testutil.FaultProxy
	im  *Importer
	log *logBuf
}

func newOutageEnv(t *testing.T, fetchTimeout time.Duration) *outageEnv {
	t.Helper()
	e := newEnv(t, Config{Readahead: -1})
	o := &outageEnv{env: e, p: testutil.StartFaultProxy(t, e.mc.Endpoint), log: &logBuf{}}
	c, err := s3x.New(context.Background(), s3x.Config{EndpointURL: o.p.URL})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.cfg
	cfg.S3, cfg.FetchTimeout = c, fetchTimeout
	cfg.Logger = slog.New(slog.NewTextHandler(o.log, nil))
	e.cfg = cfg
	o.im = e.start()
	return o
}

// file puts an object of size bytes, lists it through the proxy and opens
// it as the mount would for a reader.
func (o *outageEnv) file(size int) ([]byte, *os.File) {
	o.t.Helper()
	body := randBytes(size, uint64(size)+7)
	o.put("data/big", body, nil)
	if err := o.im.EnsureListed(context.Background(), "ExtData"); err != nil {
		o.t.Fatal(err)
	}
	return body, o.open("ExtData/big")
}

func (o *outageEnv) set(m testutil.Fault) {
	o.t.Helper()
	if err := o.p.Set(m); err != nil {
		o.t.Fatal(err)
	}
}

// ensureAsync runs EnsureData in a goroutine; the channel gets its error.
func (o *outageEnv) ensureAsync(ctx context.Context, f *os.File, off, n int64) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- o.im.EnsureData(ctx, "ExtData/big", f, off, n) }()
	return ch
}

// TestFetchBoundedInOutage: with the repository refusing connections, or
// accepting them and never answering, a read of a released file retries
// and then fails with EIO once nothing came for FetchTimeout — neither
// sooner nor without bound (before: refused failed after the SDK's ~27 s
// of retries, hung never returned) — with a log line that names the
// endpoint and the file. The next read after the repository is back
// succeeds.
func TestFetchBoundedInOutage(t *testing.T) {
	for _, fault := range []testutil.Fault{testutil.Refuse, testutil.Hang} {
		t.Run(fault.String(), func(t *testing.T) {
			const bound = 2 * time.Second
			o := newOutageEnv(t, bound)
			body, f := o.file(8 * mib)
			o.set(fault)
			start := time.Now()
			err := o.im.EnsureData(context.Background(), "ExtData/big", f, 0, 4096)
			took := time.Since(start)
			t.Logf("%s: the read failed after %v: %v", fault, took, err)
			var re *ReadError
			if !errors.As(err, &re) || re.Code != CodeFetchTimeout || store.Errno(err) != unix.EIO {
				t.Fatalf("read during the outage: %v; want a *ReadError %s (EIO)", err, CodeFetchTimeout)
			}
			if took < bound || took > 10*bound {
				t.Errorf("the read failed after %v; want the bound %v (and not much more)", took, bound)
			}
			// Readers are released before the fetch's goroutine ends.
			testutil.Eventually(t, 10*time.Second, "no fetch in flight", func() bool { return o.im.Stats().FetchesInFlight == 0 })
			s := o.im.Stats()
			if s.FetchTimeouts != 1 || s.FetchRetries < 1 {
				t.Errorf("stats: %d timeouts, %d retries; want 1, ≥1", s.FetchTimeouts, s.FetchRetries)
			}
			if fault == testutil.Hang && s.GetRequests < 3 {
				// An attempt is abandoned after AttemptTimeout (a third
				// of the bound), so a hang costs several GETs.
				t.Errorf("%d GETs: a hung attempt was not abandoned and retried", s.GetRequests)
			}
			log := o.log.String()
			if !strings.Contains(log, "repository not answering") || !strings.Contains(log, o.p.URL) || !strings.Contains(log, "path=ExtData/big") {
				t.Errorf("no log line naming the endpoint %s and the file:\n%s", o.p.URL, log)
			}
			// The kernel retries a failed readahead with a read of the
			// page at once: within failFast that read gets the error
			// without a second wait (and without a GET).
			gets := s.GetRequests
			start = time.Now()
			err = o.im.EnsureData(context.Background(), "ExtData/big", f, 0, 4096)
			if took := time.Since(start); !errors.As(err, &re) || re.Code != CodeFetchTimeout {
				t.Fatalf("read right after the timeout: %v", err)
			} else if took < bound && o.im.Stats().GetRequests != gets {
				t.Errorf("the read right after the timeout failed at once but sent a GET")
			}
			o.set(testutil.Pass)
			testutil.Eventually(t, 30*time.Second, "a read once the repository is back", func() bool {
				got, err := o.read(o.im, "ExtData/big", f, 0, 4096)
				return err == nil && bytes.Equal(got, body[:4096])
			})
		})
	}
}

// TestStalledBodyResumes: a response that stops in the middle of its body
// is abandoned and the fetch resumes after the bytes it wrote (If-Match
// keeps them one version) once the repository answers again; the stall is
// visible in Stats meanwhile.
func TestStalledBodyResumes(t *testing.T) {
	o := newOutageEnv(t, 30*time.Second)
	body, f := o.file(8 * mib)
	if err := o.p.HangAfter(mib); err != nil {
		t.Fatal(err)
	}
	done := o.ensureAsync(context.Background(), f, 0, 4*mib)
	testutil.Eventually(t, 30*time.Second, "the fetch counted as stalled", func() bool {
		s := o.im.Stats()
		return s.FetchesStalled == 1 && s.StalledSeconds >= o.im.AttemptTimeout().Seconds()
	})
	select {
	case err := <-done:
		t.Fatalf("the read ended during the stall: %v", err)
	default:
	}
	o.set(testutil.Pass)
	if err := <-done; err != nil {
		t.Fatalf("read after the stall: %v", err)
	}
	got := make([]byte, 4*mib)
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, body[:4*mib]) {
		t.Fatalf("the resumed fetch wrote other bytes (err %v)", err)
	}
	if s := o.im.Stats(); s.FetchRetries < 1 || s.FetchTimeouts != 0 {
		t.Errorf("%d retries, %d timeouts; want ≥1 and 0", s.FetchRetries, s.FetchTimeouts)
	}
}

// TestInterruptedReadStopsWaiting: a reader whose context ends (the mount
// cancels it when the kernel sends FUSE_INTERRUPT for a signal) returns at
// once with the context's error, while the fetch goes on for the next
// read: it lands when the repository answers again, and that read needs no
// GET of its own.
func TestInterruptedReadStopsWaiting(t *testing.T) {
	o := newOutageEnv(t, 60*time.Second)
	body, f := o.file(8 * mib)
	o.set(testutil.Hang)
	ctx, cancel := context.WithCancel(context.Background())
	done := o.ensureAsync(ctx, f, 4*mib, 4096)
	testutil.Eventually(t, 30*time.Second, "the fetch in flight", func() bool { return o.im.Stats().FetchesInFlight == 1 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted read: %v; want context.Canceled (EINTR)", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the interrupted read still waits")
	}
	if n := o.im.Stats().FetchesInFlight; n != 1 {
		t.Fatalf("%d fetches in flight after the reader left; want the fetch to go on", n)
	}
	o.set(testutil.Pass)
	testutil.Eventually(t, 60*time.Second, "the fetch done", func() bool { return o.im.Stats().FetchesInFlight == 0 })
	gets := o.im.Stats().GetRequests
	got, err := o.read(o.im, "ExtData/big", f, 4*mib, 4096)
	if err != nil || !bytes.Equal(got, body[4*mib:4*mib+4096]) {
		t.Fatalf("read after the outage: %v", err)
	}
	if n := o.im.Stats().GetRequests; n != gets {
		t.Errorf("the read after the outage sent %d GETs; the abandoned reader's fetch should have brought its chunk", n-gets)
	}
}

// TestLocalDataNeverWaitsOnStall: while a fetch of one chunk of a file
// hangs, reads of its chunks already local and listings of directories
// already listed (also by a new importer, from the catalog) answer: no
// lock is held across the network.
func TestLocalDataNeverWaitsOnStall(t *testing.T) {
	o := newOutageEnv(t, 60*time.Second)
	body, f := o.file(12 * mib)
	for _, r := range [][2]int64{{0, mib}, {8 * mib, 2 * mib}} {
		if _, err := o.read(o.im, "ExtData/big", f, r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	// Readahead the reads started lands before the repository hangs.
	testutil.Eventually(t, 30*time.Second, "no fetch in flight", func() bool { return o.im.Stats().FetchesInFlight == 0 })
	o.set(testutil.Hang)
	stalled := o.ensureAsync(context.Background(), f, 4*mib, 4096)
	testutil.Eventually(t, 30*time.Second, "the fetch of chunk 1 in flight", func() bool { return o.im.Stats().FetchesInFlight == 1 })
	for _, off := range []int64{0, 8 * mib, 9 * mib} {
		got, err := o.read(o.im, "ExtData/big", f, off, 4096)
		if err != nil || !bytes.Equal(got, body[off:off+4096]) {
			t.Fatalf("local read at %d during the stall: %v", off, err)
		}
	}
	if err := o.im.EnsureListed(context.Background(), "ExtData"); err != nil {
		t.Fatalf("listing of a listed directory during the stall: %v", err)
	}
	fresh := o.start() // after a restart: the catalog says listed
	if err := fresh.EnsureListed(context.Background(), "ExtData"); err != nil {
		t.Fatalf("listing of a listed directory by a new importer during the stall: %v", err)
	}
	select {
	case err := <-stalled:
		t.Fatalf("the stalled read ended before the repository answered (%v): the test did not hold a stall", err)
	default:
	}
	o.set(testutil.Pass)
	if err := <-stalled; err != nil {
		t.Fatalf("stalled read after the repository answered: %v", err)
	}
}
