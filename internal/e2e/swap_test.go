package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestReleasedFilesSwapped: two released files (their data only in their
// objects) swap names through the mount before either move is exported
// (mv a t; mv b a; mv t b). Each move writes the key the other file's data
// is still under; whichever runs first must not destroy the other's only
// copy. After `hsm wait` both files read back with their own content and
// both keys hold the right objects.
func TestReleasedFilesSwapped(t *testing.T) {
	srv, bucket, d := associatedD(t, allEventsPolicy)
	root := filepath.Join(d.mp, "d")
	for round := range 3 {
		a, b, tmp := filepath.Join(root, "a"), filepath.Join(root, "b"), filepath.Join(root, "t")
		bodyA := []byte("content of A, round " + string(rune('0'+round)))
		bodyB := []byte("content of B, which is longer, round " + string(rune('0'+round)))
		for p, body := range map[string][]byte{a: bodyA, b: bodyB} {
			if err := os.WriteFile(p, body, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		d.ok("hsm", "wait", "--timeout", "60s", root)
		d.ok("hsm", "release", a, b)
		for _, mv := range [][2]string{{a, tmp}, {b, a}, {tmp, b}} {
			if err := os.Rename(mv[0], mv[1]); err != nil {
				t.Fatal(err)
			}
		}
		d.ok("hsm", "wait", "--timeout", "60s", root)
		for p, want := range map[string][]byte{a: bodyB, b: bodyA} {
			got, err := os.ReadFile(p)
			if err != nil || string(got) != string(want) {
				t.Errorf("round %d: %s reads %q, %v; want %q", round, filepath.Base(p), got, err, want)
			}
			sum, ok := objectSum(t, srv, bucket, "d/"+filepath.Base(p))
			if !ok || sum != sha256.Sum256(want) {
				t.Errorf("round %d: object d/%s: present %v, content %s, want %s", round, filepath.Base(p), ok, short(sum), short(sha256.Sum256(want)))
			}
		}
		if _, ok := objectSum(t, srv, bucket, "d/t"); ok {
			t.Errorf("round %d: d/t left behind", round)
		}
		for _, p := range []string{a, b} {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		d.ok("hsm", "wait", "--timeout", "60s", root)
	}
}

// allEventsPolicy imports and exports every event.
const allEventsPolicy = "AutoImportPolicy={Events=[NEW,CHANGED,DELETED]},AutoExportPolicy={Events=[NEW,CHANGED,DELETED]}"

// associatedD mounts a daemon with /d associated to s3://bucket/d/ with the
// --s3 policies given, and waits until the association is AVAILABLE.
func associatedD(t *testing.T, policies string) (*testutil.MinIO, string, *daemon) {
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	d := newDaemon(t, srv, t.TempDir())
	d.mount()
	out := d.ok("fsx", "create-data-repository-association", "--file-system-id", d.id,
		"--file-system-path", "/d", "--data-repository-path", "s3://"+bucket+"/d/",
		"--s3", policies)
	var resp api.CreateDataRepositoryAssociationResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Association == nil {
		t.Fatalf("create: %v\n%s", err, out)
	}
	testutil.Eventually(t, 60*time.Second, "association AVAILABLE", func() bool {
		var dr api.DescribeDataRepositoryAssociationsResponse
		out := d.ok("fsx", "describe-data-repository-associations", "--association-ids", resp.Association.AssociationId)
		return json.Unmarshal([]byte(out), &dr) == nil && len(dr.Associations) == 1 &&
			dr.Associations[0].Lifecycle == api.LifecycleAvailable
	})
	return srv, bucket, d
}

// TestReleasedFileLeavesAssociation: a released file, and a directory
// holding one, moved out of the association (whose policy deletes) and
// renamed again outside, where no journal entry follows them: they read
// back whole after the old objects went (TestModel: EIO, the only copy of
// the data deleted).
func TestReleasedFileLeavesAssociation(t *testing.T) {
	_, _, d := associatedD(t, allEventsPolicy)
	root, out := filepath.Join(d.mp, "d"), filepath.Join(d.mp, "out")
	if err := os.MkdirAll(filepath.Join(root, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"f": []byte("released file content"), "dir/g": []byte("released file in a directory")}
	for p, body := range want {
		if err := os.WriteFile(filepath.Join(root, p), body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d.ok("hsm", "wait", "--timeout", "60s", root)
	d.ok("hsm", "release", filepath.Join(root, "f"), filepath.Join(root, "dir/g"))
	for _, mv := range [][2]string{
		{filepath.Join(root, "f"), filepath.Join(out, "f1")}, {filepath.Join(out, "f1"), filepath.Join(out, "f2")},
		{filepath.Join(root, "dir"), filepath.Join(out, "dir1")}, {filepath.Join(out, "dir1"), filepath.Join(out, "dir2")},
	} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	d.ok("hsm", "wait", "--timeout", "60s", root)
	for p, body := range map[string][]byte{"f2": want["f"], "dir2/g": want["dir/g"]} {
		got, err := os.ReadFile(filepath.Join(out, p))
		if err != nil || string(got) != string(body) {
			t.Errorf("out/%s reads %q, %v; want %q", p, got, err, body)
		}
	}
}
