package e2e

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestOutageWritesThroughMount (issue 4 item 4): the repository goes away
// while files are written and closed through the mount; closes still
// succeed (the journal is local), the backlog is visible (`ferry hsm wait`
// times out listing what is pending, `ferry umount` counts it), nothing is
// lost across the outage and a remount, and once the repository is back
// every file is exported byte-identical.
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
