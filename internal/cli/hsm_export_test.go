package cli_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// freePort returns a TCP port of 127.0.0.1 free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// journal appends NEW entries to the store's catalog the way the mount's
// write hooks will (they are not there yet); the daemon's exporter finds
// them at its next poll.
func journal(t *testing.T, store string, paths ...string) {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, "", catalog.Options{StoreRoot: store})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	for _, p := range paths {
		if err := cat.Append(ctx, catalog.JournalAppend{Path: p, Kind: catalog.KindNew}); err != nil {
			t.Fatal(err)
		}
	}
}

func objectBody(t *testing.T, srv *testutil.MinIO, bucket, key string) (string, bool) {
	t.Helper()
	out, err := srv.Client(t).S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return "", false
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return string(b), true
}

// ferry hsm wait, hsm archive, umount with exports pending during an
// outage, and export resuming at the next mount; metrics on --metrics-addr.
func TestHsmWaitArchiveUmount(t *testing.T) {
	testutil.NeedFUSE(t)
	srv := testutil.StartMinIO(t) // stopped in the middle
	port := freePort(t)
	m := &mountEnv{t: t, srv: srv, rt: t.TempDir(), st: t.TempDir(), mp: t.TempDir(),
		extraArgs: []string{"--metrics-addr", fmt.Sprint(port), "--auto-release-above", "0.99"}}
	testutil.DetachOnCleanup(t, m.mp)
	m.mount()
	t.Cleanup(func() { m.ferry("", "umount", m.mp) })
	bucket := srv.Bucket(t)
	a, r := m.create("/data", "s3://"+bucket+"/p", "--s3", "AutoExportPolicy={Events=[NEW,CHANGED,DELETED]}")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	m.waitState(a.AssociationId, api.LifecycleAvailable)
	write := func(rel, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(m.mp, rel), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// hsm wait: returns once what was closed before it is exported.
	write("data/a.txt", "alpha")
	journal(t, m.st, "data/a.txt")
	r = m.ferry("", "hsm", "wait", "--timeout", "60s", filepath.Join(m.mp, "data"))
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("hsm wait: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if body, ok := objectBody(t, srv, bucket, "p/a.txt"); !ok || body != "alpha" {
		t.Errorf("p/a.txt after hsm wait: %q %v", body, ok)
	}
	// hsm archive: exports a file nothing journaled; prints nothing, like lfs.
	write("data/b.txt", "beta")
	r = m.ferry(filepath.Join(m.mp, "data"), "hsm", "archive", "b.txt")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("hsm archive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if body, ok := objectBody(t, srv, bucket, "p/b.txt"); !ok || body != "beta" {
		t.Errorf("p/b.txt after hsm archive: %q %v", body, ok)
	}
	bp := filepath.Join(m.mp, "data/b.txt")
	if out := m.ok("hsm", "state", bp); out != bp+": (0x00000009) exists archived\n" {
		t.Errorf("state after archive: %q", out)
	}
	r = m.ferry("", "hsm", "archive", filepath.Join(m.mp, "data/nope"))
	if r.code != 1 || !strings.Contains(r.stderr, "ferry hsm archive: cannot archive "+filepath.Join(m.mp, "data/nope")) {
		t.Errorf("archive of a missing file: exit %d\n%s", r.code, r.stderr)
	}
	// Metrics on the TCP port.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// At least a.txt and b.txt (more once the mount journals its writes:
	// the same file exported by hsm archive and by auto-export).
	if !strings.Contains(string(b), "\nferry_export_journal_depth 0\n") || !regexp.MustCompile(`\nferry_export_objects_total ([2-9]|\d\d)\n`).Match(b) ||
		!regexp.MustCompile(`\nferry_export_lag_seconds_count [1-9]\d*\n`).Match(b) {
		t.Errorf("metrics:\n%s", b)
	}

	// The repository goes away: exports stay pending, hsm wait times out
	// listing them, umount says how many the journal keeps.
	srv.Stop()
	write("data/c.txt", "gamma")
	write("data/d.txt", "delta")
	journal(t, m.st, "data/c.txt", "data/d.txt")
	r = m.ferry("", "hsm", "wait", "--timeout", "2s", m.mp)
	if r.code != 1 || !strings.Contains(r.stderr, "ferry hsm wait: timed out after 2s: 2 exports still pending:") ||
		!strings.Contains(r.stderr, "  "+filepath.Join(m.mp, "data/c.txt")+" (NEW") || !strings.Contains(r.stderr, "  "+filepath.Join(m.mp, "data/d.txt")+" (NEW") {
		t.Errorf("hsm wait during the outage: exit %d\n%s", r.code, r.stderr)
	}
	r = m.ferry("", "umount", m.mp)
	if r.code != 0 || !strings.Contains(r.stderr, "ferry umount: 2 exports pending") || !strings.Contains(r.stderr, m.st) {
		t.Fatalf("umount: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Back: the next mount exports them.
	srv.Restart(t)
	m.mount()
	r = m.ferry("", "hsm", "wait", "--timeout", "90s", m.mp)
	if r.code != 0 {
		t.Fatalf("hsm wait after the remount: exit %d\n%s", r.code, r.stderr)
	}
	for key, want := range map[string]string{"p/c.txt": "gamma", "p/d.txt": "delta"} {
		if body, ok := objectBody(t, srv, bucket, key); !ok || body != want {
			t.Errorf("%s after the remount: %q %v", key, body, ok)
		}
	}
	r = m.ferry("", "umount", m.mp)
	if r.code != 0 || r.stderr != "" {
		t.Errorf("umount with nothing pending: exit %d\n%s", r.code, r.stderr)
	}
	// Bad flags.
	r = m.ferry("", "hsm", "wait", "--timeout", "soon", "/x")
	if r.code != 2 || !strings.Contains(r.stderr, "--timeout") {
		t.Errorf("bad --timeout: exit %d\n%s", r.code, r.stderr)
	}
	r = m.ferry("", "mount", "--metrics-addr", "nine", "--store", m.st, m.mp)
	if r.code != 2 || !strings.Contains(r.stderr, "--metrics-addr") {
		t.Errorf("bad --metrics-addr: exit %d\n%s", r.code, r.stderr)
	}
	r = m.ferry("", "mount", "--auto-release-above", "0.5", "--store", m.st, m.mp)
	if r.code != 2 || !strings.Contains(r.stderr, "--auto-release-above 0.5") {
		t.Errorf("bad --auto-release-above: exit %d\n%s", r.code, r.stderr)
	}
}
