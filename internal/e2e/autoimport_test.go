package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// importEnv is a daemon serving S3 event notifications (--events-listen,
// the token in FERRY_EVENTS_TOKEN) from a MinIO whose webhook target is
// configured by its environment, with /data associated to
// s3://bucket/in/ (AutoImportPolicy NEW, CHANGED, DELETED; no export) and
// the bucket's notification configuration sending the prefix's creates
// and deletes to the daemon.
type importEnv struct {
	*daemon
	bucket string
	c      *s3x.Client
}

const webhookToken = "e2e-webhook-token"

// newImportEnv starts the MinIO and the daemon with seed's objects (keys
// below in/) in the bucket and extra mount arguments.
func newImportEnv(t *testing.T, seed map[string]string, extra ...string) *importEnv {
	t.Helper()
	testutil.NeedFUSE(t)
	// MinIO reads its webhook target from its environment at start, so
	// the daemon's address is chosen first; MinIO sends once the daemon
	// listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	t.Setenv("MINIO_NOTIFY_WEBHOOK_ENABLE_FERRY", "on")
	t.Setenv("MINIO_NOTIFY_WEBHOOK_ENDPOINT_FERRY", "http://"+addr+"/events")
	t.Setenv("MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FERRY", webhookToken)
	t.Setenv("FERRY_EVENTS_TOKEN", webhookToken)
	srv := testutil.StartMinIO(t)
	e := &importEnv{bucket: srv.Bucket(t), c: srv.Client(t)}
	for k, v := range seed {
		srv.Put(t, e.bucket, "in/"+k, []byte(v))
	}
	e.daemon = newDaemon(t, srv, t.TempDir())
	e.extraArgs = append([]string{"--events-listen", addr}, extra...)
	e.mount()
	out := e.ok("fsx", "create-data-repository-association", "--file-system-id", e.id,
		"--file-system-path", "/data", "--data-repository-path", "s3://"+e.bucket+"/in/",
		"--s3", "AutoImportPolicy={Events=[NEW,CHANGED,DELETED]}", "--query", "Association.AssociationId", "--output", "text")
	id := strings.TrimSpace(out)
	testutil.Eventually(t, 60*time.Second, id+" AVAILABLE", func() bool {
		return strings.TrimSpace(e.ok("fsx", "describe-data-repository-associations", "--association-ids", id,
			"--query", "Associations[0].Lifecycle", "--output", "text")) == "AVAILABLE"
	})
	_, err = e.c.S3.PutBucketNotificationConfiguration(context.Background(), &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(e.bucket),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			Id:       aws.String("ferry-" + id),
			QueueArn: aws.String("arn:minio:sqs::FERRY:webhook"),
			Events:   []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
			Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{
				Name: types.FilterRuleNamePrefix, Value: aws.String("in/"),
			}}}},
		}}},
	})
	if err != nil {
		t.Fatalf("put bucket notification: %v", err)
	}
	// The pipeline works end to end before the test begins: an object
	// put now shows in the listed /data.
	if _, err := os.ReadDir(e.path("")); err != nil {
		t.Fatal(err)
	}
	e.put("probe", "probe")
	testutil.Eventually(t, 30*time.Second, "data/probe through the mount (webhook → intake → applier)", func() bool {
		_, err := os.Lstat(e.path("probe"))
		return err == nil
	})
	return e
}

// path is name (below /data) in the mount.
func (e *importEnv) path(name string) string { return filepath.Join(e.mp, "data", name) }

func (e *importEnv) put(name, body string) { e.srv.Put(e.t, e.bucket, "in/"+name, []byte(body)) }

func (e *importEnv) del(name string) {
	e.t.Helper()
	if _, err := e.c.S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("in/" + name)}); err != nil {
		e.t.Fatal(err)
	}
}

// metric returns the value of the sample name (labels included, as
// /metrics prints them), or -1 when there is none.
func (e *importEnv) metric(name string) float64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	text, err := api.NewClient(filepath.Join(e.rt, e.id+".sock")).Metrics(ctx)
	if err != nil {
		e.t.Fatalf("metrics: %v", err)
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// readAll reads name through the mount until its data is local (the
// chunks read are marked local just after the read is served).
func (e *importEnv) readAll(name string) {
	e.t.Helper()
	if _, err := os.ReadFile(e.path(name)); err != nil {
		e.t.Fatal(err)
	}
	testutil.Eventually(e.t, 10*time.Second, "data/"+name+" local", func() bool {
		return !strings.Contains(e.ok("hsm", "state", e.path(name)), "released")
	})
}

// expectation is what a name below /data must be through the mount: gone,
// or a file of body (checked by size while waiting, so the check opens no
// file: an open file defers its change).
type expectation struct {
	gone bool
	body string
}

// unmet lists the names whose expectation does not hold yet.
func unmet(e *importEnv, want map[string]expectation) []string {
	var out []string
	for name, w := range want {
		fi, err := os.Lstat(e.path(name))
		switch {
		case w.gone && err == nil:
			out = append(out, name+" still there")
		case w.gone && !os.IsNotExist(err):
			out = append(out, fmt.Sprintf("%s: %v", name, err))
		case !w.gone && err != nil:
			out = append(out, fmt.Sprintf("%s: %v", name, err))
		case !w.gone && fi.Size() != int64(len(w.body)):
			out = append(out, fmt.Sprintf("%s: %d bytes, want %d", name, fi.Size(), len(w.body)))
		}
	}
	slices.Sort(out)
	return out
}

// TestAutoImportMinIOWebhook (issue "Auto-import", done-when): with MinIO's
// webhook target posting to `ferry mount --events-listen`, 50 mixed changes
// — new objects in listed and unlisted directories, overwrites of files
// already read, deletes — show through the mount within 5 s of the last
// one; then a file with local changes whose object changes keeps both
// sides (a conflict copy with the local content, the repository's version
// under the name), counted in /metrics and in describe.
func TestAutoImportMinIOWebhook(t *testing.T) {
	seed := map[string]string{"u/old": "unlisted", "c/doc.txt": "repo v1"}
	for i := range 20 {
		seed[fmt.Sprintf("a/f%02d", i)] = fmt.Sprintf("a%02d v1", i)
	}
	for i := range 10 {
		seed[fmt.Sprintf("b/g%02d", i)] = fmt.Sprintf("b%02d v1", i)
	}
	e := newImportEnv(t, seed)
	for _, dir := range []string{"a", "b", "c"} {
		if _, err := os.ReadDir(e.path(dir)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		e.readAll(fmt.Sprintf("a/f%02d", i))
	}

	want := map[string]expectation{}
	var changes []func()
	change := func(name string, w expectation) {
		want[name] = w
		changes = append(changes, func() {
			if w.gone {
				e.del(name)
			} else {
				e.put(name, w.body)
			}
		})
	}
	for i := range 8 { // new objects in a listed directory
		change(fmt.Sprintf("a/new%02d", i), expectation{body: fmt.Sprintf("new in a %d", i)})
	}
	change("a/deep/er/x", expectation{body: "new below a new directory"})
	change("a/deep/y", expectation{body: "new in a new directory"})
	for i := range 5 { // new objects in an unlisted directory
		change(fmt.Sprintf("u/new%02d", i), expectation{body: fmt.Sprintf("new in u %d", i)})
	}
	for i := range 5 { // new objects in a directory that did not exist
		change(fmt.Sprintf("n/new%02d", i), expectation{body: fmt.Sprintf("new in n %d", i)})
	}
	for i := range 10 { // overwrites of files already read
		change(fmt.Sprintf("a/f%02d", i), expectation{body: fmt.Sprintf("a%02d version two", i)})
	}
	for i := range 5 { // overwrites of files never read
		change(fmt.Sprintf("b/g%02d", i), expectation{body: fmt.Sprintf("b%02d version two", i)})
	}
	for i := 10; i < 20; i++ { // deletes
		change(fmt.Sprintf("a/f%02d", i), expectation{gone: true})
	}
	for i := 5; i < 10; i++ {
		change(fmt.Sprintf("b/g%02d", i), expectation{gone: true})
	}
	if len(changes) != 50 {
		t.Fatalf("%d changes, want 50", len(changes))
	}
	for _, c := range changes {
		c()
	}
	last := time.Now()
	var left []string
	for {
		if left = unmet(e, want); len(left) == 0 {
			break
		}
		if time.Since(last) > 30*time.Second {
			t.Fatalf("30 s after the last change, %d of 50 not seen through the mount:\n%s", len(left), strings.Join(left, "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(last)
	t.Logf("50 changes visible %v after the last one", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("the 50 changes showed %v after the last one, want within 5 s", took)
	}
	for name, w := range want {
		if w.gone {
			continue
		}
		if b, err := os.ReadFile(e.path(name)); err != nil || string(b) != w.body {
			t.Errorf("data/%s: %q %v, want %q", name, b, err, w.body)
		}
	}
	if n := e.metric(`ferry_events_received_total{source="minio"}`); n < 50 {
		t.Errorf("ferry_events_received_total{source=\"minio\"} = %v, want ≥ 50", n)
	}
	if n := e.metric(`ferry_import_lag_seconds_count`); n < 30 {
		t.Errorf("ferry_import_lag_seconds_count = %v, want ≥ 30 (the changes of listed directories)", n)
	}

	// A conflict: data/c/doc.txt changed locally (import only: it stays
	// dirty), then its object changes.
	if err := os.WriteFile(e.path("c/doc.txt"), []byte("local edit"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.put("c/doc.txt", "repo v2")
	var cp string
	testutil.Eventually(t, 30*time.Second, "a conflict copy of data/c/doc.txt", func() bool {
		ents, err := os.ReadDir(e.path("c"))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range ents {
			if strings.HasPrefix(de.Name(), "doc.txt.ferry-conflict-") {
				cp = de.Name()
				return true
			}
		}
		return false
	})
	if b, err := os.ReadFile(e.path("c/" + cp)); err != nil || string(b) != "local edit" {
		t.Errorf("conflict copy %s: %q %v, want the local content", cp, b, err)
	}
	testutil.Eventually(t, 10*time.Second, "the repository's version under the name", func() bool {
		b, err := os.ReadFile(e.path("c/doc.txt"))
		return err == nil && string(b) == "repo v2"
	})
	if n := e.metric(`ferry_import_conflicts_total{kind="changed"}`); n != 1 {
		t.Errorf("ferry_import_conflicts_total{kind=\"changed\"} = %v, want 1", n)
	}
	var dr api.DescribeDataRepositoryAssociationsResponse
	if err := json.Unmarshal([]byte(e.ok("fsx", "describe-data-repository-associations")), &dr); err != nil || len(dr.Associations) != 1 {
		t.Fatalf("describe: %v %+v", err, dr)
	}
	if st := dr.Associations[0].FerryStatus; st == nil || st.AutoImport == nil || st.AutoImport.Conflicts != 1 ||
		!slices.Equal(st.AutoImport.Sources, []string{api.AutoImportSourceEvents, api.AutoImportSourceSweep}) || st.AutoImport.LastEventTime == nil {
		t.Errorf("describe FerryStatus %+v, want AutoImport with the EVENTS and SWEEP (default interval) sources, 1 conflict and a last event time", st)
	}
}

// TestAutoImportKill9 (invariant: an event received is never lost): the
// daemon accepted an event (the sender got its 200, the hint is in the
// catalog) and is killed with SIGKILL before applying it — the file was
// open, which defers the change — and the restarted daemon applies it.
func TestAutoImportKill9(t *testing.T) {
	// A hint the kill caught claimed is taken back at the restart
	// (catalog ReleaseHints), not after its lease (2×--fetch-timeout +
	// 30 s, longer than the wait below).
	e := newImportEnv(t, map[string]string{"k/held.txt": "old"})
	if _, err := os.ReadDir(e.path("k")); err != nil {
		t.Fatal(err)
	}
	e.readAll("k/held.txt")
	f, err := os.Open(e.path("k/held.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	e.put("k/held.txt", "the new version")
	testutil.Eventually(t, 30*time.Second, "the event received and its application deferred", func() bool {
		return e.metric("ferry_import_events_pending") >= 1 && e.metric("ferry_import_hints_deferred_total") >= 1
	})
	if b, err := os.ReadFile(e.path("k/held.txt")); err != nil || string(b) != "old" {
		t.Fatalf("before the kill: %q %v, want the old content (the change deferred)", b, err)
	}
	e.kill9()
	f.Close()
	e.mount()
	testutil.Eventually(t, 20*time.Second, "the event applied after the restart", func() bool {
		b, err := os.ReadFile(e.path("k/held.txt"))
		return err == nil && string(b) == "the new version"
	})
	testutil.Eventually(t, 10*time.Second, "no event pending", func() bool {
		return e.metric("ferry_import_events_pending") == 0
	})
}
