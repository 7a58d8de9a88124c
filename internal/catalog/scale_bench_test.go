package catalog_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// BenchmarkLookupAtScale measures what a lookup asks the catalog — is this
// directory listed? (Listed; a hit and a miss) — and a prefix query
// (Pending under a directory) with N listed-directory records and N journal
// entries in the catalog, for N in FERRY_SCALE_ROWS (default
// "10000,1000000"; issue 14 asks for 10,000,000). The latency must not
// grow with N: every query is an index seek.
//
//	FERRY_SCALE_ROWS=10000,1000000,10000000 go test ./internal/catalog -run '^$' -bench LookupAtScale -benchtime 20000x -timeout 2h
func BenchmarkLookupAtScale(b *testing.B) {
	sizes := os.Getenv("FERRY_SCALE_ROWS")
	if sizes == "" {
		sizes = "10000,1000000"
	}
	engines := os.Getenv("FERRY_SCALE_ENGINES")
	if engines == "" {
		engines = "sqlite,postgres"
	}
	for _, engine := range strings.Split(engines, ",") {
		for _, f := range strings.Split(sizes, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1000 {
				b.Fatalf("FERRY_SCALE_ROWS %q: give sizes of at least 1000, comma-separated", sizes)
			}
			top := b // the filled catalogs live until the whole benchmark ends
			b.Run(fmt.Sprintf("%s/rows=%d", engine, n), func(b *testing.B) { benchLookupAt(top, b, engine, n) })
		}
	}
}

// scaleFilled keeps each filled catalog for the benchmark's later rounds
// (the testing package runs a benchmark function more than once).
var scaleFilled = map[string]catalog.Catalog{}

func scaleDir(i int) string { return fmt.Sprintf("d%04d/s%09d", i%1000, i) }

func benchLookupAt(top, b *testing.B, engine string, n int) {
	id := fmt.Sprintf("%s/%d", engine, n)
	c, ok := scaleFilled[id]
	if !ok {
		c = fillScale(top, engine, n)
		scaleFilled[id] = c
	}
	ctx := context.Background()
	dirOf := scaleDir
	r := rand.New(rand.NewPCG(1, uint64(n)))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		k := r.IntN(n)
		t0 := time.Now()
		switch i % 3 {
		case 0:
			if _, ok, err := c.Listed(ctx, dirOf(k)); err != nil || !ok {
				b.Fatalf("Listed(%s): %v %v", dirOf(k), ok, err)
			}
		case 1:
			if _, ok, err := c.Listed(ctx, dirOf(k)+"-missing"); err != nil || ok {
				b.Fatalf("Listed(missing): %v %v", ok, err)
			}
		case 2:
			es, err := c.Pending(ctx, dirOf(k), "", 10)
			if err != nil || len(es) != 1 {
				b.Fatalf("Pending(%s): %d entries, %v", dirOf(k), len(es), err)
			}
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// fillScale opens a catalog of engine, closed when b ends, with n
// listed-directory records and n journal entries.
func fillScale(b *testing.B, engine string, n int) catalog.Catalog {
	var c catalog.Catalog
	var err error
	switch engine {
	case "sqlite":
		c, err = catalog.OpenSQLite(context.Background(), b.TempDir()+"/catalog.db", catalog.Options{})
	case "postgres":
		c, err = catalog.Open(context.Background(), testutil.PostgresDatabase(b), catalog.Options{})
	default:
		b.Fatalf("FERRY_SCALE_ENGINES: unknown engine %q (sqlite, postgres)", engine)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	ctx := context.Background()
	dirOf := scaleDir
	fill := time.Now()
	batch := make([]catalog.ListedDir, 0, 5000)
	jb := make([]catalog.JournalAppend, 0, 5000)
	for i := range n {
		batch = append(batch, catalog.ListedDir{Path: dirOf(i), ListedAt: fill})
		jb = append(jb, catalog.JournalAppend{Path: dirOf(i) + "/f", Kind: catalog.KindNew, Version: 1, Relaxed: true})
		if len(batch) == cap(batch) || i == n-1 {
			if err := c.MarkListed(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			if err := c.Append(ctx, jb...); err != nil {
				b.Fatal(err)
			}
			batch, jb = batch[:0], jb[:0]
		}
	}
	fmt.Fprintf(os.Stderr, "%s: %d listed records and journal entries filled in %v\n", engine, n, time.Since(fill).Round(time.Millisecond))
	return c
}
