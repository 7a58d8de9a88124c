package daemon

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

func TestParseEventsAddr(t *testing.T) {
	for _, c := range []struct{ addr, token, want string }{
		{"", "", ""},
		{"", "bad token", ""}, // not serving: the token is not used
		{"9010", "", "127.0.0.1:9010"},
		{":9010", "", "127.0.0.1:9010"},
		{"127.0.0.1:0", "", "127.0.0.1:0"},
		{"[::1]:9010", "", "[::1]:9010"},
		{"localhost:9010", "", "localhost:9010"},
		{"0.0.0.0:9010", "s3cr3t", "0.0.0.0:9010"},
		{"10.1.2.3:9010", "s3cr3t", "10.1.2.3:9010"},
	} {
		if got, err := ParseEventsAddr(c.addr, c.token); err != nil || got != c.want {
			t.Errorf("%q token %q: %q %v, want %q", c.addr, c.token, got, err, c.want)
		}
	}
	for _, c := range []struct{ addr, token, says string }{
		{"0.0.0.0:9010", "", "--events-token"},
		{"10.1.2.3:9010", "", EventsTokenEnv},
		{"[::]:9010", "", "127.0.0.1"},
		{"host.example:9010", "", "--events-token"},
		{"x", "", "--events-listen"},
		{"1:99999", "", "--events-listen"},
		{"127.0.0.1:9010", "two words", "--events-token"},
		{"127.0.0.1:9010", "tab\there", "--events-token"},
		{"127.0.0.1:9010", "é", "--events-token"},
	} {
		if _, err := ParseEventsAddr(c.addr, c.token); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q token %q: %v; want an error naming %s", c.addr, c.token, err, c.says)
		}
	}
}

// minioEvent is a MinIO webhook payload for one object (the shape of
// internal/events/testdata/minio-put.json; MinIO escapes '/' in keys).
func minioEvent(name, bucket, key string) string {
	return fmt.Sprintf(`{"EventName":%[1]q,"Key":%[2]q,"Records":[{"eventVersion":"2.0","eventSource":"minio:s3",
"eventTime":%[3]q,"eventName":%[1]q,"s3":{"s3SchemaVersion":"1.0","bucket":{"name":%[4]q,"arn":"arn:aws:s3:::%[4]s"},
"object":{"key":%[5]q,"sequencer":"%[6]X"}}}]}`,
		name, bucket+"/"+key, time.Now().UTC().Format(time.RFC3339Nano), bucket,
		url.QueryEscape(key), time.Now().UnixNano())
}

// post sends body to the daemon's event intake with token (none when
// "") and returns the status.
func postEvent(t *testing.T, addr, token, body string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/events", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func deleteInput(bucket, key string) *s3.DeleteObjectInput {
	return &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
}

var importAll = &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{Events: []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}}}

// With --events-listen the daemon serves POST /events: an event for a new
// object of a listed directory makes the file appear through the mount,
// and one for a deleted object removes it; a request without the token is
// refused. /metrics counts them by source, with the import lag, and
// describe shows FerryStatus.AutoImport for the association and the file
// system.
func TestEventIntakeThroughTheMount(t *testing.T) {
	const token = "t0ken"
	e := startExportEnv(t, func(c *Config) { c.EventsListen, c.EventsToken = "127.0.0.1:0", token })
	addr := e.d.EventsAddr()
	if addr == "" || strings.HasSuffix(addr, ":0") {
		t.Fatalf("events address %q", addr)
	}
	bucket := e.srv.Bucket(t)
	e.srv.Put(t, bucket, "p/old.txt", []byte("old"))
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/data", DataRepositoryPath: "s3://" + bucket + "/p", S3: importAll})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	if _, err := os.ReadDir(filepath.Join(e.mp, "data")); err != nil {
		t.Fatal(err)
	}
	if code := postEvent(t, addr, "", minioEvent("s3:ObjectCreated:Put", bucket, "p/new.txt")); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d, want 401", code)
	}
	e.srv.Put(t, bucket, "p/new.txt", []byte("new object"))
	if code := postEvent(t, addr, token, minioEvent("s3:ObjectCreated:Put", bucket, "p/new.txt")); code != http.StatusOK {
		t.Fatalf("event: %d", code)
	}
	testutil.Eventually(t, 10*time.Second, "data/new.txt through the mount", func() bool {
		b, err := os.ReadFile(filepath.Join(e.mp, "data/new.txt"))
		return err == nil && string(b) == "new object"
	})
	if _, err := e.srv.Client(t).S3.DeleteObject(context.Background(), deleteInput(bucket, "p/old.txt")); err != nil {
		t.Fatal(err)
	}
	if code := postEvent(t, addr, token, minioEvent("s3:ObjectRemoved:Delete", bucket, "p/old.txt")); code != http.StatusOK {
		t.Fatalf("event: %d", code)
	}
	testutil.Eventually(t, 10*time.Second, "data/old.txt gone through the mount", func() bool {
		_, err := os.Lstat(filepath.Join(e.mp, "data/old.txt"))
		return os.IsNotExist(err)
	})
	// An event outside every association is ignored at the door.
	if code := postEvent(t, addr, token, minioEvent("s3:ObjectCreated:Put", bucket, "elsewhere/x")); code != http.StatusOK {
		t.Fatalf("event: %d", code)
	}

	text, err := e.c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		`ferry_events_received_total{source="minio"}`:                   3,
		`ferry_events_queued_total{source="minio"}`:                     2,
		`ferry_events_ignored_total{source="minio"}`:                    1,
		`ferry_events_duplicate_total{source="minio"}`:                  0,
		`ferry_events_malformed_total{source="unknown"}`:                0,
		`ferry_events_received_total{source="ceph"}`:                    0,
		`ferry_events_unauthorized_total`:                               1,
		`ferry_events_applied_total{outcome="new",source="minio"}`:      1,
		`ferry_events_applied_total{outcome="deleted",source="minio"}`:  1,
		`ferry_events_applied_total{outcome="conflict",source="minio"}`: -1, // no sample
		`ferry_import_conflicts_total{kind="changed"}`:                  0,
		`ferry_import_lag_seconds_count`:                                2,
		`ferry_import_lag_seconds_bucket{le="+Inf"}`:                    2,
		`ferry_import_events_pending`:                                   0,
	} {
		if got := metricValue(text, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	st := e.describe(a.AssociationId).FerryStatus
	if st == nil || st.AutoImport == nil {
		t.Fatalf("describe: FerryStatus %+v, want AutoImport", st)
	}
	ai := st.AutoImport
	if !slices.Equal(ai.Sources, []string{api.AutoImportSourceEvents}) || ai.EventsApplied != 2 || ai.Conflicts != 0 ||
		ai.LastEventTime == nil || time.Since(ai.LastEventTime.Time) > time.Minute {
		t.Errorf("association AutoImport %+v", ai)
	}
	var fs api.DescribeFileSystemsResponse
	if err := e.c.Call(context.Background(), api.OpDescribeFileSystems, api.DescribeFileSystemsRequest{}, &fs); err != nil {
		t.Fatal(err)
	}
	if f := fs.FileSystems[0].FerryStatus; f == nil || f.AutoImport == nil || f.AutoImport.PendingEvents == nil ||
		*f.AutoImport.PendingEvents != 0 || f.AutoImport.EventsApplied != 2 || !slices.Equal(f.AutoImport.Sources, []string{api.AutoImportSourceEvents}) {
		t.Errorf("file system FerryStatus %+v", f)
	}
}

// TestEventsSQSThroughTheMount: with --events-sqs the daemon long-polls an
// SQS queue (goaws on loopback); an S3 event in it shows through the
// mount, and the message is deleted once its hint is queued.
func TestEventsSQSThroughTheMount(t *testing.T) {
	g := testutil.StartGoAWS(t, 30, "ferry")
	for _, kv := range g.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	e := startExportEnv(t, func(c *Config) { c.EventsSQS = g.QueueURL("ferry") })
	bucket := e.srv.Bucket(t)
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/data", DataRepositoryPath: "s3://" + bucket + "/p", S3: importAll})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	if _, err := os.ReadDir(filepath.Join(e.mp, "data")); err != nil {
		t.Fatal(err)
	}
	e.srv.Put(t, bucket, "p/new.txt", []byte("new object"))
	g.Send(t, "ferry", minioEvent("s3:ObjectCreated:Put", bucket, "p/new.txt"))
	testutil.Eventually(t, 30*time.Second, "data/new.txt through the mount", func() bool {
		b, err := os.ReadFile(filepath.Join(e.mp, "data/new.txt"))
		return err == nil && string(b) == "new object"
	})
	testutil.Eventually(t, 10*time.Second, "the message deleted", func() bool { return g.Depth(t, "ferry") == 0 })
	text, err := e.c.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{
		`ferry_events_queued_total{source="sqs"}`:                1,
		`ferry_events_sqs_deleted_total`:                         1,
		`ferry_events_applied_total{outcome="new",source="sqs"}`: 1,
	} {
		if got := metricValue(text, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if st := e.describe(a.AssociationId).FerryStatus; st == nil || st.AutoImport == nil || !slices.Contains(st.AutoImport.Sources, api.AutoImportSourceSQS) {
		t.Errorf("describe FerryStatus %+v, want the SQS source", st)
	}
}

// TestEventNameLookedUpBefore: a name looked up (and not found) before its
// object arrived shows at once when the event is applied — the kernel's
// cached failed lookup is dropped — not after --negative-timeout (an hour
// here; by default 1 s, the tail of event-to-visible latency).
func TestEventNameLookedUpBefore(t *testing.T) {
	e := startExportEnv(t, func(c *Config) {
		c.EventsListen = "127.0.0.1:0"
		c.FUSE.NegativeTimeout = time.Hour
	})
	bucket := e.srv.Bucket(t)
	a, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/data", DataRepositoryPath: "s3://" + bucket + "/p", S3: importAll})
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(a.AssociationId, api.LifecycleAvailable)
	for _, p := range []string{"data/new.txt", "data/sub"} {
		if _, err := os.Stat(filepath.Join(e.mp, p)); !os.IsNotExist(err) {
			t.Fatalf("%s before its object: %v, want ENOENT", p, err)
		}
	}
	e.srv.Put(t, bucket, "p/new.txt", []byte("new object"))
	e.srv.Put(t, bucket, "p/sub/deep.txt", []byte("deep"))
	for _, k := range []string{"p/new.txt", "p/sub/deep.txt"} {
		if code := postEvent(t, e.d.EventsAddr(), "", minioEvent("s3:ObjectCreated:Put", bucket, k)); code != http.StatusOK {
			t.Fatalf("event: %d", code)
		}
	}
	testutil.Eventually(t, 20*time.Second, "data/new.txt and data/sub/deep.txt through the mount", func() bool {
		b, err := os.ReadFile(filepath.Join(e.mp, "data/new.txt"))
		c, err2 := os.ReadFile(filepath.Join(e.mp, "data/sub/deep.txt"))
		return err == nil && string(b) == "new object" && err2 == nil && string(c) == "deep"
	})
}
