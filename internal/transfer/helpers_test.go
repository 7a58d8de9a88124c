package transfer

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.RunMain(m)) }

const mib = 1 << 20

// rangedMD5 makes e fetch single-part objects above the multipart
// threshold in ranges (hashed in order) instead of in one GET.
// md5Paths are the two ways a download's MD5 is computed: crypto/md5, and
// a lane of the engine's md5simd server (from the first MD5 in flight).
var md5Paths = []struct {
	name     string
	simdFrom int
}{{"stdlib", 0}, {"simd", 1}}

func rangedMD5(e *Engine) *Engine {
	e.wholeMD5Max = 0
	return e
}

// writeRandom creates a file of size random bytes and returns its SHA-256.
func writeRandom(t testing.TB, path string, size int64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func objectSHA(t testing.TB, c *s3x.Client, bucket, key string) string {
	t.Helper()
	out, err := c.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func head(t testing.TB, c *s3x.Client, bucket, key string) s3x.Object {
	t.Helper()
	o, err := c.Head(context.Background(), bucket, key)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// dirNames lists a directory, to find stray temporary files.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// counter is a ProgressFunc that sums what it is given.
type counter struct{ n atomic.Int64 }

func (c *counter) add(n int64) { c.n.Add(n) }

// wrappedClient returns a client for m whose HTTP transport is wrapped, to
// observe requests or inject faults a real server cannot be made to produce.
func wrappedClient(t testing.TB, m *testutil.MinIO, wrap func(http.RoundTripper) http.RoundTripper) *s3x.Client {
	t.Helper()
	c := m.Client(t)
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64
	s := s3.New(c.S3.Options(), func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: wrap(base)}
	})
	return &s3x.Client{S3: s, Endpoint: c.Endpoint, Region: c.Region}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// isGetOf reports whether r is a GET of the object key (not a listing).
func isGetOf(r *http.Request, key string) bool {
	return r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+key) && !strings.Contains(r.URL.RawQuery, "list-type")
}

// flipBody flips one byte of the body at offset at (within this response).
type flipBody struct {
	io.ReadCloser
	pos, at int64
}

func (b *flipBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.at >= b.pos && b.at < b.pos+int64(n) {
		p[b.at-b.pos] ^= 0xff
	}
	b.pos += int64(n)
	return n, err
}

// cutBody ends the body with a connection error after limit bytes.
type cutBody struct {
	io.ReadCloser
	left int64
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

// inflight counts requests from RoundTrip until their body is closed or
// read to the end, and remembers the most seen at once.
type inflight struct {
	mu       sync.Mutex
	now, max int
}

func (f *inflight) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		f.mu.Lock()
		f.now++
		f.max = max(f.max, f.now)
		f.mu.Unlock()
		resp, err := rt.RoundTrip(r)
		if err != nil {
			f.done()
			return resp, err
		}
		resp.Body = &doneBody{ReadCloser: resp.Body, done: f.done}
		return resp, nil
	})
}

func (f *inflight) done() {
	f.mu.Lock()
	f.now--
	f.mu.Unlock()
}

type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *doneBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
}
