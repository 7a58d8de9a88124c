package catalog_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// BenchmarkAppend measures acknowledged (durable, synchronous=FULL) journal
// appends per second with 1 and 64 concurrent callers, with and without a
// group-commit window.
//
//	go test ./internal/catalog -run '^$' -bench Append -benchtime 3000x
func BenchmarkAppend(b *testing.B) {
	for _, window := range []time.Duration{0, 200 * time.Microsecond, time.Millisecond} {
		for _, conc := range []int{1, 64} {
			for _, relaxed := range []bool{false, true} {
				if relaxed && window != 0 {
					continue
				}
				benchAppend(b, window, conc, relaxed)
			}
		}
	}
}

// benchAppend measures conc callers appending with group commit; relaxed
// appends as the mount does on close(2) (committed, not fsynced).
func benchAppend(b *testing.B, window time.Duration, conc int, relaxed bool) {
	b.Run(fmt.Sprintf("window=%v/callers=%d/relaxed=%v", window, conc, relaxed), func(b *testing.B) {
		c := openSQLite(b, b.TempDir(), catalog.Options{GroupCommitWindow: window})
		defer c.Close()
		ctx := context.Background()
		var next atomic.Int64
		var wg sync.WaitGroup
		b.ResetTimer()
		start := time.Now()
		for range conc {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(b.N) {
						return
					}
					if err := c.Append(ctx, catalog.JournalAppend{Path: fmt.Sprintf("d%03d/f%09d", i%1000, i), Kind: catalog.KindChanged, Version: i, Relaxed: relaxed}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
	})
}

var (
	bigOnce sync.Once
	bigDir  string
)

// bigJournal builds (once per process) a catalog with n pending entries
// spread over 1000 directories.
func bigJournal(b *testing.B, n int) catalog.Catalog {
	bigOnce.Do(func() {
		var err error
		bigDir, err = mkTemp()
		if err != nil {
			b.Fatal(err)
		}
		c := openSQLite(b, bigDir, catalog.Options{})
		ctx := context.Background()
		batch := make([]catalog.JournalAppend, 0, 2000)
		for i := range n {
			batch = append(batch, catalog.JournalAppend{Path: fmt.Sprintf("d%03d/f%09d", i%1000, i), Kind: catalog.KindNew, Version: 1})
			if len(batch) == cap(batch) || i == n-1 {
				if err := c.Append(ctx, batch...); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		c.Close()
	})
	return openSQLite(b, bigDir, catalog.Options{})
}

// BenchmarkJournal1M measures the metric and barrier queries over a journal
// of one million pending entries: they must stay index lookups.
//
//	go test ./internal/catalog -run '^$' -bench Journal1M -benchtime 200x
func BenchmarkJournal1M(b *testing.B) {
	const n = 1_000_000
	c := bigJournal(b, n)
	defer c.Close()
	ctx := context.Background()
	b.Run("Depth", func(b *testing.B) {
		for b.Loop() {
			if d, err := c.Depth(ctx); err != nil || d != n {
				b.Fatal(d, err)
			}
		}
	})
	b.Run("OldestAge", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.OldestAge(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("PendingCount/dir-of-1000", func(b *testing.B) {
		for b.Loop() {
			if k, err := c.PendingCount(ctx, "d042", 0); err != nil || k != n/1000 {
				b.Fatal(k, err)
			}
		}
	})
	b.Run("Pending/page-of-100", func(b *testing.B) {
		for b.Loop() {
			if es, err := c.Pending(ctx, "d042", "d042/f000500000", 100); err != nil || len(es) != 100 {
				b.Fatal(len(es), err)
			}
		}
	})
	b.Run("Claim64+Release", func(b *testing.B) {
		for b.Loop() {
			es, err := c.Claim(ctx, "bench", 64, time.Hour)
			if err != nil || len(es) != 64 {
				b.Fatal(len(es), err)
			}
			if k, err := c.ReleaseClaims(ctx, "bench"); err != nil || k != 64 {
				b.Fatal(k, err)
			}
		}
	})
	b.Run("Append+Complete", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			p := fmt.Sprintf("x/%d", i)
			if err := c.Append(ctx, catalog.JournalAppend{Path: p, Kind: catalog.KindNew}); err != nil {
				b.Fatal(err)
			}
			es, err := c.Pending(ctx, p, "", 1)
			if err != nil || len(es) != 1 {
				b.Fatal(err)
			}
			if ok, err := c.Complete(ctx, es[0]); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}

func mkTemp() (string, error) { return os.MkdirTemp("", "ferry-catalog-bench-") }

func TestMain(m *testing.M) {
	code := testutil.RunMain(m)
	if bigDir != "" {
		os.RemoveAll(bigDir)
	}
	os.Exit(code)
}

// BenchmarkRelaxedWrite is the cost of a one-row transaction with
// synchronous=NORMAL (MarkListed), to compare with a lone Append's FULL
// commit: the difference is the WAL fsync.
//
//	go test ./internal/catalog -run '^$' -bench RelaxedWrite -benchtime 3000x
func BenchmarkRelaxedWrite(b *testing.B) {
	c := openSQLite(b, b.TempDir(), catalog.Options{})
	defer c.Close()
	ctx := context.Background()
	i := 0
	start := time.Now()
	for b.Loop() {
		i++
		if err := c.MarkListed(ctx, catalog.ListedDir{Path: fmt.Sprintf("d/%d", i), ListedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(i)/time.Since(start).Seconds(), "writes/s")
}

// engineNodes returns n catalogs standing for n nodes: on PostgreSQL, n
// catalogs (n pools) on one fresh database of the test server; on SQLite,
// one catalog shared n times (one daemon per SQLite catalog).
func engineNodes(b *testing.B, engine string, n int) []catalog.Catalog {
	b.Helper()
	out := make([]catalog.Catalog, n)
	switch engine {
	case "sqlite":
		c := openSQLite(b, b.TempDir(), catalog.Options{})
		b.Cleanup(func() { c.Close() })
		for i := range out {
			out[i] = c
		}
	case "postgres":
		url := testutil.PostgresDatabase(b)
		for i := range out {
			c := openPG(b, url, catalog.Options{})
			b.Cleanup(func() { c.Close() })
			out[i] = c
		}
	}
	return out
}

// BenchmarkCatalogEngines compares the engines on what many nodes share:
// journal appends (3 nodes, 8 or 64 writers each: group commit), then claim and
// complete by 3 concurrent claimers (one per node, 64 entries a claim, one
// Complete per entry, as the exporter does); listed-directory records (the
// importer's bulk bookkeeping: MarkListed of 1000 at a time); and import
// hints (EnqueueHints of 100 at a time, durable). b.N is the number of
// entries, records or hints.
//
//	go test ./internal/catalog -run '^$' -bench CatalogEngines -benchtime 20000x
func BenchmarkCatalogEngines(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		for _, writers := range []int{24, 192} {
			b.Run(fmt.Sprintf("%s/journal-3-nodes/writers=%d", engine, writers), func(b *testing.B) { benchJournalNodes(b, engine, writers) })
		}
		b.Run(engine+"/listed-dirs", func(b *testing.B) { benchListed(b, engine) })
		b.Run(engine+"/hints", func(b *testing.B) { benchHints(b, engine) })
	}
}

func benchJournalNodes(b *testing.B, engine string, writers int) {
	nodes := engineNodes(b, engine, 3)
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Go(func() {
			c := nodes[w%3]
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := c.Append(ctx, catalog.JournalAppend{Path: fmt.Sprintf("d%03d/f%09d", i%1000, i), Kind: catalog.KindNew, Version: i, Relaxed: true}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	appended := time.Since(start)
	start = time.Now()
	var done atomic.Int64
	for i, c := range nodes {
		wg.Go(func() {
			owner := fmt.Sprintf("node%d", i)
			for done.Load() < int64(b.N) {
				es, err := c.Claim(ctx, owner, 64, time.Minute)
				if err != nil {
					b.Error(err)
					return
				}
				if len(es) == 0 {
					return
				}
				for _, e := range es {
					if ok, err := c.Complete(ctx, e); err != nil || !ok {
						b.Error(ok, err)
						return
					}
					done.Add(1)
				}
			}
		})
	}
	wg.Wait()
	exported := time.Since(start)
	b.StopTimer()
	if d, _ := nodes[0].Depth(ctx); d != 0 || done.Load() != int64(b.N) {
		b.Fatalf("depth %d, completed %d of %d", d, done.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/appended.Seconds(), "appends/s")
	b.ReportMetric(float64(b.N)/exported.Seconds(), "claimed+completed/s")
}

func benchListed(b *testing.B, engine string) {
	c := engineNodes(b, engine, 1)[0]
	ctx := context.Background()
	batch := make([]catalog.ListedDir, 0, 1000)
	now := time.Now()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		batch = append(batch, catalog.ListedDir{Path: fmt.Sprintf("d%04d/s%09d", i%1000, i), ListedAt: now, Marker: "etag-0123456789abcdef"})
		if len(batch) == cap(batch) || i == b.N-1 {
			if err := c.MarkListed(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "records/s")
}

func benchHints(b *testing.B, engine string) {
	c := engineNodes(b, engine, 1)[0]
	ctx := context.Background()
	batch := make([]catalog.ImportHint, 0, 100)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		batch = append(batch, catalog.ImportHint{Source: "minio", Bucket: "bench", Key: fmt.Sprintf("d%04d/o%09d", i%1000, i), Kind: catalog.HintCreated})
		if len(batch) == cap(batch) || i == b.N-1 {
			if _, err := c.EnqueueHints(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "hints/s")
}

// BenchmarkPostgresAppend is BenchmarkAppend on one PostgreSQL node: the
// commit latency (1 writer) and what group commit makes of it.
//
//	go test ./internal/catalog -run '^$' -bench PostgresAppend -benchtime 3000x
func BenchmarkPostgresAppend(b *testing.B) {
	for _, conc := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", conc), func(b *testing.B) {
			c := engineNodes(b, "postgres", 1)[0]
			ctx := context.Background()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for range conc {
				wg.Go(func() {
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if err := c.Append(ctx, catalog.JournalAppend{Path: fmt.Sprintf("d%03d/f%09d", i%1000, i), Kind: catalog.KindNew, Relaxed: true}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "appends/s")
		})
	}
}
