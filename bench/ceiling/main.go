// Command ceiling measures what an S3 endpoint serves to a lean client: N
// parallel PUTs and GETs of small objects, and multipart PUTs and ranged GETs
// of large objects, from memory to memory (no file system). bench/run.sh puts
// its numbers next to the sync tools' as the ceiling to approach.
//
//	go run ./bench/ceiling -endpoint http://127.0.0.1:9000 -bucket ceiling
//
// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Output is
// one markdown table row per measurement.
//
// With -purge BUCKET[/PREFIX] it instead deletes every object under the prefix
// (and, without a prefix, the bucket) and prints "OBJECTS BYTES" of what it
// deleted: bench/run.sh uses it to empty upload destinations between runs and
// to check that an upload left the whole tree.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

type opts struct {
	endpoint   string
	bucket     string
	smallCount int
	smallSize  int64
	smallConc  int
	largeCount int
	largeSize  int64
	partSize   int64
	largeConc  int
}

func main() {
	var o opts
	flag.StringVar(&o.endpoint, "endpoint", "", "S3 endpoint URL (required)")
	flag.StringVar(&o.bucket, "bucket", "ceiling", "bucket to use (created if missing)")
	flag.IntVar(&o.smallCount, "small-count", 2000, "number of small objects")
	flag.Int64Var(&o.smallSize, "small-size", 64<<10, "size of a small object in bytes")
	flag.IntVar(&o.smallConc, "small-concurrency", 32, "parallel requests for small objects")
	flag.IntVar(&o.largeCount, "large-count", 2, "number of large objects")
	flag.Int64Var(&o.largeSize, "large-size", 512<<20, "size of a large object in bytes")
	flag.Int64Var(&o.partSize, "part-size", 16<<20, "part size of multipart PUTs and ranged GETs")
	flag.IntVar(&o.largeConc, "large-concurrency", 8, "parallel part requests for large objects")
	purgeArg := flag.String("purge", "", "delete BUCKET[/PREFIX] and print \"OBJECTS BYTES\" instead of measuring")
	flag.Parse()
	if o.endpoint == "" {
		fmt.Fprintln(os.Stderr, "ceiling: -endpoint is required")
		os.Exit(2)
	}
	if *purgeArg != "" {
		if err := purge(context.Background(), o.endpoint, *purgeArg); err != nil {
			fmt.Fprintln(os.Stderr, "ceiling: purge:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func newClient(ctx context.Context, endpoint string, conns int) (*s3.Client, error) {
	hc := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 2 * conns
		tr.MaxIdleConnsPerHost = 2 * conns
	})
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(hc), config.WithRegion("us-east-1"))
	if err != nil {
		return nil, err
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		// No SHA-256 of every payload over plain HTTP: the ceiling is the
		// server's, not the client's hashing.
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	}), nil
}

func run(ctx context.Context, o opts) error {
	conc := max(o.smallConc, o.largeConc)
	c, err := newClient(ctx, o.endpoint, conc)
	if err != nil {
		return err
	}
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(o.bucket)}); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return fmt.Errorf("create bucket %s: %w", o.bucket, err)
		}
	}
	data := make([]byte, max(o.smallSize, o.partSize))
	_, _ = rand.NewChaCha8([32]byte{1}).Read(data)

	fmt.Println("| operation | object size | objects | parallel requests | seconds | requests/s | MB/s |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	row := func(op string, size int64, n, reqs, par int, el time.Duration) {
		s := el.Seconds()
		fmt.Printf("| %s | %s | %d | %d | %.2f | %.0f | %.0f |\n", op, human(size), n, par, s,
			float64(reqs)/s, float64(size)*float64(n)/s/1e6)
	}

	smallKey := func(i int) string { return fmt.Sprintf("small/%05d", i) }
	el, err := parallel(o.smallCount, o.smallConc, func(i int) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &o.bucket, Key: aws.String(smallKey(i)),
			Body: bytes.NewReader(data[:o.smallSize]), ContentLength: aws.Int64(o.smallSize)})
		return err
	})
	if err != nil {
		return fmt.Errorf("small PUT: %w", err)
	}
	row("PUT", o.smallSize, o.smallCount, o.smallCount, o.smallConc, el)
	el, err = parallel(o.smallCount, o.smallConc, func(i int) error {
		return get(ctx, c, o.bucket, smallKey(i), "")
	})
	if err != nil {
		return fmt.Errorf("small GET: %w", err)
	}
	row("GET", o.smallSize, o.smallCount, o.smallCount, o.smallConc, el)

	// Large objects: every part of every object is one job of the pool.
	parts := int((o.largeSize + o.partSize - 1) / o.partSize)
	largeKey := func(i int) string { return fmt.Sprintf("large/%03d", i) }
	uploads := make([]*string, o.largeCount)
	etags := make([][]types.CompletedPart, o.largeCount)
	start := time.Now()
	for i := range o.largeCount {
		out, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &o.bucket, Key: aws.String(largeKey(i))})
		if err != nil {
			return fmt.Errorf("large PUT: %w", err)
		}
		uploads[i] = out.UploadId
		etags[i] = make([]types.CompletedPart, parts)
	}
	_, err = parallel(o.largeCount*parts, o.largeConc, func(j int) error {
		i, p := j/parts, j%parts
		n := min(o.partSize, o.largeSize-int64(p)*o.partSize)
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: &o.bucket, Key: aws.String(largeKey(i)),
			UploadId: uploads[i], PartNumber: aws.Int32(int32(p + 1)),
			Body: bytes.NewReader(data[:n]), ContentLength: aws.Int64(n)})
		if err != nil {
			return err
		}
		etags[i][p] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(p + 1))}
		return nil
	})
	if err != nil {
		return fmt.Errorf("large PUT: %w", err)
	}
	for i := range o.largeCount {
		if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &o.bucket,
			Key: aws.String(largeKey(i)), UploadId: uploads[i],
			MultipartUpload: &types.CompletedMultipartUpload{Parts: etags[i]}}); err != nil {
			return fmt.Errorf("large PUT: %w", err)
		}
	}
	row("multipart PUT ("+human(o.partSize)+" parts)", o.largeSize, o.largeCount, o.largeCount*parts, o.largeConc, time.Since(start))
	el, err = parallel(o.largeCount*parts, o.largeConc, func(j int) error {
		i, p := j/parts, j%parts
		end := min(int64(p+1)*o.partSize, o.largeSize) - 1
		return get(ctx, c, o.bucket, largeKey(i), fmt.Sprintf("bytes=%d-%d", int64(p)*o.partSize, end))
	})
	if err != nil {
		return fmt.Errorf("large GET: %w", err)
	}
	row("ranged GET ("+human(o.partSize)+" ranges)", o.largeSize, o.largeCount, o.largeCount*parts, o.largeConc, el)
	return nil
}

// purge deletes every object under bucket/prefix, and the bucket itself when
// no prefix is given, and prints the count and total size of what it deleted.
func purge(ctx context.Context, endpoint, arg string) error {
	bucket, prefix, _ := strings.Cut(arg, "/")
	c, err := newClient(ctx, endpoint, 8)
	if err != nil {
		return err
	}
	var objects, size int64
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			var missing *types.NoSuchBucket
			if errors.As(err, &missing) {
				break
			}
			return err
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, 0, len(page.Contents))
		for _, o := range page.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
			objects++
			size += aws.ToInt64(o.Size)
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return err
		}
		if len(out.Errors) > 0 {
			return fmt.Errorf("delete %s: %s", aws.ToString(out.Errors[0].Key), aws.ToString(out.Errors[0].Message))
		}
	}
	if prefix == "" {
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
			var missing *types.NoSuchBucket
			if !errors.As(err, &missing) {
				return err
			}
		}
	}
	fmt.Println(objects, size)
	return nil
}

// get reads an object (or a range of it) and throws the bytes away.
func get(ctx context.Context, c *s3.Client, bucket, key, rng string) error {
	in := &s3.GetObjectInput{Bucket: &bucket, Key: &key}
	if rng != "" {
		in.Range = &rng
	}
	out, err := c.GetObject(ctx, in)
	if err != nil {
		return err
	}
	defer out.Body.Close()
	_, err = io.Copy(io.Discard, out.Body)
	return err
}

// parallel runs fn(0..n-1) on conc workers and returns the wall time and the
// first error.
func parallel(n, conc int, fn func(i int) error) (time.Duration, error) {
	var next atomic.Int64
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), first
}

func human(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}
