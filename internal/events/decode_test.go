package events

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// TestDecodeFixtures decodes payloads in each sender's documented shape
// (testdata/README.md says where each shape comes from).
func TestDecodeFixtures(t *testing.T) {
	type want struct {
		source  string
		hints   []catalog.ImportHint
		ignored int
		test    bool
		sub     string // SubscribeURL host
	}
	for _, tc := range []struct {
		file string
		want want
	}{
		{"minio-put.json", want{source: SourceMinIO, hints: []catalog.ImportHint{{Source: SourceMinIO, Bucket: "ferry-data",
			Key: "dir/summer 2024/a+b%.txt", Kind: catalog.HintCreated, EventTime: ts("2026-03-01T10:20:30.123Z"),
			Sequencer: "1898F1C2B8A7C3E4", Size: 5, ETag: "5d41402abc4b2a76b9719d911017c592"}}}},
		{"minio-delete.json", want{source: SourceMinIO, hints: []catalog.ImportHint{{Source: SourceMinIO, Bucket: "ferry-data",
			Key: "dir/old.bin", Kind: catalog.HintRemoved, EventTime: ts("2026-03-01T10:21:00Z"), Sequencer: "1898F1C8D1A2B3C4", Size: -1}}}},
		{"minio-accessed.json", want{source: SourceMinIO, ignored: 1}},
		// Ceph does not escape keys: "%41" and "+" stay as they are.
		{"ceph-put.json", want{source: SourceCeph, hints: []catalog.ImportHint{{Source: SourceCeph, Bucket: "ferry-data",
			Key: "dir/raw %41+b.dat", Kind: catalog.HintCreated, EventTime: ts("2026-03-01T10:20:30.512345Z"),
			Sequencer: "3E5A8C6F1B2D0A17", Size: 1024, ETag: "0f343b0931126a20f133d67c2b018a3b"}}}},
		{"ceph-expiration.json", want{source: SourceCeph, hints: []catalog.ImportHint{
			{Source: SourceCeph, Bucket: "ferry-data", Key: "logs/2026-01-01.log", Kind: catalog.HintRemoved,
				EventTime: ts("2026-03-02T00:00:01Z"), Sequencer: "3E5A8C6F1B2D0B00", Size: 0},
			{Source: SourceCeph, Bucket: "ferry-data", Key: "a%2Fb", Kind: catalog.HintRemoved,
				EventTime: ts("2026-03-02T00:00:02Z"), Sequencer: "3E5A8C6F1B2D0B01", Size: -1}}}},
		// Amazon S3 form-encodes: '+' is a space, %XX a byte.
		{"aws-put.json", want{source: SourceAWS, hints: []catalog.ImportHint{{Source: SourceAWS, Bucket: "amzn-s3-demo-bucket",
			Key: "dir/red flower(copy)é.jpg", Kind: catalog.HintCreated, EventTime: ts("2026-03-01T10:20:30Z"),
			Sequencer: "0055AED6DCD90281E5", Size: 1 << 30, ETag: "d41d8cd98f00b204e9800998ecf8427e-128"}}}},
		{"aws-tagging.json", want{source: SourceAWS, ignored: 1}},
		{"aws-test-event.json", want{source: SourceAWS, test: true}},
		{"aws-sns-notification.json", want{source: SourceSNS, hints: []catalog.ImportHint{{Source: SourceSNS, Bucket: "amzn-s3-demo-bucket",
			Key: "dir/a+b c.txt", Kind: catalog.HintRemoved, EventTime: ts("2026-03-01T10:30:00.250Z"), Sequencer: "0055AED6DCD90281F0", Size: -1}}}},
		{"aws-sns-test-event.json", want{source: SourceSNS, test: true}},
		{"aws-sns-subscription.json", want{source: SourceSNS, sub: "sns.us-west-2.amazonaws.com"}},
		// EventBridge does not escape keys.
		{"eventbridge-created.json", want{source: SourceEventBridge, hints: []catalog.ImportHint{{Source: SourceEventBridge,
			Bucket: "amzn-s3-demo-bucket", Key: "dir/red flower%20(raw).jpg", Kind: catalog.HintCreated, EventTime: ts("2026-03-01T10:40:00Z"),
			Sequencer: "617f08299329d189", Size: 5, ETag: "b1946ac92492d2347c6235b4d2611184"}}}},
		{"eventbridge-deleted.json", want{source: SourceEventBridge, hints: []catalog.ImportHint{{Source: SourceEventBridge,
			Bucket: "amzn-s3-demo-bucket", Key: "dir/gone.bin", Kind: catalog.HintRemoved, EventTime: ts("2026-03-01T10:40:00Z"),
			Sequencer: "617f0837b476e463", Size: -1, ETag: "d41d8cd98f00b204e9800998ecf8427e"}}}},
		{"eventbridge-tags.json", want{source: SourceEventBridge, ignored: 1}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			p, err := Decode(body)
			if err != nil {
				t.Fatal(err)
			}
			if p.Source != tc.want.source || p.Ignored != tc.want.ignored || p.Test != tc.want.test {
				t.Errorf("source %q ignored %d test %v, want %q %d %v", p.Source, p.Ignored, p.Test, tc.want.source, tc.want.ignored, tc.want.test)
			}
			if len(p.Hints) != len(tc.want.hints) {
				t.Fatalf("hints %+v, want %+v", p.Hints, tc.want.hints)
			}
			for i, h := range p.Hints {
				w := tc.want.hints[i]
				if h.Source != w.Source || h.Bucket != w.Bucket || h.Key != w.Key || h.Kind != w.Kind || !h.EventTime.Equal(w.EventTime) ||
					h.Sequencer != w.Sequencer || h.Size != w.Size || h.ETag != w.ETag {
					t.Errorf("hint %d:\n got %+v\nwant %+v", i, h, w)
				}
			}
			switch {
			case tc.want.sub == "" && p.Subscription != nil:
				t.Errorf("unexpected subscription %+v", p.Subscription)
			case tc.want.sub != "" && (p.Subscription == nil || p.Subscription.SubscribeURL.Host != tc.want.sub):
				t.Errorf("subscription %+v, want SubscribeURL host %s", p.Subscription, tc.want.sub)
			}
		})
	}
}

// TestDecodeKey: each sender's key encoding is undone exactly once.
func TestDecodeKey(t *testing.T) {
	for _, tc := range []struct {
		raw, source, want string
		bad               bool
	}{
		{"a+b", SourceAWS, "a b", false},
		{"a%2Bb", SourceAWS, "a+b", false},
		{"a%252B", SourceAWS, "a%2B", false}, // once, not twice
		{"dir%2Ffile", SourceMinIO, "dir/file", false},
		{"dir/file", SourceMinIO, "dir/file", false},
		{"%C3%A9", SourceMinIO, "é", false},
		{"a+b%2F", SourceCeph, "a+b%2F", false},
		{"a+b%2F", SourceEventBridge, "a+b%2F", false},
		{"%zz", SourceAWS, "", true},
		{"%", SourceMinIO, "", true},
		{"%FF", SourceAWS, "", true}, // not UTF-8 once decoded
		{"", SourceCeph, "", true},
		{"+", SourceAWS, " ", false},
		{strings.Repeat("a", 1024), SourceCeph, strings.Repeat("a", 1024), false},
		{strings.Repeat("%61", 1025), SourceAWS, "", true},
		{"k", "carrier-pigeon", "", true},
	} {
		got, err := DecodeKey(tc.raw, tc.source)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("DecodeKey(%.20q, %s) = %.20q, %v; want %.20q, bad %v", tc.raw, tc.source, got, err, tc.want, tc.bad)
		}
	}
}

// TestDecodeMalformed: a payload that cannot be used is a *FieldError that
// names the member at fault.
func TestDecodeMalformed(t *testing.T) {
	rec := func(src, name, bucket, key, extra string) string {
		return `{"Records":[{"eventSource":"` + src + `","eventName":"` + name + `","eventTime":"2026-03-01T10:00:00Z",` +
			`"s3":{"bucket":{"name":"` + bucket + `"},"object":{"key":` + key + extra + `}}}]}`
	}
	for _, tc := range []struct {
		name, body, field string
	}{
		{"not JSON", `{"Records":`, "(body)"},
		{"array", `[1,2]`, "(body)"},
		{"empty object", `{}`, "(body)"},
		{"records not an array", `{"Records":{}}`, "Records"},
		{"unknown sender", rec("gcs", "ObjectCreated:Put", "b", `"k"`, ""), "Records[0].eventSource"},
		{"no event name", rec("aws:s3", "", "b", `"k"`, ""), "Records[0].eventName"},
		{"bad escape", rec("aws:s3", "ObjectCreated:Put", "b", `"a%zz"`, ""), "Records[0].s3.object.key"},
		{"no key", `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{}}}]}`, "Records[0].s3.object.key"},
		{"key not a string", rec("minio:s3", "s3:ObjectCreated:Put", "b", `12`, ""), "Records[0].s3.object.key"},
		{"empty bucket", rec("ceph:s3", "ObjectCreated:Put", "", `"k"`, ""), "Records[0].s3.bucket.name"},
		{"bucket with slash", rec("ceph:s3", "ObjectCreated:Put", "a/b", `"k"`, ""), "Records[0].s3.bucket.name"},
		{"bad sequencer", rec("aws:s3", "ObjectCreated:Put", "b", `"k"`, `,"sequencer":"not hex"`), "Records[0].s3.object.sequencer"},
		{"negative size", rec("aws:s3", "ObjectCreated:Put", "b", `"k"`, `,"size":-5`), "Records[0].s3.object.size"},
		{"size word", rec("ceph:s3", "ObjectCreated:Put", "b", `"k"`, `,"size":"big"`), "Records[0].s3.object.size"},
		{"bad time", `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","eventTime":"yesterday","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}}]}`, "Records[0].eventTime"},
		{"too many records", `{"Records":[` + strings.Repeat(`{"eventSource":"aws:s3","eventName":"ObjectTagging:Put"},`, MaxRecords) + `{}]}`, "Records"},
		{"SNS bad type", `{"Type":"Weird"}`, "Type"},
		{"SNS no message", `{"Type":"Notification"}`, "Message"},
		{"SNS message not JSON", `{"Type":"Notification","Message":"hello"}`, "Message.(body)"},
		{"SNS nested", `{"Type":"Notification","Message":"{\"Type\":\"Notification\",\"Message\":\"{}\"}"}`, "Message.Message"},
		{"SNS inner bad key", `{"Type":"Notification","Message":` + quote(rec("aws:s3", "ObjectCreated:Put", "b", `"%"`, "")) + `}`, "Message.Records[0].s3.object.key"},
		{"SNS relative SubscribeURL", `{"Type":"SubscriptionConfirmation","SubscribeURL":"/confirm"}`, "SubscribeURL"},
		{"other Event", `{"Event":"s3:Other"}`, "Event"},
		{"EventBridge other source", `{"detail-type":"Object Created","source":"aws.ec2","detail":{}}`, "source"},
		{"EventBridge no key", `{"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{}}}`, "detail.object.key"},
		{"EventBridge no detail", `{"detail-type":"Object Deleted","source":"aws.s3"}`, "detail"},
		{"EventBridge bucket", `{"detail-type":"Object Deleted","source":"aws.s3","detail":{"bucket":{"name":""},"object":{"key":"k"}}}`, "detail.bucket.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Decode([]byte(tc.body))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Decode = %+v, %v; want a *FieldError", p, err)
			}
			if fe.Field != tc.field {
				t.Fatalf("field %q, want %q (%v)", fe.Field, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("message %q does not name %q", err, tc.field)
			}
		})
	}
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}
