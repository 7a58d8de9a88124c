package daemon

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/hsm"
)

// Writes through the mount reach the repository with nothing else done:
// the mount journals them (write hooks), the exporter exports them, hsm
// wait drains; a rename moves the object; an unlink without DELETED in the
// policy leaves it (ferry deletes an object only with DELETED in the
// policy).
func TestAutoExportThroughTheMount(t *testing.T) {
	e := startExportEnv(t, nil)
	bucket := e.srv.Bucket(t)
	c := e.srv.Client(t)
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/out", DataRepositoryPath: "s3://" + bucket + "/o",
		S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: []api.EventType{api.EventNew, api.EventChanged}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	p := filepath.Join(e.mp, "out/run.nc")
	if err := os.WriteFile(p, []byte("first"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ev := e.wait(60, filepath.Join(e.mp, "out")); ev.TimedOut || len(ev.Failed) != 0 {
		t.Fatalf("wait: %+v", ev)
	}
	if body, ok := getObject(t, c, bucket, "o/run.nc"); !ok || body != "first" {
		t.Fatalf("o/run.nc: %q %v", body, ok)
	}
	st, err := e.d.store.GetState("out/run.nc")
	if err != nil || st.Flags != hsm.Exists|hsm.Archived {
		t.Errorf("state after export: %v %v", st.Flags, err)
	}
	// Rewritten: exported again, once, with the new content.
	if err := os.WriteFile(p, []byte("second version"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.wait(60, e.mp)
	if body, _ := getObject(t, c, bucket, "o/run.nc"); body != "second version" {
		t.Errorf("after rewrite: %q", body)
	}
	// Renamed: the object moves.
	q := filepath.Join(e.mp, "out/final.nc")
	if err := os.Rename(p, q); err != nil {
		t.Fatal(err)
	}
	e.wait(60, e.mp)
	if _, ok := getObject(t, c, bucket, "o/run.nc"); ok {
		t.Errorf("o/run.nc still there after the rename")
	}
	if body, ok := getObject(t, c, bucket, "o/final.nc"); !ok || body != "second version" {
		t.Errorf("o/final.nc: %q %v", body, ok)
	}
	// Unlinked without DELETED in the policy: the object stays.
	if err := os.Remove(q); err != nil {
		t.Fatal(err)
	}
	e.wait(60, e.mp)
	if _, ok := getObject(t, c, bucket, "o/final.nc"); !ok {
		t.Errorf("o/final.nc deleted without DELETED in the policy")
	}
	if s, err := e.c.ExportStatus(context.Background()); err != nil || s.Pending != 0 {
		t.Errorf("export status: %+v %v", s, err)
	}
}
