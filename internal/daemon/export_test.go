package daemon

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// startExportEnv is startEnv with fast exporter retries and mod applied to
// the configuration.
func startExportEnv(t *testing.T, mod func(*Config)) *env {
	t.Helper()
	testutil.NeedFUSE(t)
	srv := testutil.SharedMinIO(t)
	srv.Client(t)
	e := &env{t: t, srv: srv, rt: t.TempDir(), st: t.TempDir(), mp: t.TempDir()}
	testutil.DetachOnCleanup(t, e.mp)
	e.startExport(mod)
	return e
}

// exportData associates /data with s3://bucket/p exporting NEW, CHANGED
// and DELETED, and waits until it is AVAILABLE.
func (e *env) exportData(bucket string) (id string) {
	e.t.Helper()
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/data", DataRepositoryPath: "s3://" + bucket + "/p", S3: exportAll})
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	return a.AssociationId
}

// startExport starts the daemon of e's store with fast exporter retries.
func (e *env) startExport(mod func(*Config)) {
	e.t.Helper()
	cfg := Config{Store: e.st, MountPoint: e.mp, RuntimeDir: e.rt,
		S3:              s3x.Config{EndpointURL: e.srv.Endpoint, MaxAttempts: 2},
		RecheckInterval: 400 * time.Millisecond,
		Export:          ExportOptions{RetryBase: 50 * time.Millisecond, RetryMax: 300 * time.Millisecond, Poll: 50 * time.Millisecond},
	}
	if mod != nil {
		mod(&cfg)
	}
	d, err := Start(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.d = d
	e.c = api.NewClient(mounts.SocketPath(e.rt, d.ID()))
	e.t.Cleanup(func() { e.c.Close(); d.Stop() })
}

var exportAll = &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}}}

// writeJournaled writes a file through the mount and appends its journal
// entry the way the mount's write hooks will (they are not there yet).
func (e *env) writeJournaled(rel, body string) {
	e.t.Helper()
	if err := os.WriteFile(filepath.Join(e.mp, rel), []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.journal(rel, catalog.KindNew)
}

func (e *env) journal(rel string, kind catalog.Kind) {
	e.t.Helper()
	if err := e.d.cat.Append(context.Background(), catalog.JournalAppend{Path: rel, Kind: kind}); err != nil {
		e.t.Fatal(err)
	}
	e.d.exp.Notify()
}

func (e *env) wait(timeout float64, paths ...string) api.WaitEvent {
	e.t.Helper()
	var last api.WaitEvent
	n := 0
	err := e.c.Wait(context.Background(), api.HSMRequest{Paths: paths, Timeout: timeout}, func(ev api.WaitEvent) { last = ev; n++ })
	if err != nil {
		e.t.Fatal(err)
	}
	if !last.Done || n < 1 {
		e.t.Fatalf("wait stream without its last line: %+v", last)
	}
	return last
}

// metricValue returns the value of the sample name (with its labels) in
// Prometheus text, or -1.
func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func getObject(t *testing.T, c *s3x.Client, bucket, key string) (string, bool) {
	t.Helper()
	out, err := c.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		if s3x.CodeOf(err) == "NoSuchKey" {
			return "", false
		}
		t.Fatal(err)
	}
	defer out.Body.Close()
	b, _ := io.ReadAll(out.Body)
	return string(b), true
}

// Files appended to the journal are exported by the daemon's exporter;
// hsm wait returns once they are; /metrics shows the counters, the lag
// histogram and the journal's backlog, also on --metrics-addr.
func TestExportWaitMetrics(t *testing.T) {
	e := startExportEnv(t, func(c *Config) { c.MetricsAddr = "127.0.0.1:0" })
	bucket := e.srv.Bucket(t)
	e.exportData(bucket)
	if err := os.MkdirAll(filepath.Join(e.mp, "data/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeJournaled("data/sub/a.txt", "alpha")
	e.writeJournaled("data/b.txt", "beta")
	ev := e.wait(30, filepath.Join(e.mp, "data"), filepath.Join(e.mp, "data/sub"))
	if ev.TimedOut || len(ev.Failed) != 0 || ev.Error != "" {
		t.Fatalf("wait: %+v", ev)
	}
	c := e.srv.Client(t)
	for key, want := range map[string]string{"p/sub/a.txt": "alpha", "p/b.txt": "beta"} {
		if got, ok := getObject(t, c, bucket, key); !ok || got != want {
			t.Errorf("%s: %q %v", key, got, ok)
		}
	}
	st, err := e.d.store.GetState("data/b.txt")
	if err != nil || st.Flags != hsm.Exists|hsm.Archived {
		t.Errorf("state after export: %v %v", st.Flags, err)
	}
	m, err := e.c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// At least the two files: once the mount journals its own writes, the
	// directory made through it and second exports of entries appended
	// both by the mount and by this test count too.
	for _, want := range []string{"ferry_export_bytes_total 9", "ferry_export_journal_depth 0",
		"ferry_export_journal_oldest_age_seconds 0", "ferry_export_in_flight 0", "ferry_export_writer_open_waits_total 0"} {
		if !strings.Contains(m, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	objects, lagCount, lagInf := metricValue(m, "ferry_export_objects_total"), metricValue(m, "ferry_export_lag_seconds_count"), metricValue(m, `ferry_export_lag_seconds_bucket{le="+Inf"}`)
	if objects < 2 || lagCount < 2 || lagInf != lagCount {
		t.Errorf("metrics: objects %v, lag count %v, +Inf bucket %v", objects, lagCount, lagInf)
	}
	resp, err := http.Get("http://" + e.d.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || metricValue(string(b), "ferry_export_objects_total") != objects {
		t.Errorf("metrics over TCP: %d\n%.300s", resp.StatusCode, b)
	}
	if !strings.HasPrefix(e.d.MetricsAddr(), "127.0.0.1:") {
		t.Errorf("metrics address %s", e.d.MetricsAddr())
	}
	if s, err := e.c.ExportStatus(context.Background()); err != nil || s.Pending != 0 {
		t.Errorf("export status %+v %v", s, err)
	}
}

// hsm wait with a timeout lists what is still pending (here: under an
// association that cannot export), and reports parked entries as failures
// without waiting for them.
func TestWaitTimeoutAndParked(t *testing.T) {
	e := startExportEnv(t, nil)
	bucket := e.srv.Bucket(t)
	good, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/good", DataRepositoryPath: "s3://" + bucket + "/g", S3: exportAll})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/bad", DataRepositoryPath: "s3://ferry-no-such-" + strings.ToLower(e.d.ID()[3:]) + "/x", S3: exportAll})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(good.AssociationId, api.LifecycleAvailable)
	e.waitState(bad.AssociationId, api.LifecycleMisconfigured)
	e.writeJournaled("bad/stuck.txt", "stuck")
	// A key over S3's 1024 bytes: parked as PathSizeTooLong.
	long := "good"
	for i := range 5 {
		long += "/" + strings.Repeat(string(rune('a'+i)), 230)
	}
	if err := os.MkdirAll(filepath.Join(e.mp, filepath.Dir(long)), 0o755); err != nil {
		t.Fatal(err)
	}
	e.writeJournaled(long, "x")
	e.writeJournaled("good/ok.txt", "ok")

	ev := e.wait(0.5, e.mp) // a wait that ignored its timeout would hang here: the entry never exports
	if !ev.TimedOut || ev.Pending != 1 || len(ev.PendingFiles) != 1 || ev.PendingFiles[0].Path != filepath.Join(e.mp, "bad/stuck.txt") {
		t.Fatalf("wait with timeout: %+v", ev)
	}
	if f := ev.PendingFiles[0]; f.Kind != "NEW" || f.Pending == nil {
		t.Errorf("pending entry: %+v", f)
	}
	// hsm action shows the pending export as lfs shows a queued archive.
	resp, err := e.c.HSM(context.Background(), api.HSMAction, api.HSMRequest{Paths: []string{filepath.Join(e.mp, "bad/stuck.txt"), filepath.Join(e.mp, "good")}})
	if err != nil || resp.Files[0].Action != "ARCHIVE waiting (from 0 to EOF)" || resp.Files[1].Action != "NOOP" {
		t.Errorf("hsm action: %+v %v", resp, err)
	}
	// The healthy association's entries are done; the parked one is a
	// failure with its cause, and does not hold the wait up.
	ev = e.wait(30, filepath.Join(e.mp, "good"))
	if ev.TimedOut || len(ev.Failed) != 1 || ev.Failed[0].Path != filepath.Join(e.mp, long) || !strings.Contains(ev.Failed[0].LastError, "PathSizeTooLong") {
		t.Fatalf("wait with a parked entry: %+v", ev)
	}
	if got, ok := getObject(t, e.srv.Client(t), bucket, "g/ok.txt"); !ok || got != "ok" {
		t.Errorf("g/ok.txt: %q %v", got, ok)
	}
	// A path outside the mount is a bad request.
	err = e.c.Wait(context.Background(), api.HSMRequest{Paths: []string{"/elsewhere"}}, func(api.WaitEvent) {})
	if !api.IsCode(err, api.CodeBadRequest) {
		t.Errorf("wait outside the mount: %v", err)
	}
}

// hsm archive exports now whatever the policy (here: none).
func TestArchive(t *testing.T) {
	e := startExportEnv(t, nil)
	bucket := e.srv.Bucket(t)
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/data", DataRepositoryPath: "s3://" + bucket + "/p"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	p := filepath.Join(e.mp, "data/out.nc")
	for _, f := range []string{p, filepath.Join(e.mp, "outside.txt")} {
		if err := os.WriteFile(f, []byte("output"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := e.c.HSM(context.Background(), api.HSMArchive, api.HSMRequest{Paths: []string{p, filepath.Join(e.mp, "data/missing"), filepath.Join(e.mp, "outside.txt")}})
	if err != nil {
		t.Fatal(err)
	}
	if f := resp.Files[0]; f.Error != "" || hsm.Flags(f.Flags) != hsm.Exists|hsm.Archived {
		t.Errorf("archive: %+v", f)
	}
	if f := resp.Files[1]; f.Errno != "No such file or directory" {
		t.Errorf("archive of a missing file: %+v", f)
	}
	if f := resp.Files[2]; !strings.Contains(f.Error, "association") {
		t.Errorf("archive outside associations: %+v", f)
	}
	if got, ok := getObject(t, e.srv.Client(t), bucket, "p/out.nc"); !ok || got != "output" {
		t.Errorf("object: %q %v", got, ok)
	}
}

func emptyAndDeleteBucket(t *testing.T, c *s3x.Client, bucket string) {
	t.Helper()
	ctx := context.Background()
	out, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Contents {
		if _, err := c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: o.Key}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.S3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
}

func createBucket(t *testing.T, c *s3x.Client, bucket string) {
	t.Helper()
	if _, err := c.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Fatal(err)
	}
}

// An AVAILABLE association whose bucket disappears turns MISCONFIGURED at
// its periodic check (naming the bucket), and AVAILABLE again by itself
// once the bucket is back.
func TestAvailableRecheck(t *testing.T) {
	e := startExportEnv(t, func(c *Config) { c.AvailableCheckInterval = 300 * time.Millisecond })
	c := e.srv.Client(t)
	bucket := e.srv.Bucket(t)
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/data", DataRepositoryPath: "s3://" + bucket + "/p"})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	emptyAndDeleteBucket(t, c, bucket)
	got := e.waitState(a.AssociationId, api.LifecycleMisconfigured)
	if got.FailureDetails == nil || !strings.Contains(got.FailureDetails.Message, bucket) || !strings.Contains(got.FailureDetails.Message, "does not exist") {
		t.Errorf("failure details: %+v", got.FailureDetails)
	}
	createBucket(t, c, bucket)
	got = e.waitState(a.AssociationId, api.LifecycleAvailable)
	if got.FailureDetails != nil {
		t.Errorf("failure details kept: %+v", got.FailureDetails)
	}
}

// An export that fails because the bucket is gone makes the association
// MISCONFIGURED at once (no periodic check here); its entries wait, and are
// exported once the bucket is back and the association AVAILABLE again.
func TestExportFailureMisconfigures(t *testing.T) {
	e := startExportEnv(t, func(c *Config) { c.AvailableCheckInterval = -1 })
	c := e.srv.Client(t)
	bucket := e.srv.Bucket(t)
	id := e.exportData(bucket)
	// The mount lists the directory now (a listing of a bucket that is
	// gone fails the lookup with EIO).
	e.writeJournaled("data/early.txt", "early")
	if ev := e.wait(30, e.mp); ev.TimedOut {
		t.Fatalf("first wait: %+v", ev)
	}
	emptyAndDeleteBucket(t, c, bucket)
	e.writeJournaled("data/late.txt", "late")
	got := e.waitState(id, api.LifecycleMisconfigured)
	if got.FailureDetails == nil || !strings.Contains(got.FailureDetails.Message, bucket) {
		t.Errorf("failure details: %+v", got.FailureDetails)
	}
	if n := e.d.exp.Stats().Failures[s3x.CodeNoSuchBucket]; n == 0 {
		t.Errorf("no NoSuchBucket failure counted: %v", e.d.exp.Stats().Failures)
	}
	createBucket(t, c, bucket)
	e.waitState(id, api.LifecycleAvailable)
	if ev := e.wait(60, e.mp); ev.TimedOut || len(ev.Failed) != 0 {
		t.Fatalf("wait after recovery: %+v", ev)
	}
	if body, ok := getObject(t, c, bucket, "p/late.txt"); !ok || body != "late" {
		t.Errorf("p/late.txt: %q %v", body, ok)
	}
}

func TestParseMetricsAddr(t *testing.T) {
	for in, want := range map[string]string{"": "", "9100": "127.0.0.1:9100", ":9100": "127.0.0.1:9100", "0.0.0.0:9100": "0.0.0.0:9100", "[::1]:9": "[::1]:9"} {
		if got, err := ParseMetricsAddr(in); err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	for _, bad := range []string{"x", "host:port", "1:99999"} {
		if _, err := ParseMetricsAddr(bad); err == nil || !strings.Contains(err.Error(), "--metrics-addr") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestOutermost(t *testing.T) {
	got := outermost([]string{"a/b", "a", "c", "a", "ab", "c/d"})
	if strings.Join(got, ",") != "a,c,ab" {
		t.Errorf("outermost: %v", got)
	}
	if got := outermost([]string{"x", ""}); len(got) != 1 || got[0] != "" {
		t.Errorf("root: %q", got)
	}
}

// Stopping never drops pending exports: the journal stays in the catalog
// (PendingExports reads it with the daemon gone) and the next start exports
// it once the repository is usable.
func TestPendingExportsSurviveRestart(t *testing.T) {
	e := startExportEnv(t, nil)
	c := e.srv.Client(t)
	bucket := "ferry-later-" + strings.ToLower(e.d.ID()[3:])
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/data", DataRepositoryPath: "s3://" + bucket + "/p", S3: exportAll})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleMisconfigured)
	e.writeJournaled("data/one.txt", "one")
	e.writeJournaled("data/two.txt", "two")
	catURL := e.d.cfg.Catalog
	if err := e.d.Stop(); err != nil {
		t.Fatal(err)
	}
	n, age, err := PendingExports(catURL, e.st)
	if err != nil || n != 2 || age <= 0 {
		t.Fatalf("pending after stop: %d %v %v", n, age, err)
	}
	createBucket(t, c, bucket)
	t.Cleanup(func() { emptyAndDeleteBucket(t, c, bucket) })
	e.startExport(nil)
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	if ev := e.wait(60, e.mp); ev.TimedOut || len(ev.Failed) != 0 {
		t.Fatalf("wait after the restart: %+v", ev)
	}
	for _, k := range []string{"one", "two"} {
		if body, ok := getObject(t, c, bucket, "p/"+k+".txt"); !ok || body != k {
			t.Errorf("p/%s.txt: %q %v", k, body, ok)
		}
	}
	if s, err := e.c.ExportStatus(context.Background()); err != nil || s.Pending != 0 {
		t.Errorf("export status after the drain: %+v %v", s, err)
	}
}
