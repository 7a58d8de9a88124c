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

// TestMovedInDirectoryNotRelisted: a directory moved into an association
// from outside (its files then exported under its new prefix) is the file
// system's: a file renamed out of it through a cached name must not come
// back from its object when the directory is first looked into (TestModel,
// FERRY_MODEL_SEED=1796303421843603601 sequence 652: "unexpected local
// entry"). The same holds for a directory made through the mount.
func TestMovedInDirectoryNotRelisted(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	d := newDaemon(t, srv, t.TempDir())
	d.extraArgs = []string{"--entry-timeout", "10m"}
	d.mount()
	d.associateEvents("/ma", "s3://"+bucket+"/ma/", "NEW,CHANGED")
	for _, moved := range []bool{true, false} {
		name := map[bool]string{true: "in", false: "made"}[moved]
		dir := filepath.Join(d.mp, "ma", name)
		if moved {
			out := filepath.Join(d.mp, "outside")
			if err := os.MkdirAll(out, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(out, "f"), []byte("moved in"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(out, dir); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "f"), []byte("made"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		testutil.Eventually(t, 60*time.Second, "ma/"+name+"/f exported", func() bool {
			_, ok := objectSum(t, srv, bucket, "ma/"+name+"/f")
			return ok
		})
		// The kernel has f's entry cached: the rename looks nothing up.
		if err := os.Rename(filepath.Join(dir, "f"), filepath.Join(d.mp, "ma", name+"-f")); err != nil {
			t.Fatal(err)
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 0 {
			t.Errorf("ma/%s holds %q after its only file was renamed away: made again from its object by a listing", name, ents[0].Name())
		}
	}
}
