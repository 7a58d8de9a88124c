package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/schemas"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// SQS protocols (SQSConfig.Protocol).
const (
	SQSProtocolJSON  = "json"  // AWS JSON 1.0: Amazon SQS, today's SDKs
	SQSProtocolQuery = "query" // the older form-encoded protocol: goaws, older ElasticMQ
)

// SQSConfig configures an SQSPoller. QueueURL and Intake are required.
type SQSConfig struct {
	// QueueURL is the queue's URL, as `aws sqs get-queue-url` prints it:
	// https://sqs.REGION.amazonaws.com/ACCOUNT/NAME.
	QueueURL string
	// Intake queues the hints (its Queue, through its committer, filtered
	// by its Covered) and counts them in its Stats under SourceSQS, with
	// messages whose hints could not be queued in QueueFailed. The poller
	// must stop before the Intake is closed.
	Intake *Intake
	// Profile, Region and EndpointURL select the account, region and
	// endpoint as for S3 (s3x.Config); empty fields fall back to the
	// standard chain. Without a region, an Amazon SQS queue URL names it.
	// Without an endpoint (EndpointURL, AWS_ENDPOINT_URL_SQS,
	// AWS_ENDPOINT_URL, the profile's endpoint_url), a queue URL that is
	// not Amazon's names it.
	Profile, Region, EndpointURL string
	// Protocol is SQSProtocolJSON or SQSProtocolQuery ("": the
	// FERRY_SQS_PROTOCOL environment variable, else JSON).
	Protocol string
	// WaitTime is the long-poll wait of a receive (default 20 s, SQS's
	// maximum); MaxMessages the most messages one receive returns
	// (default 10, SQS's maximum). Memory is bounded by MaxMessages
	// messages (at most 1 MiB each) and their hints.
	WaitTime    time.Duration
	MaxMessages int
	// MinBackoff and MaxBackoff bound the wait after a failed receive or
	// a failed commit, doubling from one to the other (defaults 1 s, 1 min).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// SQSPoller long-polls an SQS queue for S3 event notifications (the
// shapes Decode reads: S3 records, bare or in an SNS envelope, EventBridge
// events, s3:TestEvent) and deletes a message only once its hints are
// durably queued: the queue holds a message until ferry has it, so
// delivery stays at-least-once across a crash.
//
// A message that cannot be decoded is logged with its MessageId, counted
// as malformed and deleted: decoding is deterministic, so receiving it
// again would fail again, and ferry does not rely on the queue having a
// redrive policy to stop a poison message. (The periodic sweep and import
// tasks reconcile whatever such a message was about.) A message whose
// hints could not be queued is not deleted: the queue makes it visible
// again after its visibility timeout, and the poller backs off meanwhile.
type SQSPoller struct {
	cfg      SQSConfig
	in       *Intake
	log      *slog.Logger
	client   *sqs.Client
	endpoint string // what messages name
	region   string

	messages, deleted, retained, receiveErrs, deleteErrs atomic.Int64
}

// SQSStats are the poller's own counters; the events' counters are the
// Intake's, under SourceSQS.
type SQSStats struct {
	// Messages received (a message received again counts again).
	Messages int64
	// Deleted: messages deleted after their hints were queued, or because
	// they hold none (test events, other events, malformed messages).
	Deleted int64
	// Retained: messages left in the queue because their hints could not
	// be queued; they come back after the queue's visibility timeout.
	Retained int64
	// ReceiveErrors and DeleteErrors: failed ReceiveMessage and
	// DeleteMessageBatch calls (or entries).
	ReceiveErrors, DeleteErrors int64
}

// NewSQSPoller checks cfg and builds the SQS client; it does not contact
// the queue (Run does).
func NewSQSPoller(cfg SQSConfig) (*SQSPoller, error) {
	if cfg.Intake == nil {
		return nil, errors.New("events: SQSConfig.Intake is required")
	}
	u, err := checkQueueURL(cfg.QueueURL)
	if err != nil {
		return nil, err
	}
	if cfg.Protocol == "" {
		cfg.Protocol = os.Getenv("FERRY_SQS_PROTOCOL")
	}
	switch cfg.Protocol {
	case "":
		cfg.Protocol = SQSProtocolJSON
	case SQSProtocolJSON, SQSProtocolQuery:
	default:
		return nil, fmt.Errorf("SQS protocol %q (FERRY_SQS_PROTOCOL): want %s (Amazon SQS) or %s (goaws and other servers that speak only the query protocol)",
			cfg.Protocol, SQSProtocolJSON, SQSProtocolQuery)
	}
	if cfg.WaitTime <= 0 {
		cfg.WaitTime = 20 * time.Second
	}
	cfg.WaitTime = min(cfg.WaitTime, 20*time.Second)
	if cfg.MaxMessages <= 0 || cfg.MaxMessages > 10 {
		cfg.MaxMessages = 10
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Minute, cfg.MinBackoff)
	}
	p := &SQSPoller{cfg: cfg, in: cfg.Intake, log: cfg.Logger}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if err := p.newClient(u); err != nil {
		return nil, err
	}
	return p, nil
}

var (
	sqsHost    = regexp.MustCompile(`^sqs\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$`)
	sqsOldHost = regexp.MustCompile(`^([a-z0-9-]+)\.queue\.amazonaws\.com(\.cn)?$`)
)

func checkQueueURL(raw string) (*url.URL, error) {
	const want = "want the queue's URL, such as https://sqs.us-east-1.amazonaws.com/123456789012/ferry-events (`aws sqs get-queue-url --queue-name NAME` prints it)"
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("SQS queue URL %q: %s", trunc(raw), want)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("SQS queue URL %q: its path must be /ACCOUNT/QUEUE-NAME; %s", trunc(raw), want)
	}
	return u, nil
}

// urlRegion is the region an Amazon SQS queue URL names ("" for others).
func urlRegion(host string) string {
	if m := sqsHost.FindStringSubmatch(host); m != nil {
		return m[1]
	}
	if m := sqsOldHost.FindStringSubmatch(host); m != nil {
		return m[1]
	}
	if host == "queue.amazonaws.com" {
		return "us-east-1"
	}
	return ""
}

func (p *SQSPoller) newClient(u *url.URL) error {
	cfg := p.cfg
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3 // Run backs off beyond
				o.RateLimiter = ratelimit.None
			})
		}),
	}
	if cfg.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(cfg.Profile))
	}
	if cfg.Region != "" {
		opts = append(opts, config.WithRegion(cfg.Region))
	}
	awsCfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return fmt.Errorf("load AWS configuration for SQS: %w (check the profile and ~/.aws/config)", err)
	}
	host := u.Hostname()
	if r := urlRegion(host); r != "" && cfg.Region == "" {
		awsCfg.Region = r // the queue lives there, whatever the default region
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1" // SigV4 needs one; custom servers rarely care
	}
	endpoint := cfg.EndpointURL
	for _, env := range []string{"AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"} {
		if endpoint == "" {
			endpoint = os.Getenv(env)
		}
	}
	if endpoint == "" && awsCfg.BaseEndpoint != nil {
		endpoint = *awsCfg.BaseEndpoint
	}
	if endpoint == "" && urlRegion(host) == "" && !strings.HasSuffix(host, ".amazonaws.com") && !strings.HasSuffix(host, ".amazonaws.com.cn") {
		endpoint = u.Scheme + "://" + u.Host // an SQS-compatible server
	}
	p.region = awsCfg.Region
	p.endpoint = endpoint
	if endpoint == "" {
		p.endpoint = "Amazon SQS (" + awsCfg.Region + ")"
	}
	p.client = sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		if cfg.Protocol == SQSProtocolQuery {
			o.Protocol = awsquery.New(schemas.AmazonSQS)
		}
	})
	return nil
}

// Stats returns the poller's counters.
func (p *SQSPoller) Stats() SQSStats {
	return SQSStats{Messages: p.messages.Load(), Deleted: p.deleted.Load(), Retained: p.retained.Load(),
		ReceiveErrors: p.receiveErrs.Load(), DeleteErrors: p.deleteErrs.Load()}
}

// Run polls until ctx ends, then returns nil; a receive in progress is
// abandoned at once (its messages, if any, come back after the visibility
// timeout). Failures are logged, naming the queue and the fix, and retried
// with backoff.
func (p *SQSPoller) Run(ctx context.Context) error {
	p.log.Info("polling SQS for S3 events", "queue", p.cfg.QueueURL, "endpoint", p.endpoint, "protocol", p.cfg.Protocol)
	var backoff time.Duration
	failing := false
	for ctx.Err() == nil {
		out, err := p.client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(p.cfg.QueueURL),
			MaxNumberOfMessages:         int32(p.cfg.MaxMessages),
			WaitTimeSeconds:             int32(p.cfg.WaitTime / time.Second),
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount},
		})
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			p.receiveErrs.Add(1)
			backoff = nextBackoff(backoff, p.cfg.MinBackoff, p.cfg.MaxBackoff)
			failing = true
			p.log.Error("SQS receive failed; retrying", "queue", p.cfg.QueueURL, "endpoint", p.endpoint,
				"err", err, "fix", p.explain(err, "sqs:ReceiveMessage"), "retry_in", backoff)
			sleepCtx(ctx, backoff)
			continue
		}
		if failing {
			p.log.Info("SQS receive works again", "queue", p.cfg.QueueURL)
			failing = false
		}
		if p.handle(ctx, out.Messages) {
			backoff = 0
			continue
		}
		backoff = nextBackoff(backoff, p.cfg.MinBackoff, p.cfg.MaxBackoff)
		sleepCtx(ctx, backoff)
	}
	p.log.Info("stopped polling SQS", "queue", p.cfg.QueueURL)
	return nil
}

// handle decodes one receive's messages, queues their hints in one
// commit, and deletes the messages that are done with. It returns false
// when the hints could not be queued (the caller backs off).
func (p *SQSPoller) handle(ctx context.Context, msgs []types.Message) bool {
	if len(msgs) == 0 {
		return true
	}
	p.messages.Add(int64(len(msgs)))
	var done, pending []types.Message
	var hints []catalog.ImportHint
	for _, m := range msgs {
		hs := p.decode(m)
		if len(hs) == 0 {
			done = append(done, m)
			continue
		}
		hints = append(hints, hs...)
		pending = append(pending, m)
	}
	ok := true
	if len(hints) > 0 {
		out, err := p.in.enqueue(ctx, hints)
		switch {
		case err != nil && ctx.Err() != nil:
			return true // stopping: the messages come back
		case err != nil:
			ok = false
			p.in.failed.Add(1)
			p.retained.Add(int64(len(pending)))
			p.log.Warn("SQS messages kept in the queue: their hints could not be queued; they come back after the visibility timeout",
				"queue", p.cfg.QueueURL, "messages", messageIDs(pending), "hints", len(hints), "err", err)
		default:
			sc := p.in.stats[SourceSQS]
			for _, o := range out {
				if o == catalog.HintQueued {
					sc.queued.Add(1)
				} else {
					sc.duplicate.Add(1)
				}
			}
			done = append(done, pending...)
		}
	}
	p.delete(ctx, done)
	return ok
}

// decode decodes one message and counts it under SourceSQS; it returns
// the hints to queue (none: the message can be deleted).
func (p *SQSPoller) decode(m types.Message) []catalog.ImportHint {
	sc := p.in.stats[SourceSQS]
	pl, err := Decode([]byte(aws.ToString(m.Body)))
	if err != nil {
		sc.malformed.Add(1)
		p.log.Warn("malformed SQS message deleted: not an S3 event notification", "queue", p.cfg.QueueURL,
			"message_id", aws.ToString(m.MessageId), "receive_count", m.Attributes["ApproximateReceiveCount"],
			"err", err, "body", trunc(aws.ToString(m.Body)))
		return nil
	}
	if pl.Subscription != nil {
		sc.ignored.Add(1)
		p.log.Warn("SNS subscription confirmation in the SQS queue, not confirmed by ferry: confirm it by opening its SubscribeURL, or subscribe the queue from the topic's own account",
			"queue", p.cfg.QueueURL, "message_id", aws.ToString(m.MessageId), "topic", pl.Subscription.TopicArn)
		return nil
	}
	received, ignored := pl.Records(), pl.Ignored
	if pl.Test {
		sc.tests.Add(1)
		ignored++
	}
	if pl.Unsubscribed {
		ignored++
	}
	hints := pl.Hints[:0]
	for _, h := range pl.Hints {
		if p.in.cfg.Covered != nil && !p.in.cfg.Covered(h.Bucket, h.Key) {
			ignored++
			continue
		}
		h.Source = SourceSQS
		hints = append(hints, h)
	}
	sc.received.Add(int64(received))
	sc.ignored.Add(int64(ignored))
	return hints
}

// delete deletes messages, ten at a time. A message not deleted comes back
// after the visibility timeout and is queued again: harmless, a hint is
// never trusted.
func (p *SQSPoller) delete(ctx context.Context, msgs []types.Message) {
	for len(msgs) > 0 && ctx.Err() == nil {
		n := min(len(msgs), 10)
		batch := msgs[:n]
		msgs = msgs[n:]
		entries := make([]types.DeleteMessageBatchRequestEntry, n)
		for i, m := range batch {
			entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
		}
		out, err := p.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(p.cfg.QueueURL), Entries: entries})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.deleteErrs.Add(int64(n))
			p.log.Error("SQS delete failed: the messages will be received again (harmless duplicates)", "queue", p.cfg.QueueURL,
				"messages", messageIDs(batch), "err", err, "fix", p.explain(err, "sqs:DeleteMessage"))
			continue
		}
		p.deleted.Add(int64(len(out.Successful)))
		for _, f := range out.Failed {
			p.deleteErrs.Add(1)
			id := aws.ToString(f.Id)
			if i, err := strconv.Atoi(id); err == nil && i >= 0 && i < n {
				id = aws.ToString(batch[i].MessageId)
			}
			p.log.Error("SQS delete failed: the message will be received again (a harmless duplicate)", "queue", p.cfg.QueueURL,
				"message_id", id, "code", aws.ToString(f.Code), "err", aws.ToString(f.Message))
		}
	}
}

// explain says what to do about a failed SQS call.
func (p *SQSPoller) explain(err error, action string) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException", "KmsAccessDenied":
			return fmt.Sprintf("grant %s (ferry needs sqs:ReceiveMessage and sqs:DeleteMessage) on this queue to the credentials ferry uses, and kms:Decrypt if the queue is encrypted with a KMS key", action)
		case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist":
			return fmt.Sprintf("no such queue at %s (region %s): check --events-sqs (`aws sqs get-queue-url --queue-name NAME` prints the URL) and the region", p.endpoint, p.region)
		case "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch", "ExpiredToken",
			"InvalidSecurity", "MissingAuthenticationToken", "IncompleteSignature":
			return "the AWS credentials are refused: check AWS_PROFILE, AWS_ACCESS_KEY_ID or ~/.aws/credentials (and that a session token has not expired)"
		case "RequestThrottled", "ThrottlingException", "OverLimit":
			return "SQS throttles the requests: ferry backs off"
		}
	}
	var de *smithy.DeserializationError
	if errors.As(err, &de) || strings.Contains(err.Error(), "deserialization failed") {
		if p.cfg.Protocol == SQSProtocolJSON {
			return "the server did not answer in SQS's JSON protocol: for a server that speaks only the query protocol (goaws, older ElasticMQ) set FERRY_SQS_PROTOCOL=query"
		}
		return "the server did not answer in SQS's query protocol: unset FERRY_SQS_PROTOCOL (Amazon SQS speaks JSON)"
	}
	var ne net.Error
	if errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host") {
		return fmt.Sprintf("cannot reach %s: check the network, the queue URL and AWS_ENDPOINT_URL_SQS", p.endpoint)
	}
	if strings.Contains(err.Error(), "credentials") {
		return "no usable AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or give the host a role"
	}
	return fmt.Sprintf("check the queue URL, the endpoint (%s) and that the credentials may use %s", p.endpoint, action)
}

func messageIDs(msgs []types.Message) []string {
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = aws.ToString(m.MessageId)
	}
	return ids
}

func nextBackoff(cur, lo, hi time.Duration) time.Duration {
	if cur < lo {
		return lo
	}
	return min(cur*2, hi)
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
