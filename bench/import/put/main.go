// Command put fills a bucket with many tiny objects for the sweep benchmark
// at 1,000,000 objects (bench/import/sweep.sh): object i is the one byte "x"
// under PREFIX dNN/fNNNNNNN (10,000 per directory, the layout of
// internal/importer's BenchmarkSweep), put -conc at a time. It prints its
// rate every -every objects, so a short run (-n 10000) measures what a long
// one will take. -from skips the first objects (resume after a stop: PUTs
// are idempotent, so starting a little early is harmless).
//
//	go run ./bench/import/put -endpoint http://127.0.0.1:9000 -bucket sweep \
//	    -prefix data/s/ -n 1000000 -conc 128 [-from 0] [-create]
//
// Credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

func main() {
	endpoint := flag.String("endpoint", "", "S3 endpoint URL (required)")
	bucket := flag.String("bucket", "", "bucket (required)")
	prefix := flag.String("prefix", "data/s/", "key prefix, ending in /")
	n := flag.Int("n", 10000, "objects: indexes [from, n)")
	from := flag.Int("from", 0, "first index to put (resume)")
	conc := flag.Int("conc", 128, "PUTs in flight")
	every := flag.Int("every", 10000, "print the rate every this many objects")
	create := flag.Bool("create", false, "create the bucket first (an existing one is fine)")
	flag.Parse()
	if *endpoint == "" || *bucket == "" {
		fmt.Fprintln(os.Stderr, "put: give -endpoint and -bucket")
		os.Exit(2)
	}
	if err := run(*endpoint, *bucket, *prefix, *from, *n, *conc, *every, *create); err != nil {
		fmt.Fprintln(os.Stderr, "put:", err)
		os.Exit(1)
	}
}

// Key is object i's key below prefix.
func Key(prefix string, i int) string { return fmt.Sprintf("%sd%02d/f%07d", prefix, i/10_000, i) }

func run(endpoint, bucket, prefix string, from, n, conc, every int, create bool) error {
	ctx := context.Background()
	c, err := s3x.New(ctx, s3x.Config{EndpointURL: endpoint, MaxConns: conc})
	if err != nil {
		return err
	}
	if create {
		_, err := c.S3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
		var owned *types.BucketAlreadyOwnedByYou
		if err != nil && !errors.As(err, &owned) {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
	}
	var next, done atomic.Int64
	next.Store(int64(from))
	t0 := time.Now()
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				_, err := c.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket),
					Key: aws.String(Key(prefix, i)), Body: bytes.NewReader([]byte("x"))})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("put %s: %w", Key(prefix, i), err)
					}
					mu.Unlock()
					next.Store(int64(n))
					return
				}
				if d := done.Add(1); d%int64(every) == 0 {
					el := time.Since(t0).Seconds()
					fmt.Printf("%s\t%d done (up to ~%d)\t%.0f s\t%.0f objects/s\n",
						time.Now().Format("15:04:05"), d, from+int(d), el, float64(d)/el)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0).Seconds()
	fmt.Printf("total\t%d objects\t%.1f s\t%.0f objects/s\tconc %d\n", done.Load(), el, float64(done.Load())/el, conc)
	return firstErr
}
