package associations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/s3x"
)

// Bucket event notifications (--events-target-arn). With a target ARN the
// worker gives the bucket of each association with an AutoImportPolicy one
// notification configuration of its own, as FSx does with its "FSx"
// configuration: Id NotificationID(fs, dra), a prefix filter on the
// association's prefix, the events its policy needs, sent to the target.
// The bucket's configuration is one document, so every change is
// get-modify-put: ferry reads it, replaces only the entries with its Id and
// puts it back, keeping everything else (other tools' configurations,
// other associations', EventBridge). S3 has no conditional put for it: a
// change made by someone else between ferry's read and its put is lost
// (ferry's own changes are made one at a time by the worker).
//
// The configuration is put when the association becomes AVAILABLE (before
// its batch import, so that no change made during the import is missed),
// verified at every repository check (put again when it went missing or
// differs), and removed when the association is deleted or an update
// drops its AutoImportPolicy. A configuration that cannot be put makes
// the association MISCONFIGURED with the cause and the fix.

// NotificationID is the Id of the bucket notification configuration ferry
// puts for association assocID of file system fsID.
func NotificationID(fsID, assocID string) string {
	return "ferry-" + fsID + "-" + assocID
}

// ParseTargetARN checks an --events-target-arn value: the ARN of an SQS
// queue or an SNS topic (AWS, Ceph RGW topics) or of a MinIO target
// (arn:minio:sqs::ID:webhook).
func ParseTargetARN(arn string) error {
	p := strings.SplitN(arn, ":", 6)
	if len(p) == 6 && p[0] == "arn" && p[1] != "" && (p[2] == "sqs" || p[2] == "sns") && p[5] != "" &&
		!strings.ContainsAny(arn, " \t\r\n") {
		return nil
	}
	return fmt.Errorf("--events-target-arn %q: expected the ARN of an SQS queue (arn:aws:sqs:REGION:ACCOUNT:QUEUE), an SNS topic (arn:aws:sns:REGION:ACCOUNT:TOPIC) or a MinIO notification target (arn:minio:sqs::ID:webhook)", arn)
}

// autoImports says whether a has an AutoImportPolicy with events.
func autoImports(a api.DataRepositoryAssociation) bool {
	return a.S3 != nil && a.S3.AutoImportPolicy != nil && len(a.S3.AutoImportPolicy.Events) > 0
}

// notifyEvents maps a's AutoImportPolicy to S3 event types: NEW and
// CHANGED both to s3:ObjectCreated:* (S3 does not tell a new object from
// an overwrite; the importer does, by checking the object), DELETED to
// s3:ObjectRemoved:*.
func notifyEvents(a api.DataRepositoryAssociation) []types.Event {
	var ev []types.Event
	pol := a.S3.AutoImportPolicy.Events
	if slices.Contains(pol, api.EventNew) || slices.Contains(pol, api.EventChanged) {
		ev = append(ev, "s3:ObjectCreated:*")
	}
	if slices.Contains(pol, api.EventDeleted) {
		ev = append(ev, "s3:ObjectRemoved:*")
	}
	return ev
}

// notification is one entry of a bucket's configuration, queue or topic.
type notification struct {
	id, arn string
	topic   bool
	events  []types.Event
	prefix  string
}

func entryOf(id, arn *string, topic bool, events []types.Event, f *types.NotificationConfigurationFilter) notification {
	n := notification{id: aws.ToString(id), arn: aws.ToString(arn), topic: topic, events: events}
	if f != nil && f.Key != nil {
		for _, r := range f.Key.FilterRules {
			if strings.EqualFold(string(r.Name), "prefix") {
				n.prefix = aws.ToString(r.Value)
			}
		}
	}
	return n
}

// same says whether got (read back from the server) is want. A MinIO ARN
// without a region may come back with the server's region.
func (want notification) same(got notification) bool {
	if want.id != got.id || want.topic != got.topic || want.prefix != got.prefix {
		return false
	}
	a, b := slices.Clone(want.events), slices.Clone(got.events)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		return false
	}
	if want.arn == got.arn {
		return true
	}
	w, g := strings.SplitN(want.arn, ":", 6), strings.SplitN(got.arn, ":", 6)
	if len(w) != 6 || len(g) != 6 || w[3] != "" {
		return false
	}
	w[3], g[3] = "", ""
	return slices.Equal(w, g)
}

// notifier reads and writes the notification configuration of one
// association's bucket.
type notifier struct {
	c      *s3x.Client
	bucket string
	want   notification // id always; the rest for ensure
}

func (m *Worker) notifierFor(a api.DataRepositoryAssociation) (*notifier, error) {
	if m.s3 == nil {
		return nil, errors.New("no S3 client: the daemon was started without S3 access")
	}
	u, err := s3x.ParseURL(a.DataRepositoryPath)
	if err != nil {
		return nil, err
	}
	n := &notifier{c: m.s3.For(dra.AccessOf(a)), bucket: u.Bucket, want: notification{id: NotificationID(m.fsID, a.AssociationId), arn: m.targetARN, prefix: u.Key}}
	n.want.topic = strings.HasPrefix(m.targetARN, "arn:") && strings.Contains(m.targetARN, ":sns:")
	if autoImports(a) {
		n.want.events = notifyEvents(a)
	}
	return n, nil
}

// get reads the bucket's configuration and whether ours is in it as
// wanted.
func (n *notifier) get(ctx context.Context) (*types.NotificationConfiguration, bool, bool, error) {
	out, err := n.c.S3.GetBucketNotificationConfiguration(ctx, &s3.GetBucketNotificationConfigurationInput{Bucket: aws.String(n.bucket)})
	if err != nil {
		return nil, false, false, n.explain(err, "read")
	}
	cfg := &types.NotificationConfiguration{QueueConfigurations: out.QueueConfigurations, TopicConfigurations: out.TopicConfigurations,
		LambdaFunctionConfigurations: out.LambdaFunctionConfigurations, EventBridgeConfiguration: out.EventBridgeConfiguration}
	var ours []notification
	for _, q := range cfg.QueueConfigurations {
		if aws.ToString(q.Id) == n.want.id {
			ours = append(ours, entryOf(q.Id, q.QueueArn, false, q.Events, q.Filter))
		}
	}
	for _, t := range cfg.TopicConfigurations {
		if aws.ToString(t.Id) == n.want.id {
			ours = append(ours, entryOf(t.Id, t.TopicArn, true, t.Events, t.Filter))
		}
	}
	for _, l := range cfg.LambdaFunctionConfigurations {
		if aws.ToString(l.Id) == n.want.id {
			ours = append(ours, notification{id: n.want.id})
		}
	}
	return cfg, len(ours) > 0, len(ours) == 1 && n.want.same(ours[0]), nil
}

// put replaces the entries with our Id in cfg by want (none when
// withOurs is false) and puts cfg.
func (n *notifier) put(ctx context.Context, cfg *types.NotificationConfiguration, withOurs bool) error {
	mine := func(id *string) bool { return aws.ToString(id) == n.want.id }
	cfg.QueueConfigurations = slices.DeleteFunc(cfg.QueueConfigurations, func(q types.QueueConfiguration) bool { return mine(q.Id) })
	cfg.TopicConfigurations = slices.DeleteFunc(cfg.TopicConfigurations, func(t types.TopicConfiguration) bool { return mine(t.Id) })
	cfg.LambdaFunctionConfigurations = slices.DeleteFunc(cfg.LambdaFunctionConfigurations, func(l types.LambdaFunctionConfiguration) bool { return mine(l.Id) })
	if withOurs {
		w := n.want
		var filter *types.NotificationConfigurationFilter
		if w.prefix != "" {
			filter = &types.NotificationConfigurationFilter{Key: &types.S3KeyFilter{FilterRules: []types.FilterRule{{Name: types.FilterRuleNamePrefix, Value: aws.String(w.prefix)}}}}
		}
		if w.topic {
			cfg.TopicConfigurations = append(cfg.TopicConfigurations, types.TopicConfiguration{Id: aws.String(w.id), TopicArn: aws.String(w.arn), Events: w.events, Filter: filter})
		} else {
			cfg.QueueConfigurations = append(cfg.QueueConfigurations, types.QueueConfiguration{Id: aws.String(w.id), QueueArn: aws.String(w.arn), Events: w.events, Filter: filter})
		}
	}
	_, err := n.c.S3.PutBucketNotificationConfiguration(ctx, &s3.PutBucketNotificationConfigurationInput{Bucket: aws.String(n.bucket), NotificationConfiguration: cfg})
	return n.explain(err, "put")
}

// explain says why the configuration could not be read or put, and what
// to do. The server's own words come last, so that a message cut to
// FailureDetails' 256 characters keeps the cause and the fix.
func (n *notifier) explain(err error, op string) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	e := n.c.Explain(err, op+" the event notification configuration of", n.bucket, "")
	code := s3x.CodeOf(e)
	switch {
	case code == s3x.CodeAccessDenied:
		perm, other := "s3:PutBucketNotification", "s3:GetBucketNotification"
		if op == "read" {
			perm, other = other, perm
		}
		return &s3x.Error{Code: code, Err: err, Message: fmt.Sprintf("cannot %s the event notifications of bucket %q (--events-target-arn): access denied: grant the daemon's credentials %s (and %s) on it, or mount without --events-target-arn", op, n.bucket, perm, other)}
	case code == s3x.CodeNoSuchBucket || code == s3x.CodeBadCredentials || code == s3x.CodeNoCredentials || code == s3x.CodeUnreachable:
		return e
	}
	var ae smithy.APIError
	if op == "put" && errors.As(err, &ae) {
		return &s3x.Error{Code: ae.ErrorCode(), Err: err, Message: fmt.Sprintf("bucket %q refused event notifications to --events-target-arn %s: give a queue or topic the server can send to (MinIO: arn:minio:sqs::ID:webhook of a target it has); %s: %s",
			n.bucket, n.want.arn, ae.ErrorCode(), ae.ErrorMessage())}
	}
	return e
}

// notify makes a's bucket carry the event notification a needs: ours as
// wanted for an association with an AutoImportPolicy (an error says why it
// cannot be put: the association is MISCONFIGURED), none for one without
// (best effort: an update may have dropped its policy; a failure is only
// logged). Nothing without --events-target-arn.
func (m *Worker) notify(ctx context.Context, a api.DataRepositoryAssociation, log *slog.Logger) error {
	if m.targetARN == "" {
		return nil
	}
	if dra.AccessOf(a).Unsigned {
		// Only the bucket's owner may configure its notifications, and an
		// unsigned association's requests are nobody's: its auto-import
		// comes from the sweep, or from events the owner sends.
		if autoImports(a) && a.Lifecycle != api.LifecycleAvailable {
			log.Info("unsigned association: no bucket event notification is put (that needs the bucket owner's credentials); auto-import relies on --import-sweep-interval or on events the owner sends")
		}
		return nil
	}
	if !autoImports(a) {
		m.dropNotification(ctx, a, log)
		return nil
	}
	n, err := m.notifierFor(a)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	cfg, _, ok, err := n.get(ctx)
	if err != nil || ok {
		return err
	}
	if err := n.put(ctx, cfg, true); err != nil {
		return err
	}
	if a.Lifecycle == api.LifecycleAvailable { // a repository check found it gone
		log.Warn("the bucket's event notification for this association was missing or changed: put it again", "bucket", n.bucket, "id", n.want.id, "arn", n.want.arn)
	} else {
		log.Info("bucket event notification put", "bucket", n.bucket, "id", n.want.id, "arn", n.want.arn, "events", n.want.events)
	}
	return nil
}

// dropNotification removes ours from a's bucket, if it is there. A
// failure is logged, never an error: an association being deleted is not
// kept because its bucket cannot be reached (the log says what to remove
// by hand).
func (m *Worker) dropNotification(ctx context.Context, a api.DataRepositoryAssociation, log *slog.Logger) {
	if m.targetARN == "" || dra.AccessOf(a).Unsigned {
		return
	}
	n, err := m.notifierFor(a)
	if err == nil {
		ctx, cancel := context.WithTimeout(ctx, checkTimeout)
		defer cancel()
		var cfg *types.NotificationConfiguration
		var found bool
		cfg, found, _, err = n.get(ctx)
		if err == nil && found {
			err = n.put(ctx, cfg, false)
			if err == nil {
				log.Info("bucket event notification removed", "bucket", n.bucket, "id", n.want.id)
			}
		}
	}
	if err != nil && ctx.Err() == nil && s3x.CodeOf(err) != s3x.CodeNoSuchBucket {
		log.Warn("cannot remove the bucket's event notification of this association; remove the configuration with this Id by hand (aws s3api put-bucket-notification-configuration)",
			"id", NotificationID(m.fsID, a.AssociationId), "err", err)
	}
}
