package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestDirRenameDuringMove is the TestCrashKill9 flake made deterministic
// (issue 10 item 1): a directory of exported files is renamed, and renamed
// again while the exporter moves its objects (its new `dir/` object is
// there: the move has begun). `ferry hsm wait` must not return before
// every file is under its final key. Before the exporter resolved moves
// from the file's identity (49f9378) it returned 0 with 199 or 200 of the
// 200 files still under the first name: the claimed RENAME found the new
// names gone and left the objects, and the second RENAME listed the
// intermediate name's prefix, where nothing was.
func TestDirRenameDuringMove(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	d := newDaemon(t, srv, t.TempDir())
	d.mount()
	d.associateEvents("/d", "s3://"+bucket+"/d/", "NEW,CHANGED")
	if err := os.Mkdir(filepath.Join(d.mp, "d/a"), 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		if err := os.WriteFile(filepath.Join(d.mp, fmt.Sprintf("d/a/f%03d", i)), []byte(fmt.Sprint(i)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.ok("hsm", "wait", "--timeout", "120s", filepath.Join(d.mp, "d"))
	if err := os.Rename(filepath.Join(d.mp, "d/a"), filepath.Join(d.mp, "d/b")); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "the move to b/ begun (its dir object)", func() bool {
		_, ok := objectSum(t, srv, bucket, "d/b/")
		return ok
	})
	if err := os.Rename(filepath.Join(d.mp, "d/b"), filepath.Join(d.mp, "d/c")); err != nil {
		t.Fatal(err)
	}
	d.ok("hsm", "wait", "--timeout", "120s", filepath.Join(d.mp, "d"))
	missing, stale := 0, 0
	for i := range n {
		if _, ok := objectSum(t, srv, bucket, fmt.Sprintf("d/c/f%03d", i)); !ok {
			missing++
		}
		if _, ok := objectSum(t, srv, bucket, fmt.Sprintf("d/a/f%03d", i)); ok {
			stale++
		}
	}
	if missing > 0 {
		t.Errorf("after hsm wait exited 0: %d of %d files have no object under c/ (%d objects still under a/)", missing, n, stale)
	}
}
