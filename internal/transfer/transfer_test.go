package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

const part = 5 * mib

func TestPartSize(t *testing.T) {
	e := New(nil, Options{PartSize: 8 * mib})
	tests := []struct {
		size, want int64
	}{
		{0, 8 * mib},
		{8 * mib * MaxParts, 8 * mib},
		{8*mib*MaxParts + 1, 9 * mib},
		{5 << 40, 525 * mib}, // 5 TiB, S3's largest object
	}
	for _, tt := range tests {
		got := e.PartSize(tt.size)
		if got != tt.want {
			t.Errorf("PartSize(%d) = %d, want %d", tt.size, got, tt.want)
		}
		if n := parts(tt.size, got); n > MaxParts {
			t.Errorf("PartSize(%d) = %d needs %d parts", tt.size, got, n)
		}
	}
	if got := New(nil, Options{PartSize: 1}).Options().PartSize; got != MinPartSize {
		t.Errorf("PartSize 1 became %d, want %d", got, MinPartSize)
	}
	o := New(nil, Options{}).Options()
	if o.Concurrency != DefaultConcurrency || o.PartSize != DefaultPartSize || o.MultipartThreshold != DefaultPartSize {
		t.Errorf("defaults = %+v", o)
	}
}

func TestRoundTrip(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	tests := []struct {
		name string
		size int64
		// singlePut uploads in one PUT whatever the size, so that a large
		// single-part object is downloaded in ranges and its MD5 checked
		// in a pass over the file.
		singlePut bool
		// ranged downloads a single-part object in ranges (not in one
		// GET), hashing the ranges in order as they land.
		ranged    bool
		wantParts int // 0: single-part ETag
	}{
		{name: "empty", size: 0},
		{name: "one", size: 1},
		{name: "part-1", size: part - 1},
		{name: "part", size: part},
		{name: "part+1", size: part + 1, wantParts: 2},
		{name: "3part+7", size: 3*part + 7, wantParts: 4},
		{name: "3part+7 single PUT", size: 3*part + 7, singlePut: true},
		{name: "3part+7 single PUT ranged", size: 3*part + 7, singlePut: true, ranged: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			want := writeRandom(t, src, tt.size)
			key := "rt/" + strings.ReplaceAll(tt.name, " ", "_")
			up := New(c, Options{PartSize: part, Concurrency: 4})
			if tt.singlePut {
				up = New(c, Options{PartSize: part, Concurrency: 4, MultipartThreshold: 1 << 40})
			}
			var upN counter
			if err := up.Upload(context.Background(), UploadInput{Path: src, Bucket: bucket, Key: key, Size: tt.size}, upN.add); err != nil {
				t.Fatal(err)
			}
			if upN.n.Load() != tt.size {
				t.Errorf("upload progress = %d, want %d", upN.n.Load(), tt.size)
			}
			obj := head(t, c, bucket, key)
			wantETag := "no part count"
			if tt.wantParts > 0 {
				wantETag = fmt.Sprintf("-%d", tt.wantParts)
			}
			if gotParts := strings.Contains(obj.ETag, "-"); gotParts != (tt.wantParts > 0) || tt.wantParts > 0 && !strings.HasSuffix(obj.ETag, wantETag) {
				t.Errorf("ETag %q, want %s", obj.ETag, wantETag)
			}
			if obj.Size != tt.size {
				t.Fatalf("object size %d, want %d", obj.Size, tt.size)
			}
			if got := objectSHA(t, c, bucket, key); got != want {
				t.Fatalf("object content differs from the file")
			}

			dst := filepath.Join(dir, "out", "sub", "dst") // parents created
			var downN counter
			down := New(c, Options{PartSize: part, Concurrency: 4})
			if tt.ranged {
				down = rangedMD5(down)
			}
			if err := down.Download(context.Background(), DownloadInput{Bucket: bucket, Key: key, Object: obj, Path: dst}, downN.add); err != nil {
				t.Fatal(err)
			}
			if got := fileSHA(t, dst); got != want {
				t.Errorf("downloaded content differs")
			}
			if downN.n.Load() != tt.size {
				t.Errorf("download progress = %d, want %d", downN.n.Load(), tt.size)
			}
			fi, err := os.Stat(dst)
			if err != nil {
				t.Fatal(err)
			}
			if wantT := obj.LastModified; !fi.ModTime().Equal(wantT) {
				t.Errorf("mtime %v, want %v", fi.ModTime(), wantT)
			}
			if fi.Mode().Perm()&0o644 != 0o644 {
				t.Errorf("mode %v: want at least rw-r--r-- (0666 less umask)", fi.Mode())
			}
			if names := dirNames(t, filepath.Dir(dst)); len(names) != 1 {
				t.Errorf("destination directory holds %v, want only dst", names)
			}
		})
	}
}

// TestDownloadReplaces checks that a download replaces an existing file
// and that an object with no listing ETag is still pinned to one version.
func TestDownloadReplaces(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	want := writeRandom(t, src, 2*part+3)
	e := New(c, Options{PartSize: part})
	if err := e.Upload(context.Background(), UploadInput{Path: src, Bucket: bucket, Key: "k", Size: 2*part + 3}, nil); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "dst")
	if err := os.WriteFile(dst, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := head(t, c, bucket, "k")
	obj.ETag = ""
	if err := e.Download(context.Background(), DownloadInput{Bucket: bucket, Key: "k", Object: obj, Path: dst}, nil); err != nil {
		t.Fatal(err)
	}
	if fileSHA(t, dst) != want {
		t.Error("content differs")
	}
}

func TestDownloadInterrupted(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	tests := []struct {
		name string
		size int64
	}{
		{"one GET", part - 1},
		{"ranges", 8 * part},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			m.Put(t, bucket, tt.name, make([]byte, tt.size))
			obj := head(t, c, bucket, tt.name)
			// Concurrency 1 and small buffers: the cancel lands while
			// most of the object is still to come.
			e := rangedMD5(New(c, Options{PartSize: part, Concurrency: 1}))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var seen counter
			dst := filepath.Join(dir, "dst")
			err := e.Download(ctx, DownloadInput{Bucket: bucket, Key: tt.name, Object: obj, Path: dst}, func(n int64) {
				seen.add(n)
				cancel()
			})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			if seen.n.Load() == 0 || seen.n.Load() >= tt.size {
				t.Fatalf("cancelled after %d of %d bytes: not mid-transfer", seen.n.Load(), tt.size)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left behind %v", names)
			}
		})
	}
}

func TestDownloadIfMatch(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	tests := []struct {
		name string
		size int64
	}{
		{"one GET", 1000},
		{"ranges", 3 * part},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v1 := make([]byte, tt.size)
			v2 := make([]byte, tt.size)
			v2[0] = 1
			m.Put(t, bucket, tt.name, v1)
			obj := head(t, c, bucket, tt.name) // the listing
			m.Put(t, bucket, tt.name, v2)      // overwritten before the download
			dir := t.TempDir()
			dst := filepath.Join(dir, "dst")
			err := rangedMD5(New(c, Options{PartSize: part})).Download(context.Background(), DownloadInput{Bucket: bucket, Key: tt.name, Object: obj, Path: dst}, nil)
			if s3x.CodeOf(err) != s3x.CodePrecondition {
				t.Fatalf("err = %v, want code %s", err, s3x.CodePrecondition)
			}
			if !strings.Contains(err.Error(), "changed") || !strings.Contains(err.Error(), bucket) {
				t.Errorf("error %q should say the object changed and name it", err)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left behind %v", names)
			}
		})
	}
}

// TestDownloadVerify corrupts response bodies in flight (a fault a real
// MinIO cannot be made to produce) and expects the verification to refuse
// the data: MD5 inline for one GET, the in-order MD5 of a single-part
// object fetched in ranges, the SDK's CRC32C check when the object has one.
// Every MD5 case runs on both MD5 paths, crypto/md5 and a SIMD lane, and
// must be caught the same way on each.
func TestDownloadVerify(t *testing.T) {
	m := testutil.SharedMinIO(t)
	bucket := m.Bucket(t)
	plain := m.Client(t)
	tests := []struct {
		name     string
		size     int64
		checksum bool // upload with a CRC32C checksum
		ranged   bool // fetch a single-part object in ranges
		// flipAt is the offset within the first response whose Range
		// header starts with rangeFrom ("": any response) that is long
		// enough to hold it.
		rangeFrom string
		flipAt    int64
		wantMsg   string // which check caught it
	}{
		{name: "one GET md5", size: 100 << 10, flipAt: 777, wantMsg: "MD5 of the data"},
		{name: "one GET md5 15MiB", size: 3*part + 1, flipAt: 12345, wantMsg: "MD5 of the data"},
		{name: "ranges md5 first", size: 3*part + 1, ranged: true, rangeFrom: "bytes=0-", flipAt: 12345, wantMsg: "MD5 of the data"},
		{name: "ranges md5 third", size: 3*part + 1, ranged: true, rangeFrom: fmt.Sprintf("bytes=%d-", 2*part), flipAt: part - 1, wantMsg: "MD5 of the data"},
		// The SDK checks the CRC32C as the body ends, before the MD5 is compared.
		{name: "one GET crc32c", size: 100 << 10, checksum: true, flipAt: 99, wantMsg: "CRC32C"},
	}
	for _, tt := range tests {
		for _, path := range md5Paths {
			t.Run(tt.name+"/"+path.name, func(t *testing.T) {
				key := strings.ReplaceAll(tt.name+"-"+path.name, " ", "-")
				in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(strings.Repeat("x", int(tt.size)))}
				if tt.checksum {
					in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
				}
				if _, err := plain.S3.PutObject(context.Background(), in); err != nil {
					t.Fatal(err)
				}
				obj := head(t, plain, bucket, key)
				var once sync.Once
				flipped := false
				c := wrappedClient(t, m, func(rt http.RoundTripper) http.RoundTripper {
					return roundTripFunc(func(r *http.Request) (*http.Response, error) {
						resp, err := rt.RoundTrip(r)
						if err == nil && isGetOf(r, key) && resp.StatusCode/100 == 2 && resp.ContentLength > tt.flipAt &&
							strings.HasPrefix(r.Header.Get("Range"), tt.rangeFrom) {
							once.Do(func() { flipped = true; resp.Body = &flipBody{ReadCloser: resp.Body, at: tt.flipAt} })
						}
						return resp, err
					})
				})
				e := New(c, Options{PartSize: part})
				e.md5.simdFrom = path.simdFrom
				if tt.ranged {
					e = rangedMD5(e)
				}
				dir := t.TempDir()
				err := e.Download(context.Background(), DownloadInput{Bucket: bucket, Key: key, Object: obj, Path: filepath.Join(dir, "dst")}, nil)
				if !flipped {
					t.Fatal("the fault was never injected")
				}
				if !errors.Is(err, ErrMismatch) {
					t.Fatalf("err = %v, want ErrMismatch", err)
				}
				if !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("err = %v, want it to mention %q", err, tt.wantMsg)
				}
				if got := e.md5.simdUsed.Load() > 0; got != (path.simdFrom != 0) {
					t.Errorf("a SIMD hasher was used: %v, want %v", got, path.simdFrom != 0)
				}
				if names := dirNames(t, dir); len(names) != 0 {
					t.Errorf("left behind %v", names)
				}
			})
		}
	}
}

// TestDownloadHashReadBack makes the third range of a single-part object
// land completely before the first one may start, so the in-order MD5
// must read the third range back from the file instead of hashing it from
// memory; with a byte of that range corrupted in flight the download must
// fail, without it the file must be whole.
func TestDownloadHashReadBack(t *testing.T) {
	m := testutil.SharedMinIO(t)
	bucket := m.Bucket(t)
	plain := m.Client(t)
	const size = 3*part + 1
	data := make([]byte, size)
	rand.Read(data)
	m.Put(t, bucket, "k", data)
	obj := head(t, plain, bucket, "k")
	third := fmt.Sprintf("bytes=%d-", 2*part)
	for _, corrupt := range []bool{false, true} {
		t.Run(fmt.Sprint("corrupt=", corrupt), func(t *testing.T) {
			thirdDone := make(chan struct{})
			var closeOnce sync.Once
			waited := false
			c := wrappedClient(t, m, func(rt http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					rg := r.Header.Get("Range")
					if isGetOf(r, "k") && strings.HasPrefix(rg, "bytes=0-") {
						select { // hold the first range until the third has landed
						case <-thirdDone:
							waited = true
						case <-time.After(30 * time.Second):
						case <-r.Context().Done():
						}
					}
					resp, err := rt.RoundTrip(r)
					if err == nil && isGetOf(r, "k") && strings.HasPrefix(rg, third) {
						body := resp.Body
						if corrupt {
							body = &flipBody{ReadCloser: body, at: 4321}
						}
						resp.Body = &doneBody{ReadCloser: body, done: func() { closeOnce.Do(func() { close(thirdDone) }) }}
					}
					return resp, err
				})
			})
			dir := t.TempDir()
			dst := filepath.Join(dir, "dst")
			err := rangedMD5(New(c, Options{PartSize: part, Concurrency: 4})).Download(context.Background(),
				DownloadInput{Bucket: bucket, Key: "k", Object: obj, Path: dst}, nil)
			if !waited {
				t.Fatal("the first range did not wait for the third: the read-back path was not exercised")
			}
			if corrupt {
				if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "MD5 of the data") {
					t.Fatalf("err = %v, want an MD5 mismatch", err)
				}
				if names := dirNames(t, dir); len(names) != 0 {
					t.Errorf("left behind %v", names)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(dst); !bytes.Equal(got, data) {
				t.Error("content differs")
			}
		})
	}
}

// TestDownloadChangedMidway overwrites the object after the first range of
// a ranged download was served: the next range's If-Match fails, the
// download fails as changed, and nothing is left behind.
func TestDownloadChangedMidway(t *testing.T) {
	m := testutil.SharedMinIO(t)
	bucket := m.Bucket(t)
	plain := m.Client(t)
	for _, multipart := range []bool{false, true} {
		t.Run(fmt.Sprint("multipart=", multipart), func(t *testing.T) {
			key := fmt.Sprint("mid-", multipart)
			dir := t.TempDir()
			src := filepath.Join(dir, "src")
			writeRandom(t, src, 3*part)
			up := New(plain, Options{PartSize: part, MultipartThreshold: 1 << 40})
			if multipart {
				up = New(plain, Options{PartSize: part})
			}
			if err := up.Upload(context.Background(), UploadInput{Path: src, Bucket: bucket, Key: key, Size: 3 * part}, nil); err != nil {
				t.Fatal(err)
			}
			obj := head(t, plain, bucket, key)
			var once sync.Once
			var putErr error
			c := wrappedClient(t, m, func(rt http.RoundTripper) http.RoundTripper {
				return roundTripFunc(func(r *http.Request) (*http.Response, error) {
					resp, err := rt.RoundTrip(r)
					if err == nil && isGetOf(r, key) && resp.StatusCode/100 == 2 {
						once.Do(func() {
							_, putErr = plain.S3.PutObject(r.Context(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("v2")})
						})
					}
					return resp, err
				})
			})
			out := filepath.Join(dir, "out")
			err := rangedMD5(New(c, Options{PartSize: part, Concurrency: 1})).Download(context.Background(),
				DownloadInput{Bucket: bucket, Key: key, Object: obj, Path: filepath.Join(out, "dst")}, nil)
			if putErr != nil {
				t.Fatal(putErr)
			}
			if s3x.CodeOf(err) != s3x.CodePrecondition {
				t.Fatalf("err = %v, want code %s", err, s3x.CodePrecondition)
			}
			if names := dirNames(t, out); len(names) != 0 {
				t.Errorf("left behind %v", names)
			}
		})
	}
}

// TestDownloadResumesBrokenBody cuts a ranged GET's body short once; the
// range is fetched again from where it stopped and the file is whole.
func TestDownloadResumesBrokenBody(t *testing.T) {
	m := testutil.SharedMinIO(t)
	bucket := m.Bucket(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	want := writeRandom(t, src, 3*part)
	plain := m.Client(t)
	if err := New(plain, Options{PartSize: part}).Upload(context.Background(), UploadInput{Path: src, Bucket: bucket, Key: "k", Size: 3 * part}, nil); err != nil {
		t.Fatal(err)
	}
	obj := head(t, plain, bucket, "k")
	var cuts sync.Once
	cut := false
	c := wrappedClient(t, m, func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(r)
			if err == nil && isGetOf(r, "k") && strings.HasPrefix(r.Header.Get("Range"), "bytes=5242880-") {
				cuts.Do(func() { cut = true; resp.Body = &cutBody{ReadCloser: resp.Body, left: 1<<20 + 5} })
			}
			return resp, err
		})
	})
	dst := filepath.Join(dir, "dst")
	var n counter
	if err := New(c, Options{PartSize: part}).Download(context.Background(), DownloadInput{Bucket: bucket, Key: "k", Object: obj, Path: dst}, n.add); err != nil {
		t.Fatal(err)
	}
	if !cut {
		t.Fatal("the fault was never injected")
	}
	if fileSHA(t, dst) != want {
		t.Error("content differs")
	}
	if n.n.Load() != 3*part {
		t.Errorf("progress %d, want %d (each byte once)", n.n.Load(), 3*part)
	}
}

func TestUploadChanged(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	tests := []struct {
		name      string
		size      int64
		threshold int64
		change    func(f *os.File) error
	}{
		{"single PUT grows", 4 * mib, 1 << 40, func(f *os.File) error { _, err := f.WriteAt([]byte("more"), 4*mib); return err }},
		{"single PUT rewritten", 4 * mib, 1 << 40, func(f *os.File) error { _, err := f.WriteAt([]byte("new"), 10); return err }},
		{"multipart grows", 3 * part, 0, func(f *os.File) error { _, err := f.WriteAt([]byte("more"), 3*part); return err }},
		{"multipart rewritten", 3 * part, 0, func(f *os.File) error { _, err := f.WriteAt([]byte("new"), 10); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			writeRandom(t, path, tt.size)
			// An old mtime, so that the rewrite is visible even with a
			// coarse file system clock.
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
			w, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			var once sync.Once
			var changeErr error
			key := strings.ReplaceAll(tt.name, " ", "-")
			e := New(c, Options{PartSize: part, Concurrency: 2, MultipartThreshold: tt.threshold})
			err = e.Upload(context.Background(), UploadInput{Path: path, Bucket: bucket, Key: key, Size: tt.size}, func(int64) {
				once.Do(func() { changeErr = tt.change(w) })
			})
			if changeErr != nil {
				t.Fatal(changeErr)
			}
			if !errors.Is(err, ErrChanged) {
				t.Fatalf("err = %v, want ErrChanged", err)
			}
			if _, err := c.Head(context.Background(), bucket, key); s3x.CodeOf(err) != s3x.CodeNoSuchKey {
				t.Errorf("head after failed upload: %v, want no such key", err)
			}
			ups, err := c.S3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket), Prefix: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			if len(ups.Uploads) != 0 {
				t.Errorf("%d multipart uploads left, want them aborted", len(ups.Uploads))
			}
		})
	}
	t.Run("size differs from plan", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "f")
		writeRandom(t, path, 10)
		err := New(c, Options{}).Upload(context.Background(), UploadInput{Path: path, Bucket: bucket, Key: "plan", Size: 11}, nil)
		if !errors.Is(err, ErrChanged) {
			t.Fatalf("err = %v, want ErrChanged", err)
		}
	})
}

func TestUploadCancelledAborts(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	path := filepath.Join(t.TempDir(), "f")
	writeRandom(t, path, 6*part)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := New(c, Options{PartSize: part, Concurrency: 1}).Upload(ctx, UploadInput{Path: path, Bucket: bucket, Key: "k", Size: 6 * part}, func(int64) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	ups, err := c.S3.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ups.Uploads) != 0 {
		t.Errorf("%d multipart uploads left, want them aborted", len(ups.Uploads))
	}
}

func TestUploadMetadata(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	path := filepath.Join(t.TempDir(), "f")
	for _, size := range []int64{10, 2*part + 1} {
		writeRandom(t, path, size)
		key := fmt.Sprint("meta", size)
		err := New(c, Options{PartSize: part}).Upload(context.Background(), UploadInput{
			Path: path, Bucket: bucket, Key: key, Size: size,
			ContentType: "text/plain", Metadata: map[string]string{"file-owner": "1000"},
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := c.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.ContentType) != "text/plain" || out.Metadata["file-owner"] != "1000" {
			t.Errorf("size %d: content type %q, metadata %v", size, aws.ToString(out.ContentType), out.Metadata)
		}
	}
}

func TestCopy(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	dstBucket := m.Bucket(t)
	tests := []struct {
		name      string
		size      int64
		wantParts int
	}{
		{"empty", 0, 0},
		{"small", 1000, 0},
		{"multipart", 3*part + 7, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "f")
			want := writeRandom(t, path, tt.size)
			src := "src/" + tt.name
			e := New(c, Options{PartSize: part, Concurrency: 4})
			err := e.Upload(context.Background(), UploadInput{Path: path, Bucket: bucket, Key: src, Size: tt.size,
				ContentType: "application/x-test", Metadata: map[string]string{"file-mtime": "123ns"}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			obj := head(t, c, bucket, src)
			var n counter
			dst := "dst/" + tt.name
			if err := e.Copy(context.Background(), CopyInput{SrcBucket: bucket, SrcKey: src, Object: obj, DstBucket: dstBucket, DstKey: dst}, n.add); err != nil {
				t.Fatal(err)
			}
			if n.n.Load() != tt.size {
				t.Errorf("progress %d, want %d", n.n.Load(), tt.size)
			}
			if objectSHA(t, c, dstBucket, dst) != want {
				t.Error("copy content differs")
			}
			out, err := c.S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(dstBucket), Key: aws.String(dst)})
			if err != nil {
				t.Fatal(err)
			}
			if aws.ToString(out.ContentType) != "application/x-test" || out.Metadata["file-mtime"] != "123ns" {
				t.Errorf("metadata not kept: %q %v", aws.ToString(out.ContentType), out.Metadata)
			}
			etag := strings.Trim(aws.ToString(out.ETag), `"`)
			if tt.wantParts > 0 != strings.HasSuffix(etag, fmt.Sprintf("-%d", tt.wantParts)) || tt.wantParts == 0 && strings.Contains(etag, "-") {
				t.Errorf("ETag %q, want %d parts", etag, tt.wantParts)
			}

			// The source changes after the listing: the copy refuses.
			m.Put(t, bucket, src, []byte("changed"))
			err = e.Copy(context.Background(), CopyInput{SrcBucket: bucket, SrcKey: src, Object: obj, DstBucket: dstBucket, DstKey: dst + ".2"}, nil)
			if s3x.CodeOf(err) != s3x.CodePrecondition {
				t.Errorf("copy of a changed source: %v, want %s", err, s3x.CodePrecondition)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	const n = 2*MaxDeleteBatch + 17 // three requests
	keys := make([]string, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("d/%05d", i)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := c.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(keys[i])}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	keys = append(keys, "d/never-existed") // S3 reports it deleted too
	got := map[string]int{}
	err := New(c, Options{}).Delete(context.Background(), bucket, keys, func(key string, err error) {
		if err != nil {
			t.Errorf("delete %s: %v", key, err)
		}
		got[key]++ // done is serialised: no lock needed
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if got[k] != 1 {
			t.Errorf("%s reported %d times", k, got[k])
		}
	}
	left := 0
	if err := c.List(context.Background(), bucket, s3x.ListOptions{}, func(s3x.Object) error { left++; return nil }); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d objects left", left)
	}

	err = New(c, Options{}).Delete(context.Background(), "no-such-bucket-ferry", []string{"a"}, func(string, error) {
		t.Error("done called for a failed request")
	})
	if s3x.CodeOf(err) != s3x.CodeNoSuchBucket {
		t.Errorf("delete in a missing bucket: %v, want %s", err, s3x.CodeNoSuchBucket)
	}
}

// TestSharedBound runs many transfers at once on an engine of 3 slots and
// checks that no more than 3 requests were ever in flight — and that the
// many concurrent callers do not deadlock.
func TestSharedBound(t *testing.T) {
	m := testutil.SharedMinIO(t)
	bucket := m.Bucket(t)
	var f inflight
	c := wrappedClient(t, m, f.wrap)
	plain := m.Client(t) // for the test's own requests, outside the count
	e := New(c, Options{PartSize: part, Concurrency: 3})
	dir := t.TempDir()
	sizes := []int64{0, 100, 2*part + 1, 3 * part, 10, part + 5, 4*part - 1, 1 << 20}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(sizes))
	for i, size := range sizes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := filepath.Join(dir, fmt.Sprint("src", i))
			writeRandom(t, src, size)
			key := fmt.Sprint("k", i)
			if err := e.Upload(ctx, UploadInput{Path: src, Bucket: bucket, Key: key, Size: size}, nil); err != nil {
				errs <- err
				return
			}
			obj, err := plain.Head(ctx, bucket, key)
			if err != nil {
				errs <- err
				return
			}
			if err := e.Download(ctx, DownloadInput{Bucket: bucket, Key: key, Object: obj, Path: src + ".down"}, nil); err != nil {
				errs <- err
				return
			}
			if err := e.Copy(ctx, CopyInput{SrcBucket: bucket, SrcKey: key, Object: obj, DstBucket: bucket, DstKey: key + ".copy"}, nil); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if f.max > 3 {
		t.Errorf("%d requests in flight at once", f.max)
	}
	t.Logf("max in flight: %d", f.max)
}

// TestSeqHash writes the ranges of a file from concurrent goroutines in
// random chunk sizes and order, as ranged downloads do, and checks that the
// in-order hash equals the MD5 of the content and catches a byte changed on
// its way into the file.
func TestSeqHash(t *testing.T) {
	for _, path := range md5Paths {
		t.Run(path.name, func(t *testing.T) { testSeqHash(t, path.simdFrom) })
	}
}

func testSeqHash(t *testing.T, simdFrom int) {
	e := New(nil, Options{})
	e.md5.simdFrom = simdFrom
	const size, rs = 3<<20 + 5, 700<<10 + 3
	data := make([]byte, size)
	rand.Read(data)
	sum := md5.Sum(data)
	want := hex.EncodeToString(sum[:])
	for round := range 20 {
		f, err := os.Create(filepath.Join(t.TempDir(), "f"))
		if err != nil {
			t.Fatal(err)
		}
		corrupt := round%4 == 3
		h, done := e.md5.get()
		sh := newSeqHash(f, size, rs, h)
		n := parts(size, rs)
		var wg sync.WaitGroup
		rng := mrand.New(mrand.NewPCG(uint64(round), 1))
		seeds := make([]uint64, n)
		for i := range seeds {
			seeds[i] = rng.Uint64()
		}
		bad := int64(rng.IntN(size))
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := mrand.New(mrand.NewPCG(seeds[i], 2))
				off, length := span(i, size, rs)
				for end := off + length; off < end; {
					m := min(int64(1+r.IntN(300<<10)), end-off)
					p := append([]byte(nil), data[off:off+m]...)
					if corrupt && bad >= off && bad < off+m {
						p[bad-off] ^= 1
					}
					if _, err := f.WriteAt(p, off); err != nil {
						t.Error(err)
						return
					}
					sh.wrote(i, off+m, p)
					off += m
				}
				if err := sh.catchUp(context.Background(), e); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if err := sh.catchUp(context.Background(), e); err != nil {
			t.Fatal(err)
		}
		err = sh.check(want)
		done()
		f.Close()
		if corrupt != errors.Is(err, ErrMismatch) || !corrupt && err != nil {
			t.Fatalf("round %d (corrupt=%v): check = %v", round, corrupt, err)
		}
	}
}
