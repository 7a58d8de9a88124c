package catalog_test

import (
	"context"
	"testing"

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
