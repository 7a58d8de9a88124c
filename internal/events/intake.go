package events

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// Queue is where the intake puts hints; catalog.Catalog is one.
type Queue interface {
	EnqueueHints(ctx context.Context, hints ...catalog.ImportHint) ([]catalog.HintOutcome, error)
}

// Config configures an Intake. Queue is required.
type Config struct {
	Queue Queue
	// Token, when not "", must come with every request as
	// "Authorization: Bearer TOKEN" (compared in constant time); other
	// requests get 401.
	Token string
	// Covered says whether an association covers bucket/key; hints it
	// does not cover are counted as ignored and not queued (nil: all
	// are covered).
	Covered func(bucket, key string) bool
	// AllowSubscribeURL says whether an SNS SubscribeURL may be fetched
	// to confirm a subscription (nil: AWSSubscribeURL). Tests use
	// LoopbackSubscribeURL.
	AllowSubscribeURL func(*url.URL) bool
	// Client fetches SubscribeURLs (nil: a client with a 10 s timeout that
	// follows no redirects).
	Client *http.Client
	// MaxBody is the largest request body accepted (default 1 MiB; an
	// Amazon S3 notification is at most 64 KiB); larger ones get 413.
	MaxBody int64
	// MaxInFlight bounds the requests being read, decoded or waiting for
	// their commit (default 64); beyond it requests get 503 with
	// Retry-After, and senders retry. Memory is bounded by about
	// MaxInFlight × MaxBody.
	MaxInFlight int
	// MaxBatch caps the hints of one commit (default 1024).
	MaxBatch int
	// RetryAfter is the Retry-After of a 503 (default 1 s).
	RetryAfter time.Duration
	// CommitTimeout bounds one commit (default 30 s).
	CommitTimeout time.Duration
	Logger        *slog.Logger
}

// Intake serves POST /events: it decodes S3 event notifications into
// import hints and answers 200 only once they are durably queued. It owns
// one committer goroutine, which batches the hints of the requests that
// arrive together into one EnqueueHints; Close stops it.
type Intake struct {
	cfg      Config
	log      *slog.Logger
	tokenSum [32]byte
	slots    chan struct{}

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	reqs   chan *commitReq
	done   chan struct{}

	stats   map[string]*sourceCounters // fixed keys: Sources
	unauth  atomic.Int64
	busy    atomic.Int64
	tooBig  atomic.Int64
	failed  atomic.Int64
	subOK   atomic.Int64
	subFail atomic.Int64
	subDeny atomic.Int64
}

type commitReq struct {
	hints []catalog.ImportHint
	done  chan commitResult // buffered: the committer never waits on a caller
}

type commitResult struct {
	out []catalog.HintOutcome
	err error
}

// New starts an Intake.
func New(cfg Config) (*Intake, error) {
	if cfg.Queue == nil {
		return nil, errors.New("events: Config.Queue is required")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 1024
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = 30 * time.Second
	}
	if cfg.AllowSubscribeURL == nil {
		cfg.AllowSubscribeURL = AWSSubscribeURL
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	in := &Intake{
		cfg:   cfg,
		log:   cfg.Logger,
		slots: make(chan struct{}, cfg.MaxInFlight),
		reqs:  make(chan *commitReq, cfg.MaxInFlight),
		done:  make(chan struct{}),
		stats: map[string]*sourceCounters{},
	}
	if in.log == nil {
		in.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Token != "" {
		in.tokenSum = sha256.Sum256([]byte(cfg.Token))
	}
	for _, s := range Sources {
		in.stats[s] = &sourceCounters{}
	}
	go in.committer()
	return in, nil
}

// Close stops accepting requests (they get 503), commits what was already
// handed to the committer, and stops it.
func (in *Intake) Close() error {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return nil
	}
	in.closed = true
	close(in.reqs)
	in.mu.Unlock()
	<-in.done
	return nil
}

// committer commits hints: it takes one request's hints and whatever
// other requests queued meanwhile (up to MaxBatch), in one transaction.
// With no wait added, a lone request pays one commit; under load, the
// requests that arrive while a commit runs share the next one.
func (in *Intake) committer() {
	defer close(in.done)
	for r := range in.reqs {
		batch := []*commitReq{r}
		n := len(r.hints)
	drain:
		for n < in.cfg.MaxBatch {
			select {
			case r2, ok := <-in.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r2)
				n += len(r2.hints)
			default:
				break drain
			}
		}
		all := make([]catalog.ImportHint, 0, n)
		for _, b := range batch {
			all = append(all, b.hints...)
		}
		ctx, cancel := context.WithTimeout(context.Background(), in.cfg.CommitTimeout)
		out, err := in.cfg.Queue.EnqueueHints(ctx, all...)
		cancel()
		if err == nil && len(out) != len(all) {
			err = fmt.Errorf("events: queue returned %d outcomes for %d hints", len(out), len(all))
		}
		for _, b := range batch {
			if err != nil {
				b.done <- commitResult{err: err}
				continue
			}
			b.done <- commitResult{out: out[:len(b.hints):len(b.hints)]}
			out = out[len(b.hints):]
		}
	}
}

// enqueue hands hints to the committer and waits for the commit.
func (in *Intake) enqueue(ctx context.Context, hints []catalog.ImportHint) ([]catalog.HintOutcome, error) {
	r := &commitReq{hints: hints, done: make(chan commitResult, 1)}
	in.mu.RLock()
	if in.closed {
		in.mu.RUnlock()
		return nil, errClosed
	}
	select {
	case in.reqs <- r:
	case <-ctx.Done():
		in.mu.RUnlock()
		return nil, ctx.Err()
	}
	in.mu.RUnlock()
	select {
	case res := <-r.done:
		return res.out, res.err
	case <-ctx.Done():
		return nil, ctx.Err() // not acknowledged; it may still commit (a duplicate later is harmless)
	}
}

var errClosed = errors.New("events: intake closed")

// Response is the JSON body of a 200.
type Response struct {
	Received  int // records or events in the payload
	Queued    int // hints that made a key pending
	Duplicate int // hints for keys already pending
	Ignored   int // other events, test events, keys no association covers
}

// ServeHTTP serves POST /events.
//
// The order of checks keeps a hostile sender cheap: method and path, the
// bearer token, a free slot (else 503), then the body, read up to MaxBody
// (else 413), decoded (else 400), and the hints queued durably (else 503)
// before the 200.
func (in *Intake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/events" {
		http.NotFound(w, r)
		return
	}
	if r.Method == http.MethodHead {
		// MinIO checks that a webhook endpoint answers with a HEAD.
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST, HEAD")
		httpError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if !in.authorized(r) {
		in.unauth.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry events"`)
		httpError(w, http.StatusUnauthorized, "missing or wrong bearer token")
		return
	}
	select {
	case in.slots <- struct{}{}:
		defer func() { <-in.slots }()
	default:
		in.busy.Add(1)
		in.retryLater(w, "too many requests in flight")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, in.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			in.tooBig.Add(1)
			in.stats[SourceUnknown].malformed.Add(1)
			httpError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body over %d bytes", in.cfg.MaxBody))
			return
		}
		httpError(w, http.StatusBadRequest, "reading the body: "+err.Error())
		return
	}
	p, err := Decode(body)
	body = nil
	sc := in.counters(p.Source)
	if err != nil {
		sc.malformed.Add(1)
		in.log.Debug("malformed event payload", "source", p.Source, "err", err)
		httpError(w, http.StatusBadRequest, err.Error())
		return
	}
	if p.Subscription != nil {
		in.confirm(w, r.Context(), p.Subscription)
		return
	}
	resp := Response{Received: p.Records(), Ignored: p.Ignored}
	sc.received.Add(int64(resp.Received))
	if p.Test {
		sc.tests.Add(1)
		resp.Ignored++
	}
	if p.Unsubscribed {
		resp.Ignored++
	}
	hints := p.Hints[:0]
	for _, h := range p.Hints {
		if in.cfg.Covered != nil && !in.cfg.Covered(h.Bucket, h.Key) {
			resp.Ignored++
			continue
		}
		hints = append(hints, h)
	}
	sc.ignored.Add(int64(resp.Ignored))
	if len(hints) > 0 {
		out, err := in.enqueue(r.Context(), hints)
		if err != nil {
			in.failed.Add(1)
			if !errors.Is(err, context.Canceled) {
				in.log.Warn("event hints not queued: the sender will retry", "source", p.Source, "hints", len(hints), "err", err)
			}
			in.retryLater(w, "hints not queued, try again")
			return
		}
		for _, o := range out {
			if o == catalog.HintQueued {
				resp.Queued++
			} else {
				resp.Duplicate++
			}
		}
		sc.queued.Add(int64(resp.Queued))
		sc.duplicate.Add(int64(resp.Duplicate))
	}
	writeJSON(w, http.StatusOK, resp)
}

func (in *Intake) authorized(r *http.Request) bool {
	if in.cfg.Token == "" {
		return true
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	// Hashes have one length, so the comparison time says nothing about
	// the token's.
	sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(sum[:], in.tokenSum[:]) == 1
}

func (in *Intake) retryLater(w http.ResponseWriter, msg string) {
	secs := max(int((in.cfg.RetryAfter+time.Second-1)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	httpError(w, http.StatusServiceUnavailable, msg)
}

// confirm confirms an SNS subscription by a GET of its SubscribeURL, if
// AllowSubscribeURL accepts the URL (403 otherwise: a payload must not
// make the daemon fetch any URL it names).
func (in *Intake) confirm(w http.ResponseWriter, ctx context.Context, s *Subscription) {
	if !in.cfg.AllowSubscribeURL(s.SubscribeURL) {
		in.subDeny.Add(1)
		in.log.Warn("SNS subscription not confirmed: SubscribeURL refused", "topic", s.TopicArn, "host", s.SubscribeURL.Host)
		httpError(w, http.StatusForbidden, "SubscribeURL host not allowed")
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.SubscribeURL.String(), nil)
	if err == nil {
		var resp *http.Response
		if resp, err = in.cfg.Client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				err = fmt.Errorf("GET SubscribeURL: %s", resp.Status)
			}
		}
	}
	if err != nil {
		in.subFail.Add(1)
		in.log.Warn("SNS subscription not confirmed", "topic", s.TopicArn, "err", err)
		in.retryLater(w, "subscription not confirmed")
		return
	}
	in.subOK.Add(1)
	in.log.Info("SNS subscription confirmed", "topic", s.TopicArn)
	writeJSON(w, http.StatusOK, Response{})
}

var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// AWSSubscribeURL accepts only https URLs of an SNS regional endpoint
// (sns.<region>.amazonaws.com, or .com.cn), on the default port, without
// user information: the production rule for SubscribeURL.
func AWSSubscribeURL(u *url.URL) bool {
	return u.Scheme == "https" && u.User == nil && u.Port() == "" && snsHost.MatchString(u.Hostname())
}

// LoopbackSubscribeURL accepts http(s) URLs of a loopback address (tests).
func LoopbackSubscribeURL(u *url.URL) bool {
	if u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

func httpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	fmt.Fprintln(w, msg)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
