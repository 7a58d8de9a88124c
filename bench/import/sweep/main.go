// Command sweep measures one import sweep (importer.Sweeper.SweepOnce) of a
// bucket prefix already filled (bench/import/put), the way
// internal/importer's BenchmarkSweep does, but on a bucket and a store that
// outlive the run, so that 1,000,000 objects are put and their local tree
// made once (bench/import/sweep.sh).
//
//	go run ./bench/import/sweep -endpoint http://127.0.0.1:9000 -bucket sweep \
//	    -prefix data/ -store DIR -n 1000000 [-sweeps 3] [-mem 0,4096] [-pages -1]
//
// The association is /ExtData ↔ s3://BUCKET/PREFIX with AutoImportPolicy
// NEW, CHANGED, DELETED. The first run makes the local side from one flat
// listing into the store DIR (a stub per object with its ETag and size,
// every directory recorded listed: the state after every directory was
// listed, without the HEADs); later runs reuse it (DIR/.sweep-ready). Each
// sweep must find exactly -n objects and -n files and queue no hint (the
// steady state: every object compared with its file).
//
// Per sweep it prints: the walk (-mem: 0 = in memory, else MemEntries, so
// directories of 10,000 entries spill), seconds, objects/s, LIST requests,
// the peak Go heap above the heap after a GC before the sweep (sampled every
// millisecond, as BenchmarkSweep), the process's RSS before and its peak
// during the sweep (VmHWM, reset through /proc/self/clear_refs before it),
// the CPU time of the process and (-minio-pid) of MinIO, and the load
// average. Credentials come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

type opts struct {
	endpoint, bucket, prefix, dir string
	n, sweeps, minioPid           int
	mems                          []int
	pages                         float64
	cpuprofile                    string
}

func main() {
	var o opts
	var mems string
	flag.StringVar(&o.endpoint, "endpoint", "", "S3 endpoint URL (required)")
	flag.StringVar(&o.bucket, "bucket", "", "bucket (required)")
	flag.StringVar(&o.prefix, "prefix", "data/", "the association's prefix, ending in /")
	flag.StringVar(&o.dir, "store", "", "store directory (made on the first run, reused after; required)")
	flag.IntVar(&o.n, "n", 0, "objects under the prefix (required: each sweep must see exactly these)")
	flag.IntVar(&o.sweeps, "sweeps", 3, "sweeps per walk")
	flag.StringVar(&mems, "mem", "0,4096", "walks: MemEntries of each (0: the default, in memory)")
	flag.Float64Var(&o.pages, "pages", -1, "LIST pages per second (-1: unpaced, 0: the default 20)")
	flag.IntVar(&o.minioPid, "minio-pid", 0, "also report the CPU time of this process (the MinIO) per sweep")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the sweeps (not of the tree's making) to this file")
	flag.Parse()
	for _, s := range strings.Split(mems, ",") {
		m, err := strconv.Atoi(s)
		if err != nil || m < 0 {
			fmt.Fprintf(os.Stderr, "sweep: -mem %q: give MemEntries numbers ≥ 0, comma-separated\n", mems)
			os.Exit(2)
		}
		o.mems = append(o.mems, m)
	}
	if o.endpoint == "" || o.bucket == "" || o.dir == "" || o.n <= 0 || !strings.HasSuffix(o.prefix, "/") {
		fmt.Fprintln(os.Stderr, "sweep: give -endpoint, -bucket, -store, -n and -prefix (ending in /)")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "sweep:", err)
		os.Exit(1)
	}
}

func run(o opts) error {
	ctx := context.Background()
	var err error
	if o.dir, err = filepath.Abs(o.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	st, err := store.Open(o.dir)
	if err != nil {
		return err
	}
	defer st.Close()
	cat, err := catalog.OpenSQLite(ctx, st.MetaPath()+"/catalog.db", catalog.Options{})
	if err != nil {
		return err
	}
	defer cat.Close()
	st.SetMapStore(cat)
	c, err := s3x.New(ctx, s3x.Config{EndpointURL: o.endpoint})
	if err != nil {
		return err
	}
	a := api.DataRepositoryAssociation{
		AssociationId: "dra-0123456789abcdef0", FileSystemPath: "/ExtData",
		DataRepositoryPath: "s3://" + o.bucket + "/" + o.prefix, ImportedFileChunkSize: 1024,
		Lifecycle: api.LifecycleAvailable,
		S3: &api.S3DataRepositoryConfiguration{AutoImportPolicy: &api.AutoImportPolicy{
			Events: []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}}},
	}
	ready := filepath.Join(o.dir, ".sweep-ready")
	if _, err := os.Stat(ready); err != nil {
		t0 := time.Now()
		if err := makeListedTree(ctx, st, cat, c, o); err != nil {
			return err
		}
		fmt.Printf("local tree of %d stubs in %v\n", o.n, time.Since(t0).Round(time.Second))
		if err := os.WriteFile(ready, []byte(strconv.Itoa(o.n)), 0o644); err != nil {
			return err
		}
	}
	im := importer.New(importer.Config{Store: st, Catalog: cat, S3: c})
	defer im.Close()
	tbl := dra.NewTable([]api.DataRepositoryAssociation{a}, nil)
	im.SetAssociations(tbl)
	as, ok := tbl.ByID(a.AssociationId)
	if !ok {
		return fmt.Errorf("no association %s", a.AssociationId)
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("walk\tsweep\tseconds\tobjects_per_s\tlist_requests\tobjects\tlocal_files\tpeak_heap_MiB\trss_before_MiB\trss_peak_MiB\tcpu_s\tminio_cpu_s\tload")
	for _, mem := range o.mems {
		sw := im.NewSweeper(importer.SweepConfig{PagesPerSecond: o.pages, MemEntries: mem})
		walk := "memory"
		if mem > 0 {
			walk = "spill-" + strconv.Itoa(mem)
		}
		for i := range o.sweeps {
			if err := sweepOnce(ctx, sw, as, o, walk, i+1); err != nil {
				return err
			}
		}
	}
	return nil
}

func sweepOnce(ctx context.Context, sw *importer.Sweeper, a *dra.Assoc, o opts, walk string, i int) error {
	runtime.GC()
	base := heapBytes()
	rss0 := status("VmRSS")
	// Writing 5 resets the peak RSS (VmHWM) to the current RSS.
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	var peak int64
	stop := samplePeak(&peak, base)
	c0, m0 := selfCPU(), procCPU(o.minioPid)
	t0 := time.Now()
	res, err := sw.SweepOnce(ctx, a)
	el := time.Since(t0).Seconds()
	c1, m1 := selfCPU(), procCPU(o.minioPid)
	stop()
	if err != nil {
		return err
	}
	if res.Hints() != 0 || res.Objects != int64(o.n) || res.LocalFiles != int64(o.n) {
		return fmt.Errorf("sweep %d: %+v, want %d objects and files and no hint", i, res, o.n)
	}
	fmt.Printf("%s\t%d\t%.2f\t%.0f\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\n", walk, i, el, float64(res.Objects)/el,
		res.ListRequests, res.Objects, res.LocalFiles, float64(peak)/(1<<20), float64(rss0)/1024, float64(status("VmHWM"))/1024,
		c1-c0, m1-m0, loadavg())
	return nil
}

// makeListedTree makes the local side of a full import from one flat
// listing: a stub per object with its ETag and size, every directory
// recorded listed.
func makeListedTree(ctx context.Context, st *store.Store, cat catalog.Catalog, c *s3x.Client, o opts) error {
	if err := st.MkdirAll("ExtData", 0o755); err != nil {
		return err
	}
	dirs := map[string]bool{"ExtData": true}
	count := 0
	err := c.List(ctx, o.bucket, s3x.ListOptions{Prefix: o.prefix}, func(obj s3x.Object) error {
		sub, _, err := keypath.ToPath(o.prefix, obj.Key)
		if err != nil {
			return err
		}
		rel := "ExtData/" + sub
		if d := path.Dir(rel); !dirs[d] {
			if err := st.MkdirAll(d, 0o755); err != nil {
				return err
			}
			for ; d != "ExtData" && !dirs[d]; d = path.Dir(d) {
				dirs[d] = true
			}
		}
		count++
		if count%100_000 == 0 {
			fmt.Printf("%s\t%d stubs\n", time.Now().Format("15:04:05"), count)
		}
		return st.CreateStub(rel, store.Stub{Size: obj.Size, Mode: 0o644, Mtime: obj.LastModified, Atime: obj.LastModified,
			ETag: `"` + obj.ETag + `"`, Flags: hsm.Imported(), ChunkSize: importer.DefaultChunkSize})
	})
	if err != nil {
		return err
	}
	if count != o.n {
		return fmt.Errorf("%d objects listed under s3://%s/%s, want %d (put them first: bench/import/put)", count, o.bucket, o.prefix, o.n)
	}
	var ls []catalog.ListedDir
	for d := range dirs {
		ls = append(ls, catalog.ListedDir{Path: d, ListedAt: time.Now()})
	}
	return cat.MarkListed(ctx, ls...)
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

// status is a kB field of /proc/self/status.
func status(field string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// selfCPU is the process's user and system CPU time, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return math.NaN()
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// procCPU is process pid's user and system CPU time, in seconds (NaN
// when pid is 0 or unknown).
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if pid <= 0 || err != nil {
		return math.NaN()
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return math.NaN()
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
