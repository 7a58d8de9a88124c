package catalog_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

func openSQLite(t testing.TB, dir string, opts catalog.Options) catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), "sqlite://"+filepath.Join(dir, "catalog.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSQLiteSmoke(t *testing.T) {
	ctx := context.Background()
	c := openSQLite(t, t.TempDir(), catalog.Options{})
	defer c.Close()
	if err := c.Append(ctx, catalog.JournalAppend{Path: "a", Kind: catalog.KindNew, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if d, err := c.Depth(ctx); err != nil || d != 1 {
		t.Fatal(d, err)
	}
	es, err := c.Claim(ctx, "x", 10, 60e9)
	if err != nil || len(es) != 1 {
		t.Fatal(es, err)
	}
	if ok, err := c.Complete(ctx, es[0]); err != nil || !ok {
		t.Fatal(ok, err)
	}
}
