package associations

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// webhookARN is the ARN of the webhook target startWebhookMinIO configures.
const webhookARN = "arn:minio:sqs::FERRY:webhook"

// webhook is a loopback HTTP endpoint for MinIO's webhook target: it keeps
// the keys of the events it is sent.
type webhook struct {
	mu   sync.Mutex
	keys []string
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var ev struct {
		Records []struct {
			S3 struct {
				Object struct{ Key string } `json:"object"`
			} `json:"s3"`
		}
	}
	body, _ := io.ReadAll(r.Body)
	if json.Unmarshal(body, &ev) == nil {
		h.mu.Lock()
		for _, rec := range ev.Records {
			k, _ := url.QueryUnescape(rec.S3.Object.Key)
			h.keys = append(h.keys, k)
		}
		h.mu.Unlock()
	}
}

func (h *webhook) got(key string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.keys, key)
}

// startWebhookMinIO starts a MinIO of the test's own with a webhook target
// FERRY (webhookARN), configured by MinIO's environment variables, that
// posts to a loopback endpoint.
func startWebhookMinIO(t *testing.T) (*testutil.MinIO, *webhook) {
	t.Helper()
	h := &webhook{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	srv := testutil.StartMinIOEnv(t, "MINIO_NOTIFY_WEBHOOK_ENABLE_FERRY=on",
		"MINIO_NOTIFY_WEBHOOK_ENDPOINT_FERRY=http://"+l.Addr().String()+"/events")
	return srv, h
}

// startWorker runs a worker for file system fs-0123456789abcdef0 with a
// catalog and store of its own, S3 client c and target ARN arn, which
// checks AVAILABLE associations every 200 ms.
func startWorker(t *testing.T, c *s3x.Client, arn string) *Worker {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.Open(context.Background(), "", catalog.Options{StoreRoot: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	m := New(Config{FileSystemId: "fs-0123456789abcdef0", Catalog: cat, Store: st, S3: c, Importer: &recordingImporter{},
		RecheckInterval: time.Second, AvailableCheckInterval: 200 * time.Millisecond, EventsTargetARN: arn})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); m.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

func createAssoc(t *testing.T, m *Worker, path, repo string, s3cfg *api.S3DataRepositoryConfiguration) string {
	t.Helper()
	r, err := m.Create(context.Background(), api.CreateDataRepositoryAssociationRequest{FileSystemId: m.fsID, FileSystemPath: path, DataRepositoryPath: repo, S3: s3cfg})
	if err != nil {
		t.Fatal(err)
	}
	return r.Association.AssociationId
}

func waitLifecycle(t *testing.T, m *Worker, id string, want api.DataRepositoryLifecycle) api.DataRepositoryAssociation {
	t.Helper()
	var a api.DataRepositoryAssociation
	testutil.Eventually(t, 30*time.Second, fmt.Sprintf("%s %s", id, want), func() bool {
		a = describeOne(t, m, id)
		return a.Lifecycle == want
	})
	return a
}

func importPolicy(ev ...api.EventType) *api.S3DataRepositoryConfiguration {
	return &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{Events: ev}}
}

// bucketNotifications reads the bucket's queue configurations by Id.
func bucketNotifications(t *testing.T, c *s3x.Client, bucket string) map[string]notification {
	t.Helper()
	out, err := c.S3.GetBucketNotificationConfiguration(context.Background(), &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]notification{}
	for _, q := range out.QueueConfigurations {
		n := entryOf(q.Id, q.QueueArn, false, q.Events, q.Filter)
		if _, dup := got[n.id]; dup {
			t.Fatalf("two configurations with Id %q", n.id)
		}
		got[n.id] = n
	}
	return got
}

func putNotifications(t *testing.T, c *s3x.Client, bucket string, qs ...types.QueueConfiguration) {
	t.Helper()
	_, err := c.S3.PutBucketNotificationConfiguration(context.Background(), &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket), NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: qs}})
	if err != nil {
		t.Fatal(err)
	}
}

// foreign is a configuration of another tool on the bucket.
var foreign = types.QueueConfiguration{Id: aws.String("someone-else"), QueueArn: aws.String(webhookARN), Events: []types.Event{"s3:ObjectRemoved:*"},
	Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: "prefix", Value: aws.String("elsewhere/")}}}}}

// With --events-target-arn, each auto-import association gets its own
// notification configuration (our Id, its prefix, its policy's events) on
// a real MinIO whose webhook target then sends its events; a foreign
// configuration is kept; ours deleted behind ferry's back comes back at
// the next repository check; an update that drops the policy and a delete
// remove ours only.
func TestNotificationLifecycle(t *testing.T) {
	srv, hook := startWebhookMinIO(t)
	c := srv.Client(t)
	bucket := srv.Bucket(t)
	putNotifications(t, c, bucket, foreign)
	m := startWorker(t, c, webhookARN)
	a := createAssoc(t, m, "/a", "s3://"+bucket+"/a", importPolicy(api.EventNew, api.EventChanged, api.EventDeleted))
	b := createAssoc(t, m, "/b", "s3://"+bucket+"/b", importPolicy(api.EventDeleted))
	plain := createAssoc(t, m, "/c", "s3://"+bucket+"/c", nil)
	for _, id := range []string{a, b, plain} {
		waitLifecycle(t, m, id, api.LifecycleAvailable)
	}
	idA, idB := NotificationID(m.fsID, a), NotificationID(m.fsID, b)
	if idA != "ferry-fs-0123456789abcdef0-"+a {
		t.Errorf("Id %q", idA)
	}
	wantA := notification{id: idA, arn: webhookARN, prefix: "a/", events: []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}}
	wantB := notification{id: idB, arn: webhookARN, prefix: "b/", events: []types.Event{"s3:ObjectRemoved:*"}}
	wantF := entryOf(foreign.Id, foreign.QueueArn, false, foreign.Events, foreign.Filter)
	check := func(what string, want ...notification) {
		t.Helper()
		got := bucketNotifications(t, c, bucket)
		if len(got) != len(want) {
			t.Errorf("%s: %d configurations %+v, want %+v", what, len(got), got, want)
		}
		for _, w := range want {
			if g, ok := got[w.id]; !ok || !w.same(g) {
				t.Errorf("%s: configuration %s is %+v, want %+v", what, w.id, g, w)
			}
		}
	}
	check("after create", wantF, wantA, wantB)

	// The configuration works: MinIO sends a's events to the target.
	srv.Put(t, bucket, "a/new file", []byte("x"))
	testutil.Eventually(t, 30*time.Second, "the webhook gets the event of a/new file", func() bool { return hook.got("a/new file") })

	// Removed behind ferry's back: put again at the next check.
	putNotifications(t, c, bucket, foreign)
	testutil.Eventually(t, 30*time.Second, "configurations restored", func() bool {
		return len(bucketNotifications(t, c, bucket)) == 3
	})
	check("after the repository check", wantF, wantA, wantB)
	if got := describeOne(t, m, a); got.Lifecycle != api.LifecycleAvailable {
		t.Errorf("a is %s after the restore", got.Lifecycle)
	}

	// An update that drops b's policy removes b's configuration.
	if _, err := m.Update(context.Background(), api.UpdateDataRepositoryAssociationRequest{AssociationId: b, S3: &api.S3DataRepositoryConfiguration{}}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "b's configuration removed", func() bool {
		_, ok := bucketNotifications(t, c, bucket)[idB]
		return !ok && describeOne(t, m, b).Lifecycle == api.LifecycleAvailable
	})
	check("after the update", wantF, wantA)

	// Deleting a removes a's configuration only.
	if _, err := m.Delete(context.Background(), api.DeleteDataRepositoryAssociationRequest{AssociationId: a}); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "a deleted", func() bool {
		_, err := m.Describe(context.Background(), api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{a}})
		return api.IsCode(err, api.CodeDataRepositoryAssociationNotFound)
	})
	check("after the delete", wantF)
}

// Without --events-target-arn ferry leaves bucket notifications alone.
func TestNotificationOff(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	c := srv.Client(t)
	bucket := srv.Bucket(t)
	m := startWorker(t, c, "")
	a := createAssoc(t, m, "/a", "s3://"+bucket+"/a", importPolicy(api.EventNew))
	waitLifecycle(t, m, a, api.LifecycleAvailable)
	if got := bucketNotifications(t, c, bucket); len(got) != 0 {
		t.Errorf("configurations %+v without a target ARN", got)
	}
}

// A target the server does not know makes the association MISCONFIGURED,
// the message naming the ARN, the flag and the server's refusal; an
// association without an AutoImportPolicy is not affected.
func TestNotificationUnknownTarget(t *testing.T) {
	srv, _ := startWebhookMinIO(t)
	c := srv.Client(t)
	bucket := srv.Bucket(t)
	putNotifications(t, c, bucket, foreign)
	const bad = "arn:minio:sqs::NOSUCH:webhook"
	m := startWorker(t, c, bad)
	a := createAssoc(t, m, "/a", "s3://"+bucket+"/a", importPolicy(api.EventNew, api.EventChanged, api.EventDeleted))
	plain := createAssoc(t, m, "/c", "s3://"+bucket+"/c", nil)
	got := waitLifecycle(t, m, a, api.LifecycleMisconfigured)
	msg := got.FailureDetails.Message
	for _, want := range []string{bucket, "--events-target-arn", bad, "arn:minio:sqs::ID:webhook", "InvalidArgument"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	waitLifecycle(t, m, plain, api.LifecycleAvailable)
	if got := bucketNotifications(t, c, bucket); len(got) != 1 || got["someone-else"].id == "" {
		t.Errorf("configurations %+v, want the foreign one only", got)
	}
}

// deniedClient returns an S3 client for srv whose credentials may do
// anything except put bucket notifications: temporary credentials from
// MinIO's STS AssumeRole with an inline session policy that denies
// s3:PutBucketNotification (a real denial by the server, no admin API
// needed).
func deniedClient(t *testing.T, srv *testutil.MinIO) *s3x.Client {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(testutil.AccessKey, testutil.SecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	sc := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(srv.Endpoint) })
	policy := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*"],"Resource":["arn:aws:s3:::*"]},` +
		`{"Effect":"Deny","Action":["s3:PutBucketNotification"],"Resource":["arn:aws:s3:::*"]}]}`
	out, err := sc.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:minio:iam:::role/ferry-test"),
		RoleSessionName: aws.String("ferry-test"), Policy: aws.String(policy), DurationSeconds: aws.Int32(3600)})
	if err != nil {
		t.Fatalf("MinIO AssumeRole: %v", err)
	}
	cr := out.Credentials
	cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken))
	return &s3x.Client{Endpoint: srv.Endpoint, Region: "us-east-1", S3: s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(srv.Endpoint)
		o.UsePathStyle = true
	})}
}

// Credentials denied s3:PutBucketNotification make the association
// MISCONFIGURED with the permission and the fix named; once the
// configuration is in place (put by someone allowed to), the next check
// finds it and the association becomes AVAILABLE.
func TestNotificationDenied(t *testing.T) {
	srv, _ := startWebhookMinIO(t)
	bucket := srv.Bucket(t)
	dc := deniedClient(t, srv)
	m := startWorker(t, dc, webhookARN)
	a := createAssoc(t, m, "/a", "s3://"+bucket+"/a", importPolicy(api.EventNew))
	got := waitLifecycle(t, m, a, api.LifecycleMisconfigured)
	msg := got.FailureDetails.Message
	for _, want := range []string{bucket, "access denied", "s3:PutBucketNotification", "--events-target-arn"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	// An administrator puts ferry's configuration by hand: the re-check
	// of the MISCONFIGURED association finds it as wanted.
	putNotifications(t, srv.Client(t), bucket, types.QueueConfiguration{Id: aws.String(NotificationID(m.fsID, a)), QueueArn: aws.String(webhookARN),
		Events: []types.Event{"s3:ObjectCreated:*"}, Filter: &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: "prefix", Value: aws.String("a/")}}}}})
	waitLifecycle(t, m, a, api.LifecycleAvailable)
}

func TestParseTargetARN(t *testing.T) {
	for _, ok := range []string{webhookARN, "arn:aws:sqs:us-east-1:123456789012:ferry-events", "arn:aws:sns:eu-west-1:123456789012:topic", "arn:aws:sns:default::ceph-topic"} {
		if err := ParseTargetARN(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "sqs", "arn:aws:s3:::bucket", "arn:aws:sqs:us-east-1:123", "arn:aws:lambda:us-east-1:1:function:f", "arn:aws:sqs:r:1:", "arn:aws:sqs:r:1:q q"} {
		if err := ParseTargetARN(bad); err == nil || !strings.Contains(err.Error(), "--events-target-arn") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
