package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestOutageWritesThroughMount is invariant 1 (docs/invariants.md) across a
// repository outage: the repository goes away while files are written and
// closed through the mount; closes still succeed (the journal is local), the
// backlog is visible (`ferry hsm wait` times out listing what is pending,
// `ferry umount` counts it), nothing is lost across the outage and a remount,
// and once the repository is back every file is exported byte-identical.
func TestOutageWritesThroughMount(t *testing.T) {
	srv := testutil.StartMinIO(t)
	bucket := srv.Bucket(t)
	d := newDaemon(t, srv, t.TempDir())
	d.mount()
	d.associate("/data", "s3://"+bucket+"/out/")
	sums := map[string][32]byte{}
	writeN := func(from, n int) {
		for i := from; i < from+n; i++ {
			rel := fmt.Sprintf("data/f%03d", i)
			body := []byte(strings.Repeat(fmt.Sprintf("%d,", i), 1000+i))
			if err := os.WriteFile(filepath.Join(d.mp, rel), body, 0o644); err != nil {
				t.Fatalf("write %s during the outage: %v", rel, err)
			}
			sums[rel] = sha256.Sum256(body)
		}
	}
	writeN(0, 5)
	if r := d.run("hsm", "wait", "--timeout", "60s", filepath.Join(d.mp, "data")); r.code != 0 {
		t.Fatalf("hsm wait before the outage: %s", r.stderr)
	}
	srv.Stop()
	writeN(5, 20)
	r := d.run("hsm", "wait", "--timeout", "3s", filepath.Join(d.mp, "data"))
	if r.code == 0 || !strings.Contains(r.stderr, "f024") {
		t.Fatalf("hsm wait during the outage: exit %d, want a failure listing the pending files\n%s", r.code, r.stderr)
	}
	// A restart during the outage keeps the backlog.
	r = d.run("umount", d.mp)
	if r.code != 0 || !strings.Contains(r.stderr, "pending") {
		t.Fatalf("umount during the outage: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("umount: %s", strings.TrimSpace(r.stderr))
	d.mount()
	writeN(25, 5)
	srv.Restart(t)
	if r := d.run("hsm", "wait", "--timeout", "120s", filepath.Join(d.mp, "data")); r.code != 0 {
		t.Fatalf("hsm wait after the outage: exit %d\n%s", r.code, r.stderr)
	}
	for rel, want := range sums {
		got, ok := objectSum(t, srv, bucket, "out/"+rel[len("data/"):])
		if !ok || got != want {
			t.Errorf("%s: object %v %s, want %s", rel, ok, short(got), short(want))
		}
	}
}

const mib = 1 << 20

// readsEnv is a mount whose daemon reaches MinIO through a fault proxy,
// with /data associated to s3://bucket/in/ holding a and b (12 MiB each,
// three 4 MiB chunks) and sub/c, all listed through the mount.
type readsEnv struct {
	*daemon
	p    *testutil.FaultProxy
	body map[string][]byte // "a", "b", "sub/c"
}

func newReadsEnv(t *testing.T, fetchTimeout string) *readsEnv {
	srv := testutil.StartMinIO(t)
	bucket := srv.Bucket(t)
	e := &readsEnv{p: testutil.StartFaultProxy(t, srv.Endpoint), body: map[string][]byte{}}
	r := rand.New(rand.NewPCG(1, 2))
	for name, size := range map[string]int{"a": 12 * mib, "b": 12 * mib, "sub/c": 1000} {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		srv.Put(t, bucket, "in/"+name, b)
		e.body[name] = b
	}
	e.daemon = newDaemon(t, srv, t.TempDir())
	e.extraArgs = []string{"--endpoint-url", e.p.URL, "--fetch-timeout", fetchTimeout}
	e.mount()
	e.associate("/data", "s3://"+bucket+"/in/")
	for _, dir := range []string{"data", "data/sub"} {
		if _, err := os.ReadDir(filepath.Join(e.mp, dir)); err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
	}
	return e
}

func (e *readsEnv) set(m testutil.Fault) {
	e.t.Helper()
	if err := e.p.Set(m); err != nil {
		e.t.Fatal(err)
	}
}

// pread reads n bytes of name (under data/) at off through the mount,
// after dropping the kernel's cached pages of the file, so the read
// reaches the daemon.
func (e *readsEnv) pread(name string, off, n int64) error {
	f, err := os.Open(filepath.Join(e.mp, "data", name))
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		return err
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		return err
	}
	if !bytes.Equal(b, e.body[name][off:off+n]) {
		return fmt.Errorf("%s at %d: other bytes than the object's", name, off)
	}
	return nil
}

// metric returns the value of a metric without labels from /metrics.
func (e *readsEnv) metric(name string) float64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	text, err := api.NewClient(filepath.Join(e.rt, e.id+".sock")).Metrics(ctx)
	if err != nil {
		e.t.Fatalf("metrics: %v", err)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		e.t.Fatalf("no metric %s in:\n%s", name, text)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// TestOutageReadsBounded (docs/architecture.md, "Repository outages (reads
// and listings)"): with the repository refusing connections, or accepting
// them and never answering, a read of a released file through the mount fails
// with EIO after --fetch-timeout (3 s here), not sooner and not without bound
// (before: 27 s refused, over 200 s hung), and the daemon logs a line naming
// the endpoint and the file; once the repository is back the next read
// succeeds.
func TestOutageReadsBounded(t *testing.T) {
	const bound = 3 * time.Second
	e := newReadsEnv(t, bound.String())
	for _, c := range []struct {
		fault testutil.Fault
		file  string
	}{{testutil.Hang, "a"}, {testutil.Refuse, "b"}} {
		e.set(c.fault)
		start := time.Now()
		err := e.pread(c.file, 4*mib, 4096)
		took := time.Since(start)
		t.Logf("%s: read of data/%s failed after %v: %v", c.fault, c.file, took, err)
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("%s: read of a released file: %v; want EIO", c.fault, err)
		}
		if took < bound || took > 20*bound {
			t.Errorf("%s: EIO after %v; want it after the bound %v (and not much later)", c.fault, took, bound)
		}
		log, _ := os.ReadFile(filepath.Join(e.rt, e.id+".log"))
		if !regexp.MustCompile(`repository not answering.*endpoint=` + regexp.QuoteMeta(e.p.URL) + `.*path=data/` + c.file + ` `).Match(log) {
			t.Errorf("%s: no log line naming the endpoint %s and data/%s:\n%s", c.fault, e.p.URL, c.file, log)
		}
		e.set(testutil.Pass)
		testutil.Eventually(t, 30*time.Second, "a read once the repository is back", func() bool {
			return e.pread(c.file, 4*mib, 4096) == nil
		})
	}
	// One per outage, or a few more if a read of the page came after
	// the importer's fail-fast second (a loaded machine).
	if n := e.metric("ferry_importer_fetch_timeouts_total"); n < 2 {
		t.Errorf("ferry_importer_fetch_timeouts_total %v; want at least 2", n)
	}
}

// TestOutageReadsInterruptAndLocal (docs/architecture.md, "Repository outages
// (reads and listings)"): while the repository hangs (--fetch-timeout 60s), a
// reader waiting for a released chunk is shown in /metrics as a stalled
// fetch, ends at once on SIGINT (Ctrl-C), and meanwhile reads of chunks
// already local and listings of directories already listed answer. Without
// FOPEN_KEEP_CACHE on opens of released files (fusefs Node.Open) each new
// open of the file waited for the stalled read: the kernel drops an inode's
// pages at open and waits for the locked one.
func TestOutageReadsInterruptAndLocal(t *testing.T) {
	e := newReadsEnv(t, "60s")
	// Make 1 MiB local at 0 and at 8 MiB: the kernel asks the mount for
	// a read's page and its readahead window with it (up to
	// fusefs.KernelReadahead, 512 KiB), and the mount answers once all of
	// it is local — so "local" for a read during the stall below is its
	// page and the window after it.
	for _, c := range []struct {
		name string
		off  int64
	}{{"a", 0}, {"a", 8 * mib}, {"sub/c", 0}} {
		if err := e.pread(c.name, c.off, min(mib, int64(len(e.body[c.name])))); err != nil {
			t.Fatal(err)
		}
	}
	e.set(testutil.Hang)
	// cat reads the local first MiB and then waits for what follows. It has no
	// SIGINT handler, as most programs a user stops with Ctrl-C.
	cat := exec.Command("cat", filepath.Join(e.mp, "data", "a"))
	var catErr bytes.Buffer
	cat.Stderr = &catErr
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cat.Wait() }()
	t.Cleanup(func() { cat.Process.Kill() })
	hung := time.Now()
	testutil.Eventually(t, 50*time.Second, "a stalled fetch in /metrics", func() bool {
		return e.metric("ferry_importer_fetches_stalled") >= 1
	})
	t.Logf("a stalled fetch in /metrics %v after the hang began", time.Since(hung))
	// Local reads (each open drops the kernel's pages of the file),
	// listings and stats answer while cat waits, within a bound far
	// below the 60 s the stalled fetch may last. 8 MiB + 16 KiB: inside
	// the local MiB at 8 MiB, its readahead window too. 8 MiB + 16 KiB is in
	// the chunk the read at 8 MiB made local (chunks are at least
	// importer.MinChunkSize, 64 KiB).
	local := make(chan error, 1)
	go func() {
		for _, c := range []struct {
			name string
			off  int64
		}{{"a", 0}, {"a", 8 * mib}, {"a", 8*mib + 16<<10}, {"sub/c", 0}} {
			n := min(4096, int64(len(e.body[c.name]))-c.off)
			if err := e.pread(c.name, c.off, n); err != nil {
				local <- fmt.Errorf("local read of %s at %d during the stall: %w", c.name, c.off, err)
				return
			}
		}
		for _, dir := range []string{"data", "data/sub"} {
			if _, err := os.ReadDir(filepath.Join(e.mp, dir)); err != nil {
				local <- fmt.Errorf("list %s during the stall: %w", dir, err)
				return
			}
		}
		_, err := os.Stat(filepath.Join(e.mp, "data", "b"))
		local <- err
	}()
	select {
	case err := <-local:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("reads of local data, listings or stats still wait after 20 s: they wait on the stalled fetch")
	}
	select {
	case err := <-exited:
		t.Fatalf("cat ended before the interrupt (%v): the test did not hold a stall\n%s", err, catErr.String())
	default:
	}
	start := time.Now()
	if err := cat.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		t.Logf("cat ended %v after SIGINT: %v", time.Since(start), err)
	case <-time.After(20 * time.Second):
		t.Fatal("cat still waits 20 s after SIGINT")
	}
	e.set(testutil.Pass)
	back := time.Now()
	testutil.Eventually(t, 60*time.Second, "a read once the repository is back", func() bool {
		return e.pread("a", 4*mib, 4096) == nil
	})
	t.Logf("read %v after the repository was back", time.Since(back))
}
