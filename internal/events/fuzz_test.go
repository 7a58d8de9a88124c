package events

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// FuzzDecode: no payload makes Decode panic; a refused payload is a
// *FieldError naming a member; an accepted one yields hints the catalog
// accepts, at most MaxRecords, whose keys together are no longer than the
// payload (a key is decoded, never expanded).
func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Type":"Notification","Message":"{\"Records\":[{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectRemoved:Delete\",\"s3\":{\"bucket\":{\"name\":\"b\"},\"object\":{\"key\":\"a+%2B\"}}}]}"}`))
	f.Add([]byte(`{"detail-type":"Object Created","source":"aws.s3","detail":{"bucket":{"name":"b"},"object":{"key":"k","size":"7"}}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := Decode(body)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field == "" || fe.Source == "" {
				t.Fatalf("error %v (%T) names no field", err, err)
			}
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error message is not UTF-8: %q", err)
			}
			return
		}
		if len(p.Hints) > MaxRecords {
			t.Fatalf("%d hints", len(p.Hints))
		}
		keys := 0
		for _, h := range p.Hints {
			if err := catalog.CheckHint(h); err != nil {
				t.Fatalf("hint the catalog refuses: %v", err)
			}
			keys += len(h.Key)
		}
		if keys > len(body) {
			t.Fatalf("keys of %d bytes from a %d-byte payload", keys, len(body))
		}
	})
}

// FuzzDecodeKey: a key encoded as each sender encodes it decodes back to
// itself (exactly once), and decoding anything never panics.
func FuzzDecodeKey(f *testing.F) {
	for _, k := range []string{"a b", "a+b", "dir/x%2F", "é/ü", "%", "+%2B+", strings.Repeat("z", 1024)} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		for _, src := range []string{SourceAWS, SourceMinIO, SourceCeph, SourceEventBridge} {
			_, _ = DecodeKey(k, src) // no panic on any input
		}
		if checkKey(k) != nil {
			return
		}
		// MinIO: Go's url.QueryEscape; Amazon S3: form encoding, which
		// QueryEscape produces too. Ceph and EventBridge: the key itself.
		for src, enc := range map[string]string{SourceMinIO: url.QueryEscape(k), SourceAWS: url.QueryEscape(k), SourceCeph: k, SourceEventBridge: k} {
			got, err := DecodeKey(enc, src)
			if err != nil || got != k {
				t.Fatalf("%s: DecodeKey(%q) = %q, %v; want %q", src, enc, got, err, k)
			}
		}
	})
}

// TestDecodeMemoryBounded: decoding a hostile payload of the largest
// accepted size allocates a bounded multiple of it.
func TestDecodeMemoryBounded(t *testing.T) {
	const limit = 1 << 20
	many := `{"Records":[` + strings.Repeat(`{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k"}}},`, 999)
	many = many[:len(many)-1] + `]}`
	for name, body := range map[string]string{
		"deep nesting":  strings.Repeat(`{"a":`, limit/5),
		"deep arrays":   `{"Records":` + strings.Repeat("[", limit-20),
		"long key":      `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"` + strings.Repeat("%41", limit/3-100) + `"}}}]}`,
		"many members":  `{` + strings.Repeat(`"x":1,`, limit/6-2) + `"y":1}`,
		"max records":   many,
		"many escapes":  `{"Type":"Notification","Message":"` + strings.Repeat(`\u0041`, limit/6-10) + `"}`,
		"many records":  `{"Records":[` + strings.Repeat(`{},`, limit/3-10) + `{}]}`,
		"huge sequence": `{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"k","sequencer":"` + strings.Repeat("A", limit-200) + `"}}}]}`,
	} {
		if len(body) > limit {
			t.Fatalf("%s: %d bytes over the limit", name, len(body))
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, _ = Decode([]byte(body))
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		t.Logf("%s: %d-byte payload, %d bytes allocated", name, len(body), alloc)
		if alloc > 16*limit {
			t.Errorf("%s: %d bytes allocated to decode %d bytes", name, alloc, len(body))
		}
	}
}
