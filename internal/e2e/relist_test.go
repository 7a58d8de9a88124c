package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestUnlinkAfterDirRenameStaysDeleted: a file unlinked in a renamed
// directory after its object moved there stays deleted. The mount lists a
// directory of an association at its first lookup or readdir, and keeps
// which directories it listed by path; a renamed directory is listed again
// under its new name. A file unlinked through a name the kernel still has
// cached (no lookup, so no listing, before the unlink), policy NEW,CHANGED
// (the object stays): the readdir that follows lists the new prefix and
// makes the unlinked file again from its object. The long entry timeout
// makes the kernel's cache, which lasts 1 s by default, outlive the export
// (TestModel found it with the default when the export took under 1 s).
// Skipped while relistAfterDirRenameFixed is false (model_test.go).
func TestUnlinkAfterDirRenameStaysDeleted(t *testing.T) {
	if !relistAfterDirRenameFixed && os.Getenv("FERRY_MODEL_UNGUARDED") != "1" {
		t.Skip("known failure on main: relistAfterDirRenameFixed is false (FERRY_MODEL_UNGUARDED=1 runs it)")
	}
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	d := newDaemon(t, srv, t.TempDir())
	d.extraArgs = []string{"--entry-timeout", "10m"}
	d.mount()
	d.associateEvents("/ma", "s3://"+bucket+"/ma/", "NEW,CHANGED")
	a, b := filepath.Join(d.mp, "ma/a"), filepath.Join(d.mp, "ma/b")
	if err := os.Mkdir(a, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a, "f"), []byte("deleted"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(a, b); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 60*time.Second, "ma/b/f exported", func() bool {
		_, ok := objectSum(t, srv, bucket, "ma/b/f")
		return ok
	})
	if err := os.Remove(filepath.Join(b, "f")); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Errorf("ma/b holds %q after its only file was unlinked: made again from its object by a listing", ents[0].Name())
	}
}
