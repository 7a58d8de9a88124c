package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// Sources: who sent a payload, as counters and hints name them.
const (
	SourceMinIO       = "minio"       // MinIO's webhook target
	SourceCeph        = "ceph"        // Ceph RGW's HTTP push
	SourceAWS         = "aws"         // Amazon S3 records, not wrapped (a relay)
	SourceSNS         = "aws-sns"     // Amazon S3 records in an SNS HTTP(S) notification
	SourceEventBridge = "eventbridge" // Amazon S3 through EventBridge
	SourceSQS         = "sqs"         // a message read from SQS (set by the poller)
	SourceUnknown     = "unknown"     // a payload whose sender could not be told
)

// Sources lists every source name, for counters.
var Sources = []string{SourceMinIO, SourceCeph, SourceAWS, SourceSNS, SourceEventBridge, SourceSQS, SourceUnknown}

// MaxRecords is the most records one payload may hold. Amazon S3 and
// MinIO send one per notification, Ceph one per push; a relay may batch.
const MaxRecords = 1000

// Payload is what one request (or queue message) said.
type Payload struct {
	Source string
	// Hints are the object changes, keys decoded.
	Hints []catalog.ImportHint
	// Ignored counts records about something other than an object's
	// existence or content: tags, ACLs, restores, reads, replication.
	Ignored int
	// Test: the payload is Amazon S3's s3:TestEvent (sent when a
	// notification configuration is put), ignored.
	Test bool
	// Subscription: an SNS SubscriptionConfirmation to confirm by a GET of
	// its SubscribeURL (the handler checks the URL first).
	Subscription *Subscription
	// Unsubscribed: an SNS UnsubscribeConfirmation, ignored.
	Unsubscribed bool
}

// Records is how many records or events the payload held.
func (p Payload) Records() int {
	n := len(p.Hints) + p.Ignored
	if p.Test {
		n++
	}
	return n
}

// Subscription is an SNS subscription confirmation request.
type Subscription struct {
	TopicArn     string
	SubscribeURL *url.URL
}

// FieldError is a malformed payload: Field names the member that is wrong
// (a JSON path such as Records[2].s3.object.key), Err says how.
type FieldError struct {
	Source string // the sender as far as it could be told
	Field  string
	Err    error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("event payload (%s): %s: %v", e.Source, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(source, field, format string, args ...any) *FieldError {
	return &FieldError{Source: source, Field: field, Err: fmt.Errorf(format, args...)}
}

// Decode decodes one payload: a MinIO webhook body, a Ceph RGW push, Amazon
// S3 records (bare or in an SNS envelope), an SNS subscription message, an
// EventBridge S3 event or an s3:TestEvent. A payload it cannot use is a
// *FieldError naming the member.
//
// Keys are decoded exactly once, as their sender encoded them (see
// "Auto-import: event intake" in docs/architecture.md):
//
//	aws:s3 records (bare, SNS, SQS)   form-encoded: %XX escapes and '+' for a space
//	minio:s3 records                  form-encoded too (Go's url.QueryEscape: '/' is %2F)
//	ceph:s3 records                   not encoded: the key as it is
//	EventBridge detail.object.key     not encoded: the key as it is
func Decode(body []byte) (Payload, error) {
	return decode(body, 0)
}

func decode(body []byte, depth int) (Payload, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return Payload{Source: SourceUnknown}, &FieldError{Source: SourceUnknown, Field: "(body)", Err: jsonErr(err)}
	}
	switch {
	case top["Type"] != nil:
		if depth > 0 {
			return Payload{Source: SourceSNS}, fieldErr(SourceSNS, "Message", "an SNS envelope inside an SNS envelope")
		}
		return decodeSNS(top)
	case top["detail-type"] != nil:
		return decodeEventBridge(body)
	case top["Records"] != nil:
		src := SourceAWS
		if depth > 0 {
			src = SourceSNS
		}
		if top["EventName"] != nil && top["Key"] != nil {
			src = SourceMinIO // the webhook target's own envelope
		}
		return decodeRecords(top["Records"], src, "Records")
	case top["Event"] != nil:
		var ev string
		if err := json.Unmarshal(top["Event"], &ev); err != nil {
			return Payload{Source: SourceAWS}, &FieldError{Source: SourceAWS, Field: "Event", Err: jsonErr(err)}
		}
		src := SourceAWS
		if depth > 0 {
			src = SourceSNS
		}
		if ev != "s3:TestEvent" {
			return Payload{Source: src}, fieldErr(src, "Event", "%q: only s3:TestEvent comes without Records", trunc(ev))
		}
		return Payload{Source: src, Test: true}, nil
	}
	return Payload{Source: SourceUnknown}, fieldErr(SourceUnknown, "(body)",
		"not an S3 event notification: no Records, Type (SNS), detail-type (EventBridge) or Event (s3:TestEvent) member")
}

// decodeSNS decodes an SNS HTTP(S) message: a Notification whose Message
// is the S3 payload as a JSON string, or a (un)subscription confirmation.
// SNS signatures are not verified (see docs/architecture.md: a forged
// event costs one HEAD).
func decodeSNS(top map[string]json.RawMessage) (Payload, error) {
	p := Payload{Source: SourceSNS}
	str := func(name string) (string, error) {
		var s string
		raw, ok := top[name]
		if !ok {
			return "", fieldErr(SourceSNS, name, "missing")
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", &FieldError{Source: SourceSNS, Field: name, Err: jsonErr(err)}
		}
		return s, nil
	}
	typ, err := str("Type")
	if err != nil {
		return p, err
	}
	switch typ {
	case "Notification":
		msg, err := str("Message")
		if err != nil {
			return p, err
		}
		inner, err := decode([]byte(msg), 1)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				fe.Source, fe.Field = SourceSNS, "Message."+fe.Field
			}
			return p, err
		}
		inner.Source = SourceSNS
		for i := range inner.Hints {
			inner.Hints[i].Source = SourceSNS
		}
		return inner, nil
	case "SubscriptionConfirmation":
		raw, err := str("SubscribeURL")
		if err != nil {
			return p, err
		}
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return p, fieldErr(SourceSNS, "SubscribeURL", "%q is not an absolute URL", trunc(raw))
		}
		arn, _ := str("TopicArn")
		p.Subscription = &Subscription{TopicArn: arn, SubscribeURL: u}
		return p, nil
	case "UnsubscribeConfirmation":
		p.Unsubscribed = true
		return p, nil
	}
	return p, fieldErr(SourceSNS, "Type", "%q: want Notification, SubscriptionConfirmation or UnsubscribeConfirmation", trunc(typ))
}

// s3Record is the part of an S3 event record (Amazon S3, MinIO, Ceph) that
// says which object changed and how.
type s3Record struct {
	EventSource string `json:"eventSource"`
	EventName   string `json:"eventName"`
	EventTime   string `json:"eventTime"`
	S3          struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       *string `json:"key"`
			Size      *size   `json:"size"`
			ETag      string  `json:"eTag"` // Ceph has written "etag": matched case-insensitively
			Sequencer string  `json:"sequencer"`
		} `json:"object"`
	} `json:"s3"`
}

func decodeRecords(raw json.RawMessage, src, field string) (Payload, error) {
	p := Payload{Source: src}
	// Records are read one at a time, so a payload of many tiny records
	// is refused after MaxRecords, not after all of them are allocated.
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return p, fieldErr(src, field, "not an array")
	}
	for i := 0; dec.More(); i++ {
		if i == MaxRecords {
			return p, fieldErr(src, field, "more than %d records in one payload", MaxRecords)
		}
		f := fmt.Sprintf("%s[%d]", field, i)
		var rr json.RawMessage
		if err := dec.Decode(&rr); err != nil {
			return p, &FieldError{Source: src, Field: f, Err: jsonErr(err)}
		}
		var r s3Record
		if err := json.Unmarshal(rr, &r); err != nil {
			var se sizeError
			if errors.As(err, &se) {
				return p, &FieldError{Source: src, Field: f + ".s3.object.size", Err: se}
			}
			return p, &FieldError{Source: src, Field: f + jsonField(err), Err: jsonErr(err)}
		}
		// The record's own sender decides how its key is encoded.
		var recSrc string
		switch r.EventSource {
		case "aws:s3":
			recSrc = SourceAWS
		case "minio:s3":
			recSrc = SourceMinIO
		case "ceph:s3":
			recSrc = SourceCeph
		default:
			return p, fieldErr(src, f+".eventSource", "%q: want aws:s3, minio:s3 or ceph:s3 (it says how the key is encoded)", trunc(r.EventSource))
		}
		if src == SourceAWS && i == 0 {
			p.Source = recSrc // a bare payload is named by its records
			src = recSrc
		}
		kind, ok, err := recordKind(r.EventName)
		if err != nil {
			return p, &FieldError{Source: src, Field: f + ".eventName", Err: err}
		}
		if !ok {
			p.Ignored++
			continue
		}
		h := catalog.ImportHint{Source: src, Bucket: r.S3.Bucket.Name, Kind: kind, Size: r.S3.Object.Size.bytes(),
			ETag: r.S3.Object.ETag, Sequencer: r.S3.Object.Sequencer}
		if r.S3.Object.Key == nil {
			return p, fieldErr(src, f+".s3.object.key", "missing")
		}
		if h.Key, err = DecodeKey(*r.S3.Object.Key, recSrc); err != nil {
			return p, &FieldError{Source: src, Field: f + ".s3.object.key", Err: err}
		}
		if h.EventTime, err = eventTime(r.EventTime); err != nil {
			return p, &FieldError{Source: src, Field: f + ".eventTime", Err: err}
		}
		if err := checkHint(h, src, f+".s3"); err != nil {
			return p, err
		}
		p.Hints = append(p.Hints, h)
	}
	return p, nil
}

// recordKind maps an S3 record's eventName — with the "s3:" prefix (MinIO,
// older Ceph) or without (Amazon S3, Ceph) — to a hint kind; ok is false
// for events that change neither an object's existence nor its content.
func recordKind(name string) (kind catalog.HintKind, ok bool, err error) {
	if name == "" {
		return "", false, errors.New("missing")
	}
	n := strings.TrimPrefix(name, "s3:")
	switch {
	case strings.HasPrefix(n, "ObjectCreated:"):
		return catalog.HintCreated, true, nil
	case strings.HasPrefix(n, "ObjectRemoved:"),
		strings.HasPrefix(n, "LifecycleExpiration:"),        // Amazon S3
		strings.HasPrefix(n, "ObjectLifecycle:Expiration:"): // Ceph
		return catalog.HintRemoved, true, nil
	}
	return "", false, nil
}

// EventBridge's S3 event (detail-type "Object Created", "Object Deleted", …).
type ebEvent struct {
	DetailType string `json:"detail-type"`
	Source     string `json:"source"`
	Time       string `json:"time"`
	Detail     *struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key       *string `json:"key"`
			Size      *size   `json:"size"`
			ETag      string  `json:"etag"`
			Sequencer string  `json:"sequencer"`
		} `json:"object"`
	} `json:"detail"`
}

func decodeEventBridge(body []byte) (Payload, error) {
	const src = SourceEventBridge
	p := Payload{Source: src}
	var ev ebEvent
	if err := json.Unmarshal(body, &ev); err != nil {
		var se sizeError
		if errors.As(err, &se) {
			return p, &FieldError{Source: src, Field: "detail.object.size", Err: se}
		}
		return p, &FieldError{Source: src, Field: "(body)" + jsonField(err), Err: jsonErr(err)}
	}
	if ev.Source != "aws.s3" {
		return p, fieldErr(src, "source", "%q: only aws.s3 events are S3 events", trunc(ev.Source))
	}
	var kind catalog.HintKind
	switch ev.DetailType {
	case "Object Created":
		kind = catalog.HintCreated
	case "Object Deleted":
		kind = catalog.HintRemoved
	default:
		p.Ignored = 1 // restores, tags, ACLs, storage classes
		return p, nil
	}
	if ev.Detail == nil {
		return p, fieldErr(src, "detail", "missing")
	}
	o := ev.Detail.Object
	if o.Key == nil {
		return p, fieldErr(src, "detail.object.key", "missing")
	}
	h := catalog.ImportHint{Source: src, Bucket: ev.Detail.Bucket.Name, Key: *o.Key, Kind: kind, Size: o.Size.bytes(),
		ETag: o.ETag, Sequencer: o.Sequencer}
	if err := checkKey(h.Key); err != nil {
		return p, &FieldError{Source: src, Field: "detail.object.key", Err: err}
	}
	var err error
	if h.EventTime, err = eventTime(ev.Time); err != nil {
		return p, &FieldError{Source: src, Field: "time", Err: err}
	}
	if err := checkHint(h, src, "detail"); err != nil {
		return p, err
	}
	p.Hints = []catalog.ImportHint{h}
	return p, nil
}

// DecodeKey decodes an object key as the sender named by source (SourceAWS,
// SourceMinIO, SourceCeph, SourceEventBridge) encoded it, exactly once, and
// checks it is a possible S3 key (1 to 1024 bytes of UTF-8).
func DecodeKey(raw, source string) (string, error) {
	var k string
	switch source {
	case SourceAWS, SourceSNS, SourceSQS, SourceMinIO:
		var err error
		if k, err = url.QueryUnescape(raw); err != nil {
			var esc url.EscapeError
			if errors.As(err, &esc) {
				return "", fmt.Errorf("bad escape %q in a form-encoded key", string(esc))
			}
			return "", err
		}
	case SourceCeph, SourceEventBridge:
		k = raw
	default:
		return "", fmt.Errorf("no key encoding known for source %q", source)
	}
	if err := checkKey(k); err != nil {
		return "", err
	}
	return k, nil
}

func checkKey(k string) error {
	switch {
	case k == "":
		return errors.New("empty")
	case len(k) > catalog.MaxHintKey:
		return fmt.Errorf("%d bytes, S3 keys have at most %d", len(k), catalog.MaxHintKey)
	case !utf8.ValidString(k):
		return errors.New("not UTF-8")
	}
	return nil
}

// checkHint checks the rest of a hint (bucket, sequencer, size, ETag) and
// names the member at fault under prefix.
func checkHint(h catalog.ImportHint, src, prefix string) error {
	switch {
	case h.Bucket == "" || len(h.Bucket) > 255 || strings.ContainsAny(h.Bucket, "/\x00"):
		return fieldErr(src, prefix+".bucket.name", "%q: want 1 to 255 bytes without '/'", trunc(h.Bucket))
	case !catalog.ValidSequencer(h.Sequencer):
		return fieldErr(src, prefix+".object.sequencer", "%q: want at most 64 hexadecimal digits", trunc(h.Sequencer))
	case len(h.ETag) > 256:
		return fieldErr(src, prefix+".object.eTag", "%d bytes, at most 256", len(h.ETag))
	}
	if err := catalog.CheckHint(h); err != nil { // the catalog's own rules, last
		return &FieldError{Source: src, Field: prefix, Err: err}
	}
	return nil
}

// eventTime parses an ISO-8601 event time ("" is unknown: zero).
func eventTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an ISO-8601 time such as 2006-01-02T15:04:05.000Z", trunc(s))
	}
	return t.UTC(), nil
}

// size is an object size given as a JSON number (Amazon S3, MinIO,
// EventBridge) or a string of digits (Ceph's documented example); -1 for
// "".
type size int64

func (s *size) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*s = -1
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		if str == "" {
			*s = -1
			return nil
		}
		b = []byte(str)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n < 0 {
		return sizeError(trunc(string(b)))
	}
	*s = size(n)
	return nil
}

// sizeError is a size that is not a non-negative integer.
type sizeError string

func (e sizeError) Error() string { return fmt.Sprintf("%q: want a non-negative integer", string(e)) }

// bytes is the size, -1 when the event did not give one.
func (s *size) bytes() int64 {
	if s == nil {
		return -1
	}
	return int64(*s)
}

// jsonErr turns a JSON error into a short message without the Go type
// names a sender cannot act on.
func jsonErr(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		return fmt.Errorf("a JSON %s where %s was expected", te.Value, jsonKind(te.Type.Kind().String()))
	}
	return err
}

// jsonField is the path of a JSON type error below the value decoded
// (".s3.object.key"), "" when unknown.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return "." + te.Field
	}
	return ""
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice":
		return "an array"
	}
	return "a number"
}

// trunc cuts a sender's string for a message.
func trunc(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}
