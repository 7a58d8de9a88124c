package transfer

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// CopyInput describes one server-side copy.
type CopyInput struct {
	SrcBucket, SrcKey string
	Object            s3x.Object // source listing entry (Size, ETag)
	DstBucket, DstKey string
}

// Copy copies an object within the store without moving its bytes through
// this machine (multipart UploadPartCopy for large objects).
//
// Objects below the multipart threshold (and any that fit one part) take
// one CopyObject with MetadataDirective COPY. Larger ones — and every
// object over 5 GiB, CopyObject's limit — are copied in parallel parts;
// the source's metadata and content headers are read with a HEAD and set
// on the new upload, so both paths keep them. Every request carries
// x-amz-copy-source-if-match with the source ETag, so a source that
// changes meanwhile fails the copy instead of producing a mixed object.
func (e *Engine) Copy(ctx context.Context, in CopyInput, progress ProgressFunc) error {
	size := in.Object.Size
	if size <= MaxPartSize && (size < e.opts.MultipartThreshold || parts(size, e.PartSize(size)) < 2) {
		return e.copyObject(ctx, in, progress)
	}
	return e.multipartCopy(ctx, in, progress)
}

// copySource is the x-amz-copy-source value: bucket/key, URL-encoded.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return bucket + "/" + strings.Join(segs, "/")
}

func (e *Engine) copyObject(ctx context.Context, in CopyInput, progress ProgressFunc) error {
	if err := e.acquire(ctx); err != nil {
		return err
	}
	_, err := e.client.S3.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(in.DstBucket),
		Key:               aws.String(in.DstKey),
		CopySource:        aws.String(copySource(in.SrcBucket, in.SrcKey)),
		CopySourceIfMatch: optString(in.Object.ETag),
		MetadataDirective: types.MetadataDirectiveCopy,
	})
	e.release()
	if err != nil {
		return e.explainCopy(err, in)
	}
	progress.add(in.Object.Size)
	return nil
}

// explainCopy names the source when the source is what failed.
func (e *Engine) explainCopy(err error, in CopyInput) error {
	switch s3x.CodeOf(err) {
	case "NoSuchKey", "PreconditionFailed":
		return e.client.Explain(err, "copy", in.SrcBucket, in.SrcKey)
	}
	return fmt.Errorf("copy %s: %w", loc(in.SrcBucket, in.SrcKey), e.client.Explain(err, "copy", in.DstBucket, in.DstKey))
}

func (e *Engine) multipartCopy(ctx context.Context, in CopyInput, progress ProgressFunc) (err error) {
	if err := e.acquire(ctx); err != nil {
		return err
	}
	head, err := e.client.S3.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:  aws.String(in.SrcBucket),
		Key:     aws.String(in.SrcKey),
		IfMatch: optString(in.Object.ETag),
	})
	e.release()
	if err != nil {
		return e.client.Explain(err, "copy", in.SrcBucket, in.SrcKey)
	}
	size := aws.ToInt64(head.ContentLength)
	if size != in.Object.Size {
		return fmt.Errorf("copy %s: the object has %d bytes, the listing said %d (it changed; run again)",
			loc(in.SrcBucket, in.SrcKey), size, in.Object.Size)
	}
	etag := in.Object.ETag
	if etag == "" {
		etag = strings.Trim(aws.ToString(head.ETag), `"`)
	}

	if err := e.acquire(ctx); err != nil {
		return err
	}
	created, err := e.client.S3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:             aws.String(in.DstBucket),
		Key:                aws.String(in.DstKey),
		Metadata:           head.Metadata,
		ContentType:        head.ContentType,
		CacheControl:       head.CacheControl,
		ContentDisposition: head.ContentDisposition,
		ContentEncoding:    head.ContentEncoding,
		ContentLanguage:    head.ContentLanguage,
	})
	e.release()
	if err != nil {
		return e.explainCopy(err, in)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			e.abort(in.DstBucket, in.DstKey, uploadID)
		}
	}()

	src := aws.String(copySource(in.SrcBucket, in.SrcKey))
	ps := e.PartSize(size)
	n := parts(size, ps)
	etags := make([]string, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.Concurrency)
	for i := 0; i < n && gctx.Err() == nil; i++ {
		g.Go(func() error {
			off, length := span(i, size, ps)
			if err := e.acquire(gctx); err != nil {
				return err
			}
			out, err := e.client.S3.UploadPartCopy(gctx, &s3.UploadPartCopyInput{
				Bucket:            aws.String(in.DstBucket),
				Key:               aws.String(in.DstKey),
				UploadId:          uploadID,
				PartNumber:        aws.Int32(int32(i + 1)),
				CopySource:        src,
				CopySourceIfMatch: aws.String(etag),
				CopySourceRange:   aws.String("bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(off+length-1, 10)),
			})
			e.release()
			if err != nil {
				return fmt.Errorf("part %d of %d: %w", i+1, n, e.explainCopy(err, in))
			}
			if out.CopyPartResult == nil {
				return fmt.Errorf("copy %s part %d: the server returned no part ETag", loc(in.DstBucket, in.DstKey), i+1)
			}
			etags[i] = aws.ToString(out.CopyPartResult.ETag)
			progress.add(length)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := e.complete(ctx, in.DstBucket, in.DstKey, uploadID, etags); err != nil {
		return e.explainCopy(err, in)
	}
	return nil
}
