// Package transfer moves bytes between local files and S3: parallel multipart
// uploads, parallel ranged downloads written in place, server-side copies.
// One Engine is shared by a whole command so that every request draws on one
// connection pool and one bound of concurrent requests; memory is bounded by
// that concurrency times the per-request buffer, never by file size or count.
package transfer

import (
	"context"
	"time"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// Options are the engine's knobs (flags --concurrency, --part-size,
// --multipart-threshold).
type Options struct {
	// Concurrency bounds the requests in flight at once across all files
	// (default 16).
	Concurrency int
	// PartSize is the multipart part size and download range size; it grows
	// for large files so no upload needs more than 10,000 parts (min 5 MiB).
	PartSize int64
	// MultipartThreshold: files at least this large are uploaded in parts
	// and downloaded in parallel ranges (default = PartSize).
	MultipartThreshold int64
}

// ProgressFunc receives byte counts as they are transferred; it may be called
// from many goroutines and must be cheap. It may be nil.
type ProgressFunc func(n int64)

// Engine performs transfers. It is safe for concurrent use.
type Engine struct {
	client *s3x.Client
	opts   Options
}

// New returns an Engine on client with opts (zero fields take defaults).
func New(client *s3x.Client, opts Options) *Engine {
	panic("todo")
}

// UploadInput describes one upload.
type UploadInput struct {
	Path   string // local file
	Bucket string
	Key    string
	// Size and ModTime as the caller saw them when planning; the upload
	// fails with ErrChanged if the file no longer has this size.
	Size    int64
	ModTime time.Time
	// Metadata is sent as x-amz-meta-* headers; ContentType when set.
	Metadata    map[string]string
	ContentType string
}

// Upload copies a local file to an object, in parts when large. An
// interrupted or failed multipart upload is aborted.
func (e *Engine) Upload(ctx context.Context, in UploadInput, progress ProgressFunc) error {
	panic("todo")
}

// DownloadInput describes one download.
type DownloadInput struct {
	Bucket string
	Key    string
	// Object is the listing entry: Size is required; ETag, when set, is sent
	// as If-Match on every ranged GET and checked against the content (MD5
	// for single-part ETags); LastModified becomes the file's mtime.
	Object s3x.Object
	Path   string // final local path; parent directories are created
}

// Download copies an object to a local file. Data lands in a temporary file
// next to Path and is renamed over Path only when complete and verified, so
// an interrupted download never leaves a truncated file under the final name.
func (e *Engine) Download(ctx context.Context, in DownloadInput, progress ProgressFunc) error {
	panic("todo")
}

// CopyInput describes one server-side copy.
type CopyInput struct {
	SrcBucket, SrcKey string
	Object            s3x.Object // source listing entry (Size, ETag)
	DstBucket, DstKey string
}

// Copy copies an object within the store without moving its bytes through
// this machine (multipart UploadPartCopy for large objects).
func (e *Engine) Copy(ctx context.Context, in CopyInput, progress ProgressFunc) error {
	panic("todo")
}

// Delete removes objects, up to 1000 per request, and reports each key's
// outcome to done (err nil on success).
func (e *Engine) Delete(ctx context.Context, bucket string, keys []string, done func(key string, err error)) error {
	panic("todo")
}
