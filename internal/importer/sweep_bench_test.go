package importer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// BenchmarkSweep measures one import sweep of an association whose
// directories were all listed and whose bucket did not change (the
// steady state: every object compared, no hint): its time unpaced
// (PagesPerSecond -1), its LIST requests, and the peak of the Go heap
// (live and garbage) during the sweep above the heap before it. The
// objects are FERRY_SWEEP_OBJECTS (default 100,000) one-byte objects,
// data/s/dNN/fNNNNNNN, 10,000 per directory; the local side is made from
// a listing (stubs with the objects' ETags, every directory recorded
// listed), not by HEADs. "spill" sorts each directory through the spill
// file (MemEntries 4,096).
//
//	FERRY_SWEEP_OBJECTS=100000 go test -run '^$' -bench Sweep -benchtime 3x -timeout 60m ./internal/importer
func BenchmarkSweep(b *testing.B) {
	n := 100_000
	if s := os.Getenv("FERRY_SWEEP_OBJECTS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n <= 0 {
			b.Fatalf("FERRY_SWEEP_OBJECTS=%q: give a positive number of objects", s)
		}
	}
	e := newEnv(b, Config{})
	e.policy(e.im, allEvents...)
	t0 := time.Now()
	putSweepObjects(b, e.cfg.S3, e.bucket, n)
	b.Logf("put %d objects in %v", n, time.Since(t0).Round(time.Second))
	t0 = time.Now()
	makeListedTree(b, e, n)
	b.Logf("local tree of %d stubs in %v", n, time.Since(t0).Round(time.Second))
	for _, c := range []struct {
		name string
		mem  int
	}{{"memory", 0}, {"spill", 4096}} {
		b.Run(c.name, func(b *testing.B) {
			a, ap, sw := e.sweeper(SweepConfig{PagesPerSecond: -1, MemEntries: c.mem})
			_ = ap
			var peak, lists, objs int64
			b.ResetTimer()
			for range b.N {
				runtime.GC()
				base := heapBytes()
				stop := samplePeak(&peak, base)
				res, err := sw.SweepOnce(context.Background(), a)
				stop()
				if err != nil {
					b.Fatal(err)
				}
				if res.Hints() != 0 || res.Objects != int64(n) || res.LocalFiles != int64(n) {
					b.Fatalf("sweep: %+v", res)
				}
				lists, objs = res.ListRequests, res.Objects
			}
			b.StopTimer()
			per := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(per, "s/sweep")
			b.ReportMetric(float64(objs)/per, "objects/s")
			b.ReportMetric(float64(lists), "LIST/sweep")
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
		})
	}
}

// putSweepObjects puts the benchmark's objects, 32 at a time.
func putSweepObjects(b *testing.B, c *s3x.Client, bucket string, n int) {
	var g errgroup.Group
	g.SetLimit(32)
	for i := range n {
		g.Go(func() error {
			_, err := c.S3.PutObject(context.Background(), &s3.PutObjectInput{
				Bucket: aws.String(bucket), Key: aws.String(sweepKey(i)), Body: bytes.NewReader([]byte("x")),
			})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}

func sweepKey(i int) string { return fmt.Sprintf("data/s/d%02d/f%07d", i/10_000, i) }

// makeListedTree makes the local side of a full import from a flat
// listing: a stub per object with its ETag and size, every directory
// recorded listed.
func makeListedTree(b *testing.B, e *env, n int) {
	ctx := context.Background()
	dirs := map[string]bool{"ExtData": true}
	mark := func(rel string) {
		for ; rel != "ExtData" && !dirs[rel]; rel = path.Dir(rel) {
			dirs[rel] = true
		}
	}
	count := 0
	err := e.cfg.S3.List(ctx, e.bucket, s3x.ListOptions{Prefix: "data/"}, func(o s3x.Object) error {
		sub, _, err := keypath.ToPath("data/", o.Key)
		if err != nil {
			return err
		}
		rel := "ExtData/" + sub
		if !dirs[path.Dir(rel)] {
			if err := e.st.MkdirAll(path.Dir(rel), 0o755); err != nil {
				return err
			}
			mark(path.Dir(rel))
		}
		count++
		return e.st.CreateStub(rel, store.Stub{Size: o.Size, Mode: 0o644, Mtime: o.LastModified, Atime: o.LastModified,
			ETag: `"` + o.ETag + `"`, Flags: hsm.Imported(), ChunkSize: DefaultChunkSize})
	})
	if err != nil {
		b.Fatal(err)
	}
	if count != n {
		b.Fatalf("%d objects listed, want %d", count, n)
	}
	var ls []catalog.ListedDir
	for d := range dirs {
		ls = append(ls, catalog.ListedDir{Path: d, ListedAt: time.Now()})
	}
	if err := e.cat.MarkListed(ctx, ls...); err != nil {
		b.Fatal(err)
	}
}

var heapSample = []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}

func heapBytes() int64 {
	metrics.Read(heapSample)
	return int64(heapSample[0].Value.Uint64())
}

// samplePeak records in peak the largest heap above base seen every
// millisecond until stop is called.
func samplePeak(peak *int64, base int64) (stop func()) {
	var done atomic.Bool
	fin := make(chan struct{})
	go func() {
		defer close(fin)
		for !done.Load() {
			if d := heapBytes() - base; d > atomic.LoadInt64(peak) {
				atomic.StoreInt64(peak, d)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	return func() { done.Store(true); <-fin }
}
