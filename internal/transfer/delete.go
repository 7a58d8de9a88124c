package transfer

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// MaxDeleteBatch is the most keys one DeleteObjects request may name.
const MaxDeleteBatch = 1000

// Delete removes objects, up to 1000 per request, and reports each key's
// outcome to done (err nil on success).
//
// Batches run in parallel under the engine's bound; done is called from
// one goroutine at a time. When a whole request fails (network, access to
// the bucket) Delete returns the first such error and done is not called
// for that request's keys; the other batches still run and report.
func (e *Engine) Delete(ctx context.Context, bucket string, keys []string, done func(key string, err error)) error {
	var mu sync.Mutex
	report := func(key string, err error) {
		mu.Lock()
		defer mu.Unlock()
		done(key, err)
	}
	var g errgroup.Group
	g.SetLimit(e.opts.Concurrency)
	for start := 0; start < len(keys); start += MaxDeleteBatch {
		batch := keys[start:min(start+MaxDeleteBatch, len(keys))]
		g.Go(func() error { return e.deleteBatch(ctx, bucket, batch, report) })
	}
	return g.Wait()
}

func (e *Engine) deleteBatch(ctx context.Context, bucket string, keys []string, report func(string, error)) error {
	objs := make([]types.ObjectIdentifier, len(keys))
	for i, k := range keys {
		objs[i] = types.ObjectIdentifier{Key: aws.String(k)}
	}
	if err := e.acquire(ctx); err != nil {
		return err
	}
	out, err := e.client.S3.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(bucket),
		Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(false)},
	})
	e.release()
	if err != nil {
		return e.client.Explain(err, "delete", bucket, "")
	}
	// A key may be named twice in a batch; count what is owed to each.
	owed := make(map[string]int, len(keys))
	for _, k := range keys {
		owed[k]++
	}
	settle := func(key string, err error) {
		if owed[key] > 0 {
			owed[key]--
			report(key, err)
		}
	}
	for _, d := range out.Deleted {
		settle(aws.ToString(d.Key), nil)
	}
	for _, f := range out.Errors {
		code, msg := aws.ToString(f.Code), aws.ToString(f.Message)
		settle(aws.ToString(f.Key), &s3x.Error{Code: code, Message: code + ": " + msg})
	}
	// A key the response leaves out (MinIO does so for some names it
	// refuses) is deleted on its own, so its own answer is reported.
	for _, k := range keys {
		for owed[k] > 0 {
			owed[k]--
			report(k, e.deleteOne(ctx, bucket, k))
		}
	}
	return nil
}

// deleteOne removes one object with DeleteObject (nil also when there was
// none: S3 answers success).
func (e *Engine) deleteOne(ctx context.Context, bucket, key string) error {
	if err := e.acquire(ctx); err != nil {
		return err
	}
	defer e.release()
	_, err := e.client.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return fmt.Errorf("%w: %w", errNoResult, e.client.Explain(err, "delete", bucket, key))
	}
	return nil
}

var errNoResult = errors.New("the server's DeleteObjects response has no result for this key")
