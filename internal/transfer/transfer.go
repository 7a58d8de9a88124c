// Package transfer moves bytes between local files and S3: parallel multipart
// uploads, parallel ranged downloads written in place, server-side copies.
// One Engine is shared by a whole command so that every request draws on one
// connection pool and one bound of concurrent requests; memory is bounded by
// that concurrency times the per-request buffer (plus one read-back buffer
// per file whose ranges are being hashed, see seqHash), never by file size
// or count.
//
// The one bound: every S3 request an Engine sends (a PUT, a part, a ranged
// GET, a copy, a complete, a batch delete) first takes one slot of a weighted
// semaphore of Options.Concurrency slots and gives it back when the request,
// body included, is done. A goroutine never holds a slot while it waits for
// another, so callers may run any number of Upload/Download/Copy calls at once
// without deadlock; the per-file fan-out is itself limited to Concurrency
// goroutines, so goroutines are bounded by (files in flight × Concurrency).
// Only AbortMultipartUpload, which is cleanup after a failure, runs outside
// the bound so that a cancelled command never waits for a slot to clean up.
//
// Verification: a download whose ETag is a plain MD5 is hashed as it lands.
// When at least 3 such MD5s are in flight on the Engine, a new one goes
// into a lane of the Engine's md5simd server (github.com/minio/md5-simd: up
// to 16 MD5s side by side in AVX-512 lanes of one core, 8 with AVX2), which
// costs a mixed download about a third of its CPU less than crypto/md5; a
// lone MD5 stays on crypto/md5, which is faster for one stream (md5.go has
// the numbers). The server is one goroutine, started by the first hasher
// handed out and stopped when the last comes back, so an Engine needs no
// Close; at most 32 hashers are made on it and reused, which bounds its
// memory (~1.5 MiB of block buffers) whatever the file count.
package transfer

import (
	"context"
	"errors"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// Defaults and S3's multipart limits.
//
// Measured on the project's 2-core VM against a loopback MinIO (which
// shared the machine with other benchmarks, hence the ranges), with
// FERRY_BENCH_PARTS=8,16,32 FERRY_BENCH_CONC=8,16 go test ./internal/transfer
// -run '^$' -bench 'Transfer/(up|down)/512MiB' -benchtime 4x -count 2:
//
// Download of 512 MiB: 1.1–1.6 GB/s for every part size 8–32 MiB and
// concurrency 8–16, i.e. MinIO's GET ceiling. ferry spends 0.56–0.69 CPU-ns
// per byte, almost all in the socket read and pwrite syscalls (-cpuprofile);
// a bigger copy buffer would not change that.
//
// Upload of 512 MiB: 0.3–0.5 GB/s. ferry spends 0.45–0.62 CPU-ns per byte
// (pread into the connection's write buffer, socket write); the rest of the
// two cores is MinIO, the bottleneck. 32 MiB parts cost about 20% less CPU
// per byte and were steadiest (~0.5 GB/s) against 0.3–0.46 GB/s with 8 MiB
// parts; concurrency above 8 gains nothing.
//
// 1000 files of 64 KiB, 16 files at once: upload ~37 MB/s (570 files/s),
// download ~75 MB/s (1200 files/s). Per downloaded file, creating the
// temporary file costs ~0.4 ms of kernel CPU on this ext4 and the inline
// MD5 ~0.09 ms; the SDK's per-request overhead is ~0.1 ms.
//
// The defaults stay at the aws CLI's 8 MiB and the project's 16 requests
// (same part boundaries and ETags as aws s3); --part-size 32MiB is the
// faster choice for large uploads on a machine this small.
const (
	DefaultConcurrency = 16
	DefaultPartSize    = 8 << 20
	// MinPartSize is S3's smallest part (all but the last).
	MinPartSize = 5 << 20
	// MaxParts is S3's largest part count of one multipart upload.
	MaxParts = 10000
	// MaxPartSize is S3's largest part and largest single CopyObject.
	MaxPartSize = 5 << 30
	// bufSize is the copy buffer of one in-flight download request.
	bufSize = 256 << 10
)

// Download shape (see Download). Measured with BenchmarkMixedDownload and
// BenchmarkTransfer; the numbers are in docs/benchmarks.md.
const (
	// rangesPerFile bounds the ranged GETs of one file in flight at once:
	// concurrent buffered writes into one file contend on the inode's lock
	// in the kernel, and a sync spreads its concurrency across files anyway.
	rangesPerFile = 4
	// maxRangeSize caps a download range. Ranges are the file divided by
	// rangesPerFile, at least PartSize: fewer, larger GETs cost the server
	// less CPU per byte, and on a small machine its CPU is the client's.
	maxRangeSize = 64 << 20
	// wholeMD5Max: an object whose listed ETag is a plain MD5 (a single PUT)
	// and is at most this large comes in one GET, hashed inline as it
	// streams, rather than in ranges.
	wholeMD5Max = 64 << 20
)

// ErrChanged reports that a local file changed (size or modification time)
// while it was being uploaded, or no longer has the size the caller
// planned with. The object is left as it was before the upload.
var ErrChanged = errors.New("file changed while it was uploaded")

// ErrMismatch reports that downloaded content failed verification: its size,
// its MD5 against a single-part ETag, or a checksum the server sent. The
// destination file is left as it was before the download.
var ErrMismatch = errors.New("downloaded content does not match the object")

// Options are the engine's knobs (flags --concurrency, --part-size,
// --multipart-threshold).
type Options struct {
	// Concurrency bounds the requests in flight at once across all files
	// (default 16).
	Concurrency int
	// PartSize is the multipart part size and the smallest download range
	// (ranges are a quarter of the object, up to 64 MiB); it grows for large
	// files so no upload needs more than 10,000 parts (min 5 MiB).
	PartSize int64
	// MultipartThreshold: files at least this large are uploaded in parts
	// and downloaded in parallel ranges, except single-part objects up to
	// 64 MiB, which come in one GET (default = PartSize).
	MultipartThreshold int64
}

// ProgressFunc receives byte counts as they are transferred; it may be called
// from many goroutines and must be cheap. It may be nil.
type ProgressFunc func(n int64)

func (p ProgressFunc) add(n int64) {
	if p != nil && n != 0 {
		p(n)
	}
}

// Engine performs transfers. It is safe for concurrent use.
type Engine struct {
	client *s3x.Client
	opts   Options
	slots  *semaphore.Weighted
	bufs   *sync.Pool // *[]byte of bufSize

	// The download shape; constants but for tests and benchmarks.
	rangesPerFile int
	maxRange      int64
	wholeMD5Max   int64

	md5 *md5Hashers // the MD5s that verify downloads (see md5.go)
}

// New returns an Engine on client with opts (zero fields take defaults).
func New(client *s3x.Client, opts Options) *Engine {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.PartSize <= 0 {
		opts.PartSize = DefaultPartSize
	}
	if opts.PartSize < MinPartSize {
		opts.PartSize = MinPartSize
	}
	if opts.PartSize > MaxPartSize {
		opts.PartSize = MaxPartSize
	}
	if opts.MultipartThreshold <= 0 {
		opts.MultipartThreshold = opts.PartSize
	}
	e := &Engine{client: client, opts: opts, slots: semaphore.NewWeighted(int64(opts.Concurrency)),
		rangesPerFile: rangesPerFile, maxRange: maxRangeSize, wholeMD5Max: wholeMD5Max,
		bufs: &sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }},
		md5:  &md5Hashers{simdFrom: simdMD5From}}
	return e
}

// With returns an engine that makes its requests with client (another
// Access of the same S3 client: s3x.Client.For) and shares everything else
// with e: the bound on requests in flight, the buffers, the MD5 hashers.
func (e *Engine) With(client *s3x.Client) *Engine {
	if client == e.client {
		return e
	}
	v := *e
	v.client = client
	return &v
}

// Options returns the options in effect, defaults filled in.
func (e *Engine) Options() Options { return e.opts }

// PartSize returns the part size used for an object of size bytes: at least
// Options.PartSize, grown to a whole MiB so that no more than MaxParts parts
// are needed.
func (e *Engine) PartSize(size int64) int64 {
	ps := e.opts.PartSize
	if size > ps*MaxParts {
		ps = (size + MaxParts - 1) / MaxParts
		ps = (ps + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return ps
}

// acquire takes one request slot; release gives it back.
func (e *Engine) acquire(ctx context.Context) error { return e.slots.Acquire(ctx, 1) }
func (e *Engine) release()                          { e.slots.Release(1) }

func (e *Engine) getBuf() *[]byte  { return e.bufs.Get().(*[]byte) }
func (e *Engine) putBuf(b *[]byte) { e.bufs.Put(b) }

// parts returns how many pieces of ps bytes cover size bytes.
func parts(size, ps int64) int {
	return int((size + ps - 1) / ps)
}

// span returns the offset and length of piece i; the last piece is shorter.
func span(i int, size, ps int64) (off, n int64) {
	off = int64(i) * ps
	return off, min(ps, size-off)
}

// cleanupContext is for requests that must run after ctx was cancelled
// (aborting a multipart upload).
func cleanupContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// loc names an object in errors.
func loc(bucket, key string) string { return "s3://" + bucket + "/" + key }
