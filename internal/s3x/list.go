package s3x

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Object is one entry of a listing.
type Object struct {
	Key          string
	Size         int64
	ETag         string // without quotes
	LastModified time.Time
	StorageClass string
	// Metadata is the object's user metadata (as HeadObjectOutput.Metadata)
	// when the listing carried it (ListOptions.WithMetadata on a store
	// that has the extension, listmeta.go); nil otherwise.
	Metadata map[string]string
}

// IsDirMarker reports whether the key is a "folder" object (ends in "/").
func (o Object) IsDirMarker() bool { return strings.HasSuffix(o.Key, "/") }

// ListOptions selects what List returns.
type ListOptions struct {
	Prefix    string
	Delimiter string // "" lists recursively
	// OnPrefix receives each common prefix when Delimiter is set.
	OnPrefix func(prefix string) error
	// Send, when set, sends each page's request: it calls page (again for
	// each retry) with the context and SDK options of that attempt, and
	// returns the page's final error. nil sends each page once, with the
	// client's own retryer. The importer bounds its listings through it
	// (a repository that does not answer).
	Send func(ctx context.Context, page func(context.Context, ...func(*s3.Options)) error) error
	// WithMetadata asks the store for each object's user metadata in the
	// listing (MinIO's extension; listmeta.go). Objects it comes with have
	// Object.Metadata set.
	WithMetadata bool
}

// List streams the objects under opts.Prefix to fn, one page at a time, in
// the store's key order (byte order of UTF-8 keys). Memory does not grow
// with the number of objects.
func (c *Client) List(ctx context.Context, bucket string, opts ListOptions, fn func(Object) error) error {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1000)}
	if opts.Prefix != "" {
		in.Prefix = aws.String(opts.Prefix)
	}
	if opts.Delimiter != "" {
		in.Delimiter = aws.String(opts.Delimiter)
	}
	p := s3.NewListObjectsV2Paginator(c.S3, in)
	send := opts.Send
	if send == nil {
		send = func(ctx context.Context, page func(context.Context, ...func(*s3.Options)) error) error {
			return page(ctx)
		}
	}
	for p.HasMorePages() {
		// A failed request leaves the paginator on the same page, so
		// page may be called again.
		var page *s3.ListObjectsV2Output
		var body []byte
		err := send(ctx, func(ctx context.Context, o ...func(*s3.Options)) (err error) {
			body = nil
			if opts.WithMetadata && !c.base.noListMeta.Load() {
				page, err = p.NextPage(ctx, append(o, withListMetadata(&body))...)
				if err == nil || !refusedListMetadata(err) {
					return err
				}
				c.base.noListMeta.Store(true) // a store without the extension that says so
			}
			page, err = p.NextPage(ctx, o...)
			return err
		})
		if err != nil {
			return c.Explain(err, "list", bucket, opts.Prefix)
		}
		var meta map[string]map[string]string
		if body != nil {
			meta = listMetadata(body)
		}
		// With a delimiter, objects and prefixes come as two sorted lists;
		// merge them so callers see one sorted stream.
		objs, prefixes := page.Contents, page.CommonPrefixes
		for len(objs) > 0 || len(prefixes) > 0 {
			if len(prefixes) > 0 && (len(objs) == 0 || aws.ToString(prefixes[0].Prefix) < aws.ToString(objs[0].Key)) {
				if opts.OnPrefix != nil {
					if err := opts.OnPrefix(aws.ToString(prefixes[0].Prefix)); err != nil {
						return err
					}
				}
				prefixes = prefixes[1:]
				continue
			}
			o := objs[0]
			objs = objs[1:]
			if err := fn(Object{
				Key:          aws.ToString(o.Key),
				Size:         aws.ToInt64(o.Size),
				ETag:         strings.Trim(aws.ToString(o.ETag), `"`),
				LastModified: aws.ToTime(o.LastModified),
				StorageClass: string(o.StorageClass),
				Metadata:     meta[aws.ToString(o.Key)],
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Head returns the object's listing fields from a HEAD request.
func (c *Client) Head(ctx context.Context, bucket, key string) (Object, error) {
	out, err := c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return Object{}, c.Explain(err, "head", bucket, key)
	}
	return Object{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         strings.Trim(aws.ToString(out.ETag), `"`),
		LastModified: aws.ToTime(out.LastModified),
		StorageClass: string(out.StorageClass),
	}, nil
}

// CheckBucket fails with an explained error when the bucket cannot be listed.
func (c *Client) CheckBucket(ctx context.Context, bucket string) error {
	_, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), MaxKeys: aws.Int32(1)})
	return c.Explain(err, "list", bucket, "")
}
