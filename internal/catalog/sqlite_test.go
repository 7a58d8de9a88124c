package catalog_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/catalog/catalogtest"
)

func openSQLite(t testing.TB, dir string, opts catalog.Options) catalog.Catalog {
	t.Helper()
	c, err := catalog.Open(context.Background(), "sqlite://"+filepath.Join(dir, "catalog.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSQLiteConformance(t *testing.T) {
	catalogtest.Run(t, func(t *testing.T, opts catalog.Options) catalog.Catalog {
		return openSQLite(t, t.TempDir(), opts)
	})
}
