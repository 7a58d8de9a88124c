package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

var ctx = context.Background()

func openCatalog(t *testing.T, dir string) catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(ctx, "sqlite://"+filepath.Join(dir, "catalog.db"), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newIntake(t *testing.T, cfg Config) (*Intake, *httptest.Server) {
	t.Helper()
	in, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(in)
	t.Cleanup(func() { srv.Close(); in.Close() })
	return in, srv
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// post sends body to srv's /events with token (when not "") and returns
// the status, the decoded 200 response and the response headers.
func post(t *testing.T, srv *httptest.Server, token string, body []byte) (int, Response, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/events", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r Response
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatalf("200 body %q: %v", b, err)
		}
	}
	return resp.StatusCode, r, resp.Header
}

// TestIntakeDurable: a 200 means the hint is in the catalog, and it is
// still there after the catalog is closed and opened again.
func TestIntakeDurable(t *testing.T) {
	dir := t.TempDir()
	cat := openCatalog(t, dir)
	in, srv := newIntake(t, Config{Queue: cat, Token: "s3cret"})
	code, r, _ := post(t, srv, "s3cret", fixture(t, "minio-put.json"))
	if code != 200 || r != (Response{Received: 1, Queued: 1}) {
		t.Fatalf("first delivery: %d %+v", code, r)
	}
	code, r, _ = post(t, srv, "s3cret", fixture(t, "minio-put.json")) // delivered twice
	if code != 200 || r != (Response{Received: 1, Duplicate: 1}) {
		t.Fatalf("second delivery: %d %+v", code, r)
	}
	code, r, _ = post(t, srv, "s3cret", fixture(t, "aws-sns-test-event.json"))
	if code != 200 || r != (Response{Received: 1, Ignored: 1}) {
		t.Fatalf("test event: %d %+v", code, r)
	}
	st := in.Stats()
	if m := st.BySource[SourceMinIO]; m != (SourceStats{Received: 2, Queued: 1, Duplicate: 1}) {
		t.Fatalf("minio counters %+v", m)
	}
	if s := st.BySource[SourceSNS]; s != (SourceStats{Received: 1, Ignored: 1, Tests: 1}) {
		t.Fatalf("aws-sns counters %+v", s)
	}
	srv.Close()
	in.Close()
	if err := cat.Close(); err != nil {
		t.Fatal(err)
	}
	cat = openCatalog(t, dir)
	defer cat.Close()
	hs, err := cat.ClaimHints(ctx, "importer", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 1 || hs[0].Bucket != "ferry-data" || hs[0].Key != "dir/summer 2024/a+b%.txt" || hs[0].Kind != catalog.HintCreated {
		t.Fatalf("after reopening: %+v", hs)
	}
}

// TestIntakeAuth: with a token, only requests bearing it are read.
func TestIntakeAuth(t *testing.T) {
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	in, srv := newIntake(t, Config{Queue: cat, Token: "right"})
	body := fixture(t, "aws-put.json")
	for _, tok := range []string{"", "wrong", "righ", "right2"} {
		if code, _, h := post(t, srv, tok, body); code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("token %q: %d %v", tok, code, h)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/events", bytes.NewReader(body))
	req.Header.Set("Authorization", "Basic cmlnaHQ6cmlnaHQ=")
	if resp, err := srv.Client().Do(req); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("basic auth: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if code, r, _ := post(t, srv, "right", body); code != 200 || r.Queued != 1 {
		t.Fatalf("right token: %d %+v", code, r)
	}
	if st := in.Stats(); st.Unauthorized != 5 || st.BySource[SourceAWS].Received != 1 {
		t.Fatalf("stats %+v", st)
	}
	if d, _ := cat.HintDepth(ctx); d != 1 {
		t.Fatalf("depth %d: an unauthorized request was queued", d)
	}
	// Other methods and paths.
	for _, tc := range []struct{ method, path string }{{"GET", "/events"}, {"POST", "/other"}, {"PUT", "/events"}} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %d", tc.method, tc.path, resp.StatusCode)
		}
	}
}

// TestIntakeMalformed: hostile payloads get 400 or 413 and a counter; the
// server goes on serving.
func TestIntakeMalformed(t *testing.T) {
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	in, srv := newIntake(t, Config{Queue: cat, MaxBody: 4096})
	for _, body := range []string{
		``, `null`, `{`, `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"%zz"}}}]}`,
		strings.Repeat("[", 3000), `{"Type":"Notification","Message":"{\"Records\":7}"}`,
	} {
		if code, _, _ := post(t, srv, "", []byte(body)); code != http.StatusBadRequest {
			t.Errorf("%.40q: %d, want 400", body, code)
		}
	}
	if code, _, _ := post(t, srv, "", bytes.Repeat([]byte(" "), 5000)); code != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d, want 413", code)
	}
	st := in.Stats()
	if st.BySource[SourceUnknown].Malformed != 5 || st.BySource[SourceAWS].Malformed != 1 || st.BySource[SourceSNS].Malformed != 1 || st.TooLarge != 1 {
		t.Fatalf("stats %+v", st)
	}
	if code, r, _ := post(t, srv, "", fixture(t, "ceph-put.json")); code != 200 || r.Queued != 1 {
		t.Fatalf("after the bad ones: %d %+v", code, r)
	}
}

// gate is a Queue in front of the catalog that holds commits until
// released and records each commit's size.
type gate struct {
	q       Queue
	open    chan struct{}
	entered chan int
	fail    atomic.Bool
}

func (g *gate) EnqueueHints(ctx context.Context, hs ...catalog.ImportHint) ([]catalog.HintOutcome, error) {
	g.entered <- len(hs)
	<-g.open
	if g.fail.Load() {
		return nil, errors.New("disk on fire")
	}
	return g.q.EnqueueHints(ctx, hs...)
}

func awsRecord(key string) []byte {
	return []byte(`{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","eventTime":"2026-03-01T10:00:00Z",` +
		`"s3":{"bucket":{"name":"b"},"object":{"key":"` + key + `","size":1,"sequencer":"01"}}}]}`)
}

// TestIntakeFloodAndBatching: beyond MaxInFlight requests get 503 with
// Retry-After; the requests waiting while a commit runs share the next
// one; nobody gets a 200 before the commit.
func TestIntakeFloodAndBatching(t *testing.T) {
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	g := &gate{q: cat, open: make(chan struct{}), entered: make(chan int, 100)}
	const inFlight = 8
	in, srv := newIntake(t, Config{Queue: g, MaxInFlight: inFlight, RetryAfter: 2 * time.Second})
	var wg sync.WaitGroup
	codes := make(chan int, inFlight)
	for i := range inFlight {
		wg.Go(func() {
			code, _, _ := post(t, srv, "", awsRecord(fmt.Sprintf("k%d", i)))
			codes <- code
		})
		if i == 0 {
			<-g.entered // the first commit is held: the others queue behind it
		}
	}
	// Once every request holds a slot, one more is turned away at once.
	deadline := time.Now().Add(30 * time.Second)
	for len(in.slots) < inFlight {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d requests in flight after 30 s", len(in.slots), inFlight)
		}
		time.Sleep(5 * time.Millisecond)
	}
	code, _, h := post(t, srv, "", awsRecord("extra"))
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") != "2" {
		t.Fatalf("request beyond MaxInFlight: %d, Retry-After %q; want 503, 2", code, h.Get("Retry-After"))
	}
	select {
	case c := <-codes:
		t.Fatalf("a request was answered %d before its commit", c)
	default:
	}
	close(g.open)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("status %d after the commit", c)
		}
	}
	commits := 1
	for len(g.entered) > 0 {
		<-g.entered
		commits++
	}
	if st := in.Stats(); st.Busy < 1 {
		t.Fatalf("busy counter %d", st.Busy)
	}
	d, _ := cat.HintDepth(ctx)
	t.Logf("%d requests queued %d hints in %d commits", inFlight, d, commits)
	if d < inFlight || commits >= int(d) {
		t.Fatalf("%d hints in %d commits: requests waiting together were not batched", d, commits)
	}
}

// TestIntakeQueueFailure: when hints cannot be queued, the sender gets 503
// and retries; nothing is acknowledged.
func TestIntakeQueueFailure(t *testing.T) {
	cat := openCatalog(t, t.TempDir())
	g := &gate{q: cat, open: make(chan struct{}), entered: make(chan int, 10)}
	close(g.open)
	g.fail.Store(true)
	in, srv := newIntake(t, Config{Queue: g})
	if code, _, h := post(t, srv, "", awsRecord("k")); code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("failing queue: %d", code)
	}
	g.fail.Store(false)
	cat.Close() // a closed catalog fails too
	if code, _, _ := post(t, srv, "", awsRecord("k")); code != http.StatusServiceUnavailable {
		t.Fatalf("closed catalog: %d", code)
	}
	if st := in.Stats(); st.QueueFailed != 2 || st.BySource[SourceAWS].Queued != 0 {
		t.Fatalf("stats %+v", st)
	}
	in.Close()
	if code, _, _ := post(t, srv, "", awsRecord("k")); code != http.StatusServiceUnavailable {
		t.Fatalf("closed intake: %d", code)
	}
}

// TestIntakeCovered: hints no association covers are ignored.
func TestIntakeCovered(t *testing.T) {
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	in, srv := newIntake(t, Config{Queue: cat, Covered: func(bucket, key string) bool { return strings.HasPrefix(key, "in/") }})
	if code, r, _ := post(t, srv, "", awsRecord("in%2Fa")); code != 200 || r.Queued != 1 {
		t.Fatalf("covered: %d %+v", code, r)
	}
	if code, r, _ := post(t, srv, "", awsRecord("out%2Fa")); code != 200 || r != (Response{Received: 1, Ignored: 1}) {
		t.Fatalf("not covered: %d %+v", code, r)
	}
	if s := in.Stats().BySource[SourceAWS]; s.Ignored != 1 || s.Queued != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestSNSSubscription: a SubscriptionConfirmation is confirmed by a GET of
// its SubscribeURL only when the URL is allowed.
func TestSNSSubscription(t *testing.T) {
	var gets atomic.Int32
	sns := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("Action") == "ConfirmSubscription" && r.URL.Query().Get("Token") == "tok" {
			gets.Add(1)
			fmt.Fprint(w, "<ConfirmSubscriptionResponse/>")
			return
		}
		http.Error(w, "bad", http.StatusBadRequest)
	}))
	defer sns.Close()
	msg := func(u string) []byte {
		b, _ := json.Marshal(map[string]string{"Type": "SubscriptionConfirmation", "TopicArn": "arn:aws:sns:us-west-2:123456789012:t",
			"Token": "tok", "SubscribeURL": u})
		return b
	}
	cat := openCatalog(t, t.TempDir())
	defer cat.Close()
	// Production rule: a loopback URL is refused, nothing is fetched.
	in, srv := newIntake(t, Config{Queue: cat})
	if code, _, _ := post(t, srv, "", msg(sns.URL+"/?Action=ConfirmSubscription&Token=tok")); code != http.StatusForbidden || gets.Load() != 0 {
		t.Fatalf("production rule: %d, %d GETs", code, gets.Load())
	}
	if in.Stats().SubscriptionsRefused != 1 {
		t.Fatalf("stats %+v", in.Stats())
	}
	in2, srv2 := newIntake(t, Config{Queue: cat, AllowSubscribeURL: LoopbackSubscribeURL})
	if code, _, _ := post(t, srv2, "", msg(sns.URL+"/?Action=ConfirmSubscription&Token=tok")); code != 200 || gets.Load() != 1 {
		t.Fatalf("loopback rule: %d, %d GETs", code, gets.Load())
	}
	if code, _, _ := post(t, srv2, "", msg(sns.URL+"/?Action=ConfirmSubscription&Token=other")); code != http.StatusServiceUnavailable {
		t.Fatalf("failed confirmation: %d", code)
	}
	if st := in2.Stats(); st.SubscriptionsConfirmed != 1 || st.SubscriptionsFailed != 1 {
		t.Fatalf("stats %+v", st)
	}
	for _, tc := range []struct {
		u    string
		want bool
	}{
		{"https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription", true},
		{"https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription", true},
		{"http://sns.us-west-2.amazonaws.com/", false},
		{"https://sns.us-west-2.amazonaws.com.evil.example/", false},
		{"https://evil.example/sns.us-west-2.amazonaws.com", false},
		{"https://sns.us-west-2.amazonaws.com:8443/", false},
		{"https://user@sns.us-west-2.amazonaws.com/", false},
		{"https://127.0.0.1/", false},
	} {
		p, err := Decode(msg(tc.u))
		if err != nil {
			t.Fatal(err)
		}
		if got := AWSSubscribeURL(p.Subscription.SubscribeURL); got != tc.want {
			t.Errorf("AWSSubscribeURL(%s) = %v", tc.u, got)
		}
	}
}
