package daemon

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
)

// The import sweep alone (no bucket events) brings new, overwritten and
// deleted objects of listed directories through the mount within 15 s at
// a 1 s interval (the sweep's own wait is 1 s, its applier's poll 2 s),
// and nothing of a directory never listed; /metrics counts the sweeps.
func TestSweepThroughTheMount(t *testing.T) {
	e := startExportEnv(t, func(c *Config) { c.ImportSweepInterval = time.Second })
	bucket := e.srv.Bucket(t)
	for _, k := range []string{"p/d/old", "p/d/gone", "p/u/x"} {
		e.srv.Put(t, bucket, k, []byte(filepath.Base(k)))
	}
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/in", DataRepositoryPath: "s3://" + bucket + "/p",
		S3: &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{Events: []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}}}})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	in := filepath.Join(e.mp, "in")
	for _, d := range []string{in, filepath.Join(in, "d")} {
		if _, err := os.ReadDir(d); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(in, "d/old")); err != nil || string(b) != "old" {
		t.Fatalf("d/old: %q %v", b, err)
	}

	start := time.Now()
	e.srv.Put(t, bucket, "p/d/new", []byte("new"))
	e.srv.Put(t, bucket, "p/d/old", []byte("old, overwritten"))
	if _, err := e.srv.Client(t).S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("p/d/gone")}); err != nil {
		t.Fatal(err)
	}
	e.srv.Put(t, bucket, "p/u/y", []byte("y")) // u was never listed
	e.srv.Put(t, bucket, "p/n/z", []byte("z")) // a new directory
	read := func(rel string) string {
		b, _ := os.ReadFile(filepath.Join(in, rel))
		return string(b)
	}
	for {
		_, errGone := os.Stat(filepath.Join(in, "d/gone"))
		st, errN := os.Stat(filepath.Join(in, "n"))
		if read("d/new") == "new" && read("d/old") == "old, overwritten" && errors.Is(errGone, fs.ErrNotExist) && errN == nil && st.IsDir() {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("after 15 s: new %q, old %q, gone %v, n %v; sweeps %+v", read("d/new"), read("d/old"), errGone, errN, e.d.sweeper.Stats())
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("visible after %v", time.Since(start).Round(time.Millisecond))
	if _, err := os.Stat(filepath.Join(e.d.cfg.Store, "in/u/y")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an object of a directory never listed was imported: %v", err)
	}
	if read("u/y") != "y" || read("n/z") != "z" { // their first listing sees them
		t.Errorf("u/y %q, n/z %q", read("u/y"), read("n/z"))
	}
	m, err := e.c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if metricValue(m, "ferry_import_sweeps_total") < 1 || metricValue(m, "ferry_import_sweep_list_requests_total") < 1 ||
		metricValue(m, `ferry_import_sweep_hints_total{kind="new"}`) < 2 {
		t.Errorf("sweep metrics:\n%s", m)
	}
	if st := e.describe(a.AssociationId).FerryStatus; st == nil || st.AutoImport == nil ||
		!slices.Equal(st.AutoImport.Sources, []string{api.AutoImportSourceSweep}) || st.AutoImport.LastSweep == nil ||
		time.Since(st.AutoImport.LastSweep.Time) > time.Minute {
		t.Errorf("describe FerryStatus %+v, want AutoImport with the SWEEP source and a last sweep", st)
	}
}
