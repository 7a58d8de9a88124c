package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestDirRenameDuringMove is the TestCrashKill9 flake made deterministic: a
// directory of exported files is renamed, and renamed again while the
// exporter moves its objects (its new `dir/` object is there: the move has
// begun). `ferry hsm wait` must not return before every file is under its
// final key. Before the exporter resolved moves from the file's identity
// (49f9378) it returned 0 with 199 or 200 of 200 files still under the first
// name: the claimed RENAME found the new names gone and left the objects, and
// the second RENAME listed the intermediate name's prefix, where nothing was.
func TestDirRenameDuringMove(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	d := newDaemon(t, srv, t.TempDir())
	d.mount()
	d.associateEvents("/d", "s3://"+bucket+"/d/", "NEW,CHANGED")
	if err := os.Mkdir(filepath.Join(d.mp, "d/a"), 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 100
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
	count := func(prefix string) int {
		n := 0
		err := srv.Client(t).List(context.Background(), bucket, s3x.ListOptions{Prefix: prefix}, func(o s3x.Object) error {
			if !strings.HasSuffix(o.Key, "/") {
				n++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if c, a := count("d/c/"), count("d/a/"); c != n {
		t.Errorf("after hsm wait exited 0: %d of %d files have an object under c/ (%d objects still under a/)", c, n, a)
	}
	for i := range n {
		want := sha256.Sum256([]byte(fmt.Sprint(i)))
		if got, ok := objectSum(t, srv, bucket, fmt.Sprintf("d/c/f%03d", i)); ok && got != want {
			t.Errorf("d/c/f%03d: object %s, want %s", i, short(got), short(want))
		}
	}
}
