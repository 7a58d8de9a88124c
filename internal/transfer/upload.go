package transfer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
)

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
//
// Invariant 2 (no torn objects, docs/invariants.md) is kept here: the file's
// size and modification time are taken when it is opened and checked again
// before the object becomes visible — before the last bytes of a single PUT
// are handed to the connection, before CompleteMultipartUpload — and a change
// fails the upload with ErrChanged, leaving the old object in place. Bodies
// are read straight from the file (io.SectionReader), so an upload holds no
// buffer of its own.
func (e *Engine) Upload(ctx context.Context, in UploadInput, progress ProgressFunc) error {
	f, err := os.Open(in.Path)
	if err != nil {
		return fmt.Errorf("upload %s: %w", in.Path, err)
	}
	defer f.Close()
	snap, err := snapshot(f)
	if err != nil {
		return fmt.Errorf("upload %s: %w", in.Path, err)
	}
	if snap.size != in.Size {
		return fmt.Errorf("upload %s: %w: it had %d bytes when listed and has %d now", in.Path, ErrChanged, in.Size, snap.size)
	}
	check := func() error {
		now, err := snapshot(f)
		if err != nil {
			return fmt.Errorf("upload %s: %w", in.Path, err)
		}
		if now != snap {
			return fmt.Errorf("upload %s: %w (size %d → %d, modified %s → %s)", in.Path, ErrChanged,
				snap.size, now.size, snap.mtime.Format(time.RFC3339Nano), now.mtime.Format(time.RFC3339Nano))
		}
		return nil
	}
	if in.Size < e.opts.MultipartThreshold || in.Size <= e.PartSize(in.Size) {
		return e.putObject(ctx, f, in, check, progress)
	}
	return e.multipartUpload(ctx, f, in, check, progress)
}

// fileState is what Upload compares to notice a file changing under it.
type fileState struct {
	size  int64
	mtime time.Time
}

func snapshot(f *os.File) (fileState, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileState{}, err
	}
	if !fi.Mode().IsRegular() {
		return fileState{}, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return fileState{fi.Size(), fi.ModTime()}, nil
}

func (e *Engine) putObject(ctx context.Context, f *os.File, in UploadInput, check func() error, progress ProgressFunc) error {
	body := &fileBody{sr: io.NewSectionReader(f, 0, in.Size), size: in.Size, progress: progress, beforeLast: check}
	if in.Size == 0 {
		if err := check(); err != nil {
			return err
		}
	}
	if err := e.acquire(ctx); err != nil {
		return err
	}
	_, err := e.client.S3.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        aws.String(in.Bucket),
		Key:           aws.String(in.Key),
		Body:          body,
		ContentLength: aws.Int64(in.Size),
		ContentType:   optString(in.ContentType),
		Metadata:      in.Metadata,
	})
	e.release()
	if err != nil {
		if errors.Is(err, ErrChanged) {
			// The body refused its last bytes: the PUT never completed.
			var ce changedError
			if errors.As(err, &ce) {
				return ce.err
			}
			return err
		}
		return e.client.Explain(err, "upload", in.Bucket, in.Key)
	}
	return nil
}

func (e *Engine) multipartUpload(ctx context.Context, f *os.File, in UploadInput, check func() error, progress ProgressFunc) (err error) {
	if err := e.acquire(ctx); err != nil {
		return err
	}
	created, err := e.client.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:      aws.String(in.Bucket),
		Key:         aws.String(in.Key),
		ContentType: optString(in.ContentType),
		Metadata:    in.Metadata,
	})
	e.release()
	if err != nil {
		return e.client.Explain(err, "upload", in.Bucket, in.Key)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			e.abort(in.Bucket, in.Key, uploadID)
		}
	}()

	ps := e.PartSize(in.Size)
	n := parts(in.Size, ps)
	etags := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.Concurrency)
	for i := 0; i < n && gctx.Err() == nil; i++ {
		g.Go(func() error {
			off, length := span(i, in.Size, ps)
			body := &fileBody{sr: io.NewSectionReader(f, off, length), size: length, progress: progress}
			if err := e.acquire(gctx); err != nil {
				return err
			}
			out, err := e.client.S3.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:        aws.String(in.Bucket),
				Key:           aws.String(in.Key),
				UploadId:      uploadID,
				PartNumber:    aws.Int32(int32(i + 1)),
				Body:          body,
				ContentLength: aws.Int64(length),
			})
			e.release()
			if err != nil {
				return fmt.Errorf("part %d of %d: %w", i+1, n, e.client.Explain(err, "upload", in.Bucket, in.Key))
			}
			etags[i] = aws.ToString(out.ETag)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := check(); err != nil {
		return err
	}
	if err := e.complete(ctx, in.Bucket, in.Key, uploadID, etags); err != nil {
		return e.client.Explain(err, "upload", in.Bucket, in.Key)
	}
	return nil
}

// complete finishes a multipart upload whose part i+1 has ETag etags[i],
// under one request slot. Errors are the SDK's, for the caller to explain.
func (e *Engine) complete(ctx context.Context, bucket, key string, uploadID *string, etags []string) error {
	completed := make([]types.CompletedPart, len(etags))
	for i, et := range etags {
		completed[i] = types.CompletedPart{ETag: aws.String(et), PartNumber: aws.Int32(int32(i + 1))}
	}
	if err := e.acquire(ctx); err != nil {
		return err
	}
	defer e.release()
	_, err := e.client.S3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	return err
}

// abort cancels a multipart upload so its parts do not linger (and cost)
// in the bucket. It runs on a fresh context: the caller's may be cancelled.
func (e *Engine) abort(bucket, key string, uploadID *string) {
	ctx, cancel := cleanupContext()
	defer cancel()
	// A failure here leaves parts behind, which a bucket lifecycle rule
	// (AbortIncompleteMultipartUpload) removes; the upload already failed
	// with the error that matters.
	e.client.S3.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: uploadID,
	})
}

// fileBody is a request body read straight from the file. It reports
// progress as the transport reads it, counting each byte once even when
// the SDK rewinds it for a retry (or reads it twice to sign it), and can
// check the file before handing out its last bytes.
type fileBody struct {
	sr         *io.SectionReader
	size       int64
	pos        int64
	reported   int64 // high-water mark of bytes passed to progress
	progress   ProgressFunc
	beforeLast func() error
}

// changedError carries ErrChanged through the SDK, which wraps body errors.
type changedError struct{ err error }

func (c changedError) Error() string { return c.err.Error() }
func (c changedError) Unwrap() error { return c.err }

func (b *fileBody) Read(p []byte) (int, error) {
	if b.beforeLast != nil && b.pos < b.size && b.pos+int64(len(p)) >= b.size {
		if err := b.beforeLast(); err != nil {
			return 0, changedError{err}
		}
	}
	n, err := b.sr.Read(p)
	b.pos += int64(n)
	if b.pos > b.reported {
		b.progress.add(b.pos - b.reported)
		b.reported = b.pos
	}
	return n, err
}

func (b *fileBody) Seek(offset int64, whence int) (int64, error) {
	pos, err := b.sr.Seek(offset, whence)
	if err == nil {
		b.pos = pos
	}
	return pos, err
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}
