package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/catalog/catalogtest"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// openPG opens a catalog in a fresh database of the test binary's
// PostgreSQL server (testutil.SharedPostgres).
func openPG(t testing.TB, url string, opts catalog.Options) catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), url, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPostgresConformance(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T, opts catalog.Options) catalog.Catalog {
		return openPG(t, testutil.PostgresDatabase(t), opts)
	})
}

func TestPostgresReopenConformance(t *testing.T) {
	catalogtest.RunReopen(t, func(t *testing.T, opts catalog.Options) (catalog.Catalog, func() catalog.Catalog) {
		url := testutil.PostgresDatabase(t)
		return openPG(t, url, opts), func() catalog.Catalog { return openPG(t, url, opts) }
	})
}

// TestPostgresNodes: three catalogs on one database stand for three nodes.
// They open at once (the schema is created once, under the advisory lock),
// see each other's sessions, and three claimers export a journal that
// writers keep appending to: every entry is claimed by one node at a time
// and completed once, and nothing is left.
func TestPostgresNodes(t *testing.T) {
	url := testutil.PostgresDatabase(t)
	ctx := context.Background()
	nodes := make([]catalog.Catalog, 3)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() { nodes[i] = openPG(t, url, catalog.Options{}) })
	}
	wg.Wait()
	for _, c := range nodes {
		if c == nil {
			t.FailNow()
		}
		defer c.Close()
	}
	for i, c := range nodes {
		if err := c.RegisterSession(ctx, catalog.Session{NodeID: fmt.Sprintf("n%d", i), Host: "h"}, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range nodes {
		if ss, err := c.LiveSessions(ctx); err != nil || len(ss) != 3 {
			t.Fatalf("a node sees %d sessions, %v", len(ss), err)
		}
	}

	const writers, each = 6, 100
	var claimedBy sync.Map // path → node
	var completed atomic.Int64
	var dup atomic.Int64
	stop := make(chan struct{})
	var claimers sync.WaitGroup
	for i, c := range nodes {
		claimers.Go(func() {
			owner := fmt.Sprintf("n%d", i)
			for {
				es, err := c.Claim(ctx, owner, 16, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				for _, e := range es {
					if prev, loaded := claimedBy.LoadOrStore(fmt.Sprintf("%s@%d", e.Path, e.Seq), owner); loaded {
						t.Errorf("%s seq %d claimed by %s and %s", e.Path, e.Seq, prev, owner)
						dup.Add(1)
					}
					ok, err := c.Complete(ctx, e)
					if err != nil {
						t.Error(err)
						return
					}
					if ok {
						completed.Add(1)
					}
				}
				if len(es) == 0 {
					select {
					case <-stop:
						return
					case <-time.After(5 * time.Millisecond):
					}
				}
			}
		})
	}
	for w := range writers {
		wg.Go(func() {
			c := nodes[w%3]
			for i := range each {
				if err := c.Append(ctx, catalog.JournalAppend{Path: fmt.Sprintf("w%d/f%03d", w, i), Kind: catalog.KindNew}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(time.Minute)
	for {
		d, err := nodes[0].Depth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	claimers.Wait()
	if got := completed.Load(); got != writers*each || dup.Load() != 0 {
		t.Fatalf("completed %d of %d appended, %d claimed twice", got, writers*each, dup.Load())
	}
	if seq, _ := nodes[1].JournalSeq(ctx); seq != writers*each {
		t.Fatalf("journal seq %d, want %d", seq, writers*each)
	}
}

// TestPostgresSchemaTooNew: a database migrated by a newer ferry is refused
// with a message that says what to do.
func TestPostgresSchemaTooNew(t *testing.T) {
	url := testutil.PostgresDatabase(t)
	openPG(t, url, catalog.Options{}).Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	_, err = catalog.Open(ctx, url, catalog.Options{})
	if !errors.Is(err, catalog.ErrSchemaTooNew) || !strings.Contains(err.Error(), "newer ferry") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}

// TestPostgresServerRestart: the server restarts under a node (every
// connection of its pool is cut); what was committed is there, and the
// node's next calls work without reopening the catalog. Its own server, so
// the other tests' one is not disturbed.
func TestPostgresServerRestart(t *testing.T) {
	if _, err := testutil.PostgresBin(); err != nil {
		testutil.Need(t, err)
	}
	srv, err := testutil.StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop()
	c := openPG(t, srv.NewDatabase(t), catalog.Options{})
	defer c.Close()
	ctx := context.Background()
	for i := range 20 {
		if err := c.Append(ctx, catalog.JournalAppend{Path: fmt.Sprintf("f%02d", i), Kind: catalog.KindNew}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Claim(ctx, "n1", 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	srv.Restart(t)
	if err := c.Append(ctx, catalog.JournalAppend{Path: "after", Kind: catalog.KindNew}); err != nil {
		t.Fatalf("append after the restart: %v", err)
	}
	es, err := c.Claim(ctx, "n2", 100, time.Hour)
	if err != nil || len(es) != 16 {
		t.Fatalf("claim after the restart: %d entries, %v; want the 15 unclaimed and the new one", len(es), err)
	}
	if d, err := c.Depth(ctx); err != nil || d != 21 {
		t.Fatalf("depth after the restart %d, %v", d, err)
	}
}
