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
