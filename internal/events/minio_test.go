package events

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestMinIOWebhook runs a real MinIO whose webhook target (configured by
// its MINIO_NOTIFY_WEBHOOK_* environment variables, with an auth token)
// posts to the intake: keys with spaces, '+', '%' and '/' arrive decoded
// exactly once, and a delete arrives as REMOVED.
func TestMinIOWebhook(t *testing.T) {
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	in, err := New(Config{Queue: cat, Token: "webhook-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: in, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	defer srv.Close()

	// The server inherits the test's environment (testutil starts it with
	// os.Environ()).
	t.Setenv("MINIO_NOTIFY_WEBHOOK_ENABLE_FERRY", "on")
	t.Setenv("MINIO_NOTIFY_WEBHOOK_ENDPOINT_FERRY", "http://"+l.Addr().String()+"/events")
	t.Setenv("MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FERRY", "webhook-token")
	m := testutil.StartMinIO(t)
	bucket := m.Bucket(t)
	c := m.Client(t)
	_, err = c.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{
		Bucket: aws.String(bucket),
		NotificationConfiguration: &types.NotificationConfiguration{QueueConfigurations: []types.QueueConfiguration{{
			QueueArn: aws.String("arn:minio:sqs::FERRY:webhook"),
			Events:   []types.Event{"s3:ObjectCreated:*", "s3:ObjectRemoved:*"},
		}}},
	})
	if err != nil {
		t.Fatalf("put bucket notification: %v", err)
	}
	keys := []string{"dir/summer 2024/a+b%.txt", "plain", "é/ü/%2F literal"}
	for _, k := range keys {
		m.Put(t, bucket, k, []byte("x"))
	}
	if _, err := c.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("plain")}); err != nil {
		t.Fatal(err)
	}
	want := map[string]catalog.HintKind{keys[0]: catalog.HintCreated, keys[1]: catalog.HintRemoved, keys[2]: catalog.HintCreated}
	got := map[string]catalog.HintKind{}
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < len(want) || got["plain"] != catalog.HintRemoved {
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s: hints %v, want %v (stats %+v)", got, want, in.Stats())
		}
		hs, err := cat.ClaimHints(context.Background(), "test", 100, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.Bucket != bucket || h.Source != SourceMinIO {
				t.Fatalf("hint %+v", h)
			}
			got[h.Key] = h.Kind
			if _, err := cat.CompleteHint(ctx, h); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for k, kind := range want {
		if got[k] != kind {
			t.Errorf("key %q: %q, want %q (all: %v)", k, got[k], kind, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("hints for %v, want only %v: a key was decoded wrongly", got, want)
	}
	st := in.Stats()
	if st.Unauthorized != 0 || st.BySource[SourceMinIO].Malformed != 0 {
		t.Fatalf("stats %+v", st)
	}
}
