package catalog

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestPostgresRetry: a transaction the server fails with a serialization
// failure (40001) or a deadlock (40P01) runs again, and commits; another
// error is returned at once. The errors are the server's own (RAISE with
// the SQLSTATE). Durable transactions commit with synchronous_commit on,
// relaxed ones with it off.
func TestPostgresRetry(t *testing.T) {
	ctx := context.Background()
	cat, err := OpenPostgres(ctx, testutil.PostgresDatabase(t), Options{PoolConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	c := cat.(*pgCatalog)
	if got := c.pool.Config().MaxConns; got != 3 {
		t.Fatalf("pool of %d connections, want 3 (Options.PoolConns)", got)
	}
	for d, want := range map[durability]string{durable: "on", relaxed: "off"} {
		var got string
		if err := c.tx(ctx, d, func(ctx context.Context, tx pgx.Tx) error {
			return tx.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&got)
		}); err != nil || got != want {
			t.Fatalf("durability %d: synchronous_commit %q, %v; want %q", d, got, err, want)
		}
	}
	for _, code := range []string{"40001", "40P01"} {
		runs := 0
		err := c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
			runs++
			if _, err := tx.Exec(ctx, `INSERT INTO listed_dirs VALUES ('r-`+code+`', 1, '')`); err != nil {
				return err
			}
			if runs < 3 {
				_, err := tx.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '`+code+`'; END $$`)
				return err
			}
			return nil
		})
		if err != nil || runs != 3 {
			t.Fatalf("%s: %v after %d runs, want success after 3", code, err, runs)
		}
		if _, ok, err := c.Listed(ctx, "r-"+code); !ok || err != nil {
			t.Fatalf("%s: the retried transaction's row: %v %v", code, ok, err)
		}
	}
	runs := 0
	err = c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		runs++
		_, err := tx.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '23505'; END $$`)
		return err
	})
	if err == nil || runs != 1 || retryable(err) {
		t.Fatalf("a unique violation: %v after %d runs, want it returned after 1", err, runs)
	}
	if retryable(errors.New("40001")) {
		t.Fatal("a plain error counted as a serialization failure")
	}
}
