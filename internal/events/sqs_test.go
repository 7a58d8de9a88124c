package events

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// logBuf collects a logger's output for tests.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// sqsEnv points the AWS configuration chain at g (the poller reads
// AWS_ENDPOINT_URL_SQS and FERRY_SQS_PROTOCOL from there) and away from
// any real account.
func sqsEnv(t *testing.T, g *testutil.GoAWS) {
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_PROFILE", "")
	for _, kv := range g.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// startPoller runs a poller until the test ends (or stop is called) and
// returns it with its log.
func startPoller(t *testing.T, cfg SQSConfig) (p *SQSPoller, log *logBuf, stop func() time.Duration) {
	t.Helper()
	log = &logBuf{}
	cfg.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p, err := NewSQSPoller(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	var once sync.Once
	var took time.Duration
	stop = func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("Run did not return 10 s after its context ended")
			}
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return p, log, stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func pendingHints(t *testing.T, cat catalog.Catalog) []catalog.QueuedHint {
	t.Helper()
	hs, err := cat.ClaimHints(ctx, "test", 100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return hs
}

// TestSQSPoller: a real SQS-compatible server (goaws) holds S3 records
// bare and in an SNS envelope, an EventBridge event, s3:TestEvents, an
// event about tags and a malformed body; the poller queues the three
// hints in a real catalog, counts everything under "sqs", and deletes
// every message.
func TestSQSPoller(t *testing.T) {
	g := testutil.StartGoAWS(t, 30, "events")
	sqsEnv(t, g)
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	in, _ := newIntake(t, Config{Queue: cat})
	for _, f := range []string{"aws-put.json", "aws-sns-notification.json", "eventbridge-created.json",
		"aws-test-event.json", "aws-sns-test-event.json", "eventbridge-tags.json"} {
		g.Send(t, "events", string(fixture(t, f)))
	}
	badID := g.Send(t, "events", `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`)
	p, log, _ := startPoller(t, SQSConfig{QueueURL: g.QueueURL("events"), Intake: in})
	waitFor(t, "every message deleted", func() bool { return p.Stats().Deleted == 7 })
	if d := g.Depth(t, "events"); d != 0 {
		t.Fatalf("%d messages left in the queue", d)
	}
	var got []string
	for _, h := range pendingHints(t, cat) {
		if h.Source != SourceSQS {
			t.Errorf("hint %s/%s: source %q, want %q", h.Bucket, h.Key, h.Source, SourceSQS)
		}
		got = append(got, string(h.Kind)+" "+h.Bucket+"/"+h.Key)
	}
	slices.Sort(got)
	want := []string{
		string(catalog.HintCreated) + " amzn-s3-demo-bucket/dir/red flower%20(raw).jpg",
		string(catalog.HintCreated) + " amzn-s3-demo-bucket/dir/red flower(copy)é.jpg",
		string(catalog.HintRemoved) + " amzn-s3-demo-bucket/dir/a+b c.txt",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("queued hints\n%q\nwant\n%q", got, want)
	}
	st := in.Stats().BySource[SourceSQS]
	if (st != SourceStats{Received: 6, Queued: 3, Ignored: 3, Tests: 2, Malformed: 1}) {
		t.Fatalf("sqs counters %+v", st)
	}
	if ps := p.Stats(); ps.Messages != 7 || ps.Retained != 0 || ps.ReceiveErrors != 0 || ps.DeleteErrors != 0 {
		t.Fatalf("poller counters %+v", ps)
	}
	if l := log.String(); !strings.Contains(l, "malformed SQS message deleted") || !strings.Contains(l, badID) {
		t.Fatalf("the malformed message is not logged with its MessageId %s:\n%s", badID, l)
	}
}

// failQueue fails every commit while fail is set, then passes them on.
type failQueue struct {
	q     Queue
	fail  atomic.Bool
	tries atomic.Int64
}

func (f *failQueue) EnqueueHints(ctx context.Context, hs ...catalog.ImportHint) ([]catalog.HintOutcome, error) {
	f.tries.Add(1)
	if f.fail.Load() {
		return nil, errors.New("injected: disk on fire")
	}
	return f.q.EnqueueHints(ctx, hs...)
}

// TestSQSPollerQueueFailure: a message whose hints cannot be queued stays
// in the queue and is received again after the visibility timeout; once
// the catalog works, it is queued and deleted. A test event received
// meanwhile is deleted at once.
func TestSQSPollerQueueFailure(t *testing.T) {
	g := testutil.StartGoAWS(t, 1, "events")
	sqsEnv(t, g)
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	fq := &failQueue{q: cat}
	fq.fail.Store(true)
	in, _ := newIntake(t, Config{Queue: fq})
	g.Send(t, "events", string(awsRecord("k1")))
	g.Send(t, "events", string(fixture(t, "aws-test-event.json")))
	p, log, _ := startPoller(t, SQSConfig{QueueURL: g.QueueURL("events"), Intake: in, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	waitFor(t, "the message received again after a failed commit", func() bool { return p.Stats().Retained >= 2 })
	if ps := p.Stats(); ps.Deleted != 1 {
		t.Fatalf("while commits fail: %+v; want only the test event deleted", ps)
	}
	if d := g.Depth(t, "events"); d != 1 {
		t.Fatalf("while commits fail the queue holds %d messages, want 1", d)
	}
	if n := len(pendingHints(t, cat)); n != 0 {
		t.Fatalf("%d hints queued while commits fail", n)
	}
	if !strings.Contains(log.String(), "kept in the queue") {
		t.Fatalf("the failed commit is not logged:\n%s", log.String())
	}
	fq.fail.Store(false)
	waitFor(t, "the message deleted once the catalog works", func() bool { return p.Stats().Deleted == 2 })
	if d := g.Depth(t, "events"); d != 0 {
		t.Fatalf("%d messages left", d)
	}
	if hs := pendingHints(t, cat); len(hs) != 1 || hs[0].Key != "k1" {
		t.Fatalf("hints %+v, want k1", hs)
	}
	if st := in.Stats(); st.QueueFailed < 2 || st.BySource[SourceSQS].Queued != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSQSPollerStops: Run returns within a second of its context ending,
// whether it is in a 20 s long poll or backing off after errors; the
// errors are logged naming the queue and the fix.
func TestSQSPollerStops(t *testing.T) {
	g := testutil.StartGoAWS(t, 30, "events")
	sqsEnv(t, g)
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	in, _ := newIntake(t, Config{Queue: cat})

	_, _, stop := startPoller(t, SQSConfig{QueueURL: g.QueueURL("events"), Intake: in})
	time.Sleep(500 * time.Millisecond) // in the long poll
	if took := stop(); took > time.Second {
		t.Fatalf("Run took %v to stop in a long poll", took)
	}

	missing := g.QueueURL("no-such-queue")
	p, log, stop := startPoller(t, SQSConfig{QueueURL: missing, Intake: in, MinBackoff: time.Minute})
	waitFor(t, "a receive error", func() bool { return p.Stats().ReceiveErrors > 0 })
	if took := stop(); took > time.Second {
		t.Fatalf("Run took %v to stop in a backoff", took)
	}
	if l := log.String(); !strings.Contains(l, missing) || !strings.Contains(l, "get-queue-url") {
		t.Fatalf("the receive error does not name the queue and the fix:\n%s", l)
	}

	// The JSON protocol against a query-only server: the fix says so.
	t.Setenv("FERRY_SQS_PROTOCOL", "")
	p, log, stop = startPoller(t, SQSConfig{QueueURL: g.QueueURL("events"), Intake: in, MinBackoff: time.Minute})
	waitFor(t, "a receive error", func() bool { return p.Stats().ReceiveErrors > 0 })
	stop()
	if l := log.String(); !strings.Contains(l, "FERRY_SQS_PROTOCOL=query") {
		t.Fatalf("a protocol mismatch is not explained:\n%s", l)
	}
}

// TestSQSConfig: bad queue URLs and protocols are refused naming the fix;
// an Amazon queue URL names the region, another server's URL the endpoint.
func TestSQSConfig(t *testing.T) {
	for _, k := range []string{"AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "FERRY_SQS_PROTOCOL"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
	in, err := New(Config{Queue: &failQueue{}})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	for _, bad := range []string{"", "ferry-events", "sqs.us-east-1.amazonaws.com/1/q", "https://sqs.us-east-1.amazonaws.com/q",
		"ftp://h/1/q", "https://sqs.us-east-1.amazonaws.com/1/q/x"} {
		if _, err := NewSQSPoller(SQSConfig{QueueURL: bad, Intake: in}); err == nil || !strings.Contains(err.Error(), "get-queue-url") {
			t.Errorf("queue URL %q: %v", bad, err)
		}
	}
	if _, err := NewSQSPoller(SQSConfig{QueueURL: "https://sqs.us-east-1.amazonaws.com/1/q", Intake: in, Protocol: "xml"}); err == nil ||
		!strings.Contains(err.Error(), "want json") {
		t.Errorf("protocol xml: %v", err)
	}
	if _, err := NewSQSPoller(SQSConfig{QueueURL: "https://sqs.us-east-1.amazonaws.com/1/q"}); err == nil {
		t.Error("no Intake: no error")
	}
	for _, tc := range []struct{ url, region, endpoint, cfgRegion string }{
		{"https://sqs.eu-west-3.amazonaws.com/123456789012/q", "eu-west-3", "Amazon SQS (eu-west-3)", ""},
		{"https://eu-west-3.queue.amazonaws.com/123456789012/q", "eu-west-3", "Amazon SQS (eu-west-3)", ""},
		{"https://sqs.eu-west-3.amazonaws.com/123456789012/q", "us-west-2", "Amazon SQS (us-west-2)", "us-west-2"},
		{"http://127.0.0.1:9324/000000000000/q", "us-east-1", "http://127.0.0.1:9324", ""},
	} {
		p, err := NewSQSPoller(SQSConfig{QueueURL: tc.url, Intake: in, Region: tc.cfgRegion})
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		if p.region != tc.region || p.endpoint != tc.endpoint {
			t.Errorf("%s: region %q endpoint %q, want %q %q", tc.url, p.region, p.endpoint, tc.region, tc.endpoint)
		}
	}
}
