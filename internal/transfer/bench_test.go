package transfer

import (
	"context"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// benchGrid reads a comma-separated list of integers from an environment
// variable, e.g. FERRY_BENCH_PARTS=5,8,16 (MiB) FERRY_BENCH_CONC=4,16.
func benchGrid(name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

// cpuMeter reports the process's CPU time (user+sys) per byte moved, a
// measure that, unlike MB/s, holds when other processes share the machine.
func cpuMeter(b *testing.B) (report func(bytes int64)) {
	start := cpuTime()
	return func(bytes int64) {
		if bytes > 0 {
			b.ReportMetric(float64(cpuTime()-start)/float64(bytes), "cpu-ns/B")
		}
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTransfer measures upload and download throughput against the
// shared MinIO for one large file and for many small files, over a grid of
// part sizes (MiB) and concurrencies. Small files run Concurrency files at
// once, as the sync command does.
//
//	go test ./internal/transfer -run '^$' -bench Transfer -benchtime 3x
//	FERRY_BENCH_PARTS=5,8,16,32 FERRY_BENCH_CONC=4,8,16,32 go test ...
func BenchmarkTransfer(b *testing.B) {
	m := testutil.SharedMinIO(b)
	c := m.Client(b)
	bucket := m.Bucket(b)
	dir := b.TempDir()
	bigMiB := int64(benchGrid("FERRY_BENCH_BIG_MIB", []int{512})[0])
	big := filepath.Join(dir, "big")
	writeRandom(b, big, bigMiB*mib)
	const smallN, smallSize = 1000, 64 << 10
	smallDir := filepath.Join(dir, "small")
	for i := range smallN {
		writeRandom(b, filepath.Join(smallDir, fmt.Sprintf("f%04d", i)), smallSize)
	}
	for _, ps := range benchGrid("FERRY_BENCH_PARTS", []int{8}) {
		for _, conc := range benchGrid("FERRY_BENCH_CONC", []int{16}) {
			e := New(c, Options{PartSize: int64(ps) * mib, Concurrency: conc})
			name := fmt.Sprintf("ps=%dMiB/c=%d", ps, conc)
			key := "big-" + name
			b.Run(fmt.Sprintf("up/%dMiB/%s", bigMiB, name), func(b *testing.B) {
				b.SetBytes(bigMiB * mib)
				defer cpuMeter(b)(int64(b.N) * bigMiB * mib)
				for range b.N {
					if err := e.Upload(context.Background(), UploadInput{Path: big, Bucket: bucket, Key: key, Size: bigMiB * mib}, nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("down/%dMiB/%s", bigMiB, name), func(b *testing.B) {
				obj, err := c.Head(context.Background(), bucket, key)
				if err != nil { // the upload benchmark did not run
					if err := e.Upload(context.Background(), UploadInput{Path: big, Bucket: bucket, Key: key, Size: bigMiB * mib}, nil); err != nil {
						b.Fatal(err)
					}
					obj = head(b, c, bucket, key)
				}
				b.ResetTimer()
				b.SetBytes(bigMiB * mib)
				defer cpuMeter(b)(int64(b.N) * bigMiB * mib)
				for i := range b.N {
					dst := filepath.Join(dir, fmt.Sprint("down", i))
					if err := e.Download(context.Background(), DownloadInput{Bucket: bucket, Key: key, Object: obj, Path: dst}, nil); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					os.Remove(dst)
					b.StartTimer()
				}
			})
			// One single-part object: its ETag is an MD5, checked in
			// offset order as its ranges land (seqHash), the lone MD5 in
			// flight; FERRY_BENCH_SIMD_FROM=0,1 compares crypto/md5 with
			// a SIMD lane.
			b.Run(fmt.Sprintf("down-md5/%dMiB/%s", bigMiB, name), func(b *testing.B) {
				key := fmt.Sprintf("md5-big-%dMiB", bigMiB)
				obj, err := c.Head(context.Background(), bucket, key)
				if err != nil {
					whole := New(c, Options{PartSize: MaxPartSize, MultipartThreshold: MaxPartSize})
					if err := whole.Upload(context.Background(), UploadInput{Path: big, Bucket: bucket, Key: key, Size: bigMiB * mib}, nil); err != nil {
						b.Fatal(err)
					}
					obj = head(b, c, bucket, key)
				}
				for _, from := range benchGrid("FERRY_BENCH_SIMD_FROM", []int{simdMD5From}) {
					b.Run(fmt.Sprint("simdFrom=", from), func(b *testing.B) {
						e.md5.simdFrom = from
						defer func() { e.md5.simdFrom = simdMD5From }()
						b.SetBytes(bigMiB * mib)
						defer cpuMeter(b)(int64(b.N) * bigMiB * mib)
						for i := range b.N {
							dst := filepath.Join(dir, fmt.Sprint("down", i))
							if err := e.Download(context.Background(), DownloadInput{Bucket: bucket, Key: key, Object: obj, Path: dst}, nil); err != nil {
								b.Fatal(err)
							}
							b.StopTimer()
							os.Remove(dst)
							b.StartTimer()
						}
					})
				}
			})
			prefix := "small-" + name + "/"
			upSmall := func() error {
				g := new(errgroup.Group)
				g.SetLimit(conc)
				for i := range smallN {
					g.Go(func() error {
						name := fmt.Sprintf("f%04d", i)
						return e.Upload(context.Background(), UploadInput{Path: filepath.Join(smallDir, name), Bucket: bucket, Key: prefix + name, Size: smallSize}, nil)
					})
				}
				return g.Wait()
			}
			b.Run(fmt.Sprintf("up/%dx64KiB/%s", smallN, name), func(b *testing.B) {
				b.SetBytes(smallN * smallSize)
				defer cpuMeter(b)(int64(b.N) * smallN * smallSize)
				for range b.N {
					if err := upSmall(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("down/%dx64KiB/%s", smallN, name), func(b *testing.B) {
				if _, err := c.Head(context.Background(), bucket, prefix+"f0000"); err != nil {
					if err := upSmall(); err != nil {
						b.Fatal(err)
					}
				}
				var objs []s3x.Object
				if err := c.List(context.Background(), bucket, s3x.ListOptions{Prefix: prefix}, func(o s3x.Object) error { objs = append(objs, o); return nil }); err != nil {
					b.Fatal(err)
				}
				for _, from := range benchGrid("FERRY_BENCH_SIMD_FROM", []int{simdMD5From}) {
					b.Run(fmt.Sprint("simdFrom=", from), func(b *testing.B) {
						e.md5.simdFrom = from
						defer func() { e.md5.simdFrom = simdMD5From }()
						b.SetBytes(smallN * smallSize)
						defer cpuMeter(b)(int64(b.N) * smallN * smallSize)
						for range b.N {
							out, err := os.MkdirTemp(dir, "smalldown")
							if err != nil {
								b.Fatal(err)
							}
							if err := downloadAll(e, bucket, objs, out, conc); err != nil {
								b.Fatal(err)
							}
							// Outputs stay until the benchmark ends: creating
							// files right after deleting many is slow on ext4,
							// which would measure the file system instead of
							// the transfer.
						}
					})
				}
			})
		}
	}
}

// BenchmarkMixedDownload downloads a tree shaped like bench/gen's mixed set
// (log-uniform sizes from 1 KiB to 64 MiB, fixed seed) with Concurrency
// files at once on one Engine, as `ferry s3 sync` does. Objects under 50 MiB
// are single PUTs (plain MD5 ETags) and larger ones multipart, as s5cmd
// uploads them for bench/run.sh, so the MD5 path of ranged downloads is in
// the measurement.
//
//	FERRY_BENCH_MIXED_N=200 go test ./internal/transfer -run '^$' -bench MixedDownload -benchtime 3x -cpuprofile cpu.out
//
// FERRY_BENCH_SHAPE=rangesPerFile,maxRangeMiB,wholeMD5MiB overrides the
// download shape (default 4,64,64); FERRY_BENCH_SIMD_FROM=0,1,3 compares
// MD5 policies (0: crypto/md5 only; n: a SIMD lane when n MD5s are in
// flight).
func BenchmarkMixedDownload(b *testing.B) {
	m := testutil.SharedMinIO(b)
	c := m.Client(b)
	bucket := m.Bucket(b)
	dir := b.TempDir()
	n := benchGrid("FERRY_BENCH_MIXED_N", []int{100})[0]
	rng := mrand.New(mrand.NewPCG(3, 3))
	single := New(c, Options{Concurrency: 8, PartSize: 50 * mib, MultipartThreshold: 50 * mib})
	var total int64
	g := new(errgroup.Group)
	g.SetLimit(4)
	for i := range n {
		size := int64(math.Exp(math.Log(1<<10) + rng.Float64()*(math.Log(64<<20)-math.Log(1<<10))))
		total += size
		g.Go(func() error {
			src := filepath.Join(dir, "src", fmt.Sprintf("f%04d", i))
			writeRandom(b, src, size)
			defer os.Remove(src)
			return single.Upload(context.Background(), UploadInput{Path: src, Bucket: bucket, Key: fmt.Sprintf("mixed/f%04d", i), Size: size}, nil)
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	var objs []s3x.Object
	if err := c.List(context.Background(), bucket, s3x.ListOptions{Prefix: "mixed/"}, func(o s3x.Object) error { objs = append(objs, o); return nil }); err != nil {
		b.Fatal(err)
	}
	for _, conc := range benchGrid("FERRY_BENCH_CONC", []int{32}) {
		e := New(c, Options{Concurrency: conc})
		if shape := benchGrid("FERRY_BENCH_SHAPE", nil); len(shape) == 3 {
			e.rangesPerFile, e.maxRange, e.wholeMD5Max = shape[0], int64(shape[1])*mib, int64(shape[2])*mib
		}
		for _, from := range benchGrid("FERRY_BENCH_SIMD_FROM", []int{simdMD5From}) {
			e.md5.simdFrom = from
			b.Run(fmt.Sprintf("%dfiles/c=%d/shape=%d,%d,%d/simdFrom=%d", n, conc, e.rangesPerFile, e.maxRange/mib, e.wholeMD5Max/mib, from), func(b *testing.B) {
				b.SetBytes(total)
				defer cpuMeter(b)(int64(b.N) * total)
				for it := range b.N {
					out := filepath.Join(dir, fmt.Sprint("c", conc, "-", it))
					if err := downloadAll(e, bucket, objs, out, conc); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					os.RemoveAll(out)
					syscall.Sync()
					b.StartTimer()
				}
			})
		}
	}
}

// downloadAll downloads objs under out, conc files at once, as the sync
// command does.
func downloadAll(e *Engine, bucket string, objs []s3x.Object, out string, conc int) error {
	g := new(errgroup.Group)
	g.SetLimit(conc)
	for _, o := range objs {
		g.Go(func() error {
			return e.Download(context.Background(), DownloadInput{Bucket: bucket, Key: o.Key, Object: o, Path: filepath.Join(out, o.Key)}, nil)
		})
	}
	return g.Wait()
}

// heapPeak samples HeapInuse every millisecond until stop is called and
// returns the highest value seen.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 { close(done); wg.Wait(); return peak.Load() }
}

// TestMemoryBound moves a file 50 times larger than concurrency × buffer
// each way and checks that the heap never grows by more than a small,
// size-independent amount: bodies are streamed from and to the file.
func TestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 256 MiB each way")
	}
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	dir := t.TempDir()
	const size = 256 * mib
	src := filepath.Join(dir, "src")
	want := writeRandom(t, src, size)
	const conc = 8
	// Limit: 8 requests × a 256 KiB buffer is 2 MiB; connection buffers,
	// the SDK's per-request state and the test's own sampling add a few
	// MiB more. Anything proportional to the file (256 MiB) or to one part
	// per request (8 × 8 MiB = 64 MiB) fails.
	const limit = 24 * mib
	e := New(c, Options{Concurrency: conc})
	tests := []struct {
		name string
		run  func() error
	}{
		{"upload", func() error {
			return e.Upload(context.Background(), UploadInput{Path: src, Bucket: bucket, Key: "big", Size: size}, nil)
		}},
		{"download", func() error {
			obj, err := c.Head(context.Background(), bucket, "big")
			if err != nil {
				return err
			}
			return e.Download(context.Background(), DownloadInput{Bucket: bucket, Key: "big", Object: obj, Path: filepath.Join(dir, "dst")}, nil)
		}},
	}
	for _, tt := range tests {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		stop := heapPeak()
		err := tt.run()
		peak := stop()
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		grew := int64(peak) - int64(base)
		t.Logf("%s of %d MiB: heap in use grew by %.1f MiB at most", tt.name, size/mib, float64(grew)/mib)
		if grew > limit {
			t.Errorf("%s: heap grew by %d MiB, want under %d MiB", tt.name, grew/mib, limit/mib)
		}
	}
	if fileSHA(t, filepath.Join(dir, "dst")) != want {
		t.Error("round trip differs")
	}
}
