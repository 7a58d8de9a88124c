package daemon

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/ferry-hpc/ferry/internal/store"
)

// CatalogFile is the default SQLite catalog, in the store's metadata folder.
const CatalogFile = "catalog.db"

// ParseCatalog checks a --catalog URL and returns it in canonical form:
// sqlite://PATH with PATH absolute (a relative PATH is taken from the
// current directory; query parameters are kept). "" means the default,
// sqlite://STORE/.ferry/catalog.db. A PostgreSQL URL (postgres://, for
// several nodes on one store) is kept as given.
func ParseCatalog(u, storeDir string) (string, error) {
	if u == "" {
		abs, err := filepath.Abs(storeDir)
		if err != nil {
			return "", err
		}
		return "sqlite://" + filepath.Join(abs, store.MetaDir, CatalogFile), nil
	}
	scheme, rest, ok := strings.Cut(u, "://")
	switch {
	case !ok:
		return "", fmt.Errorf("--catalog %q: expected sqlite://PATH, e.g. sqlite:///var/lib/ferry/catalog.db", u)
	case scheme == "postgres" || scheme == "postgresql":
		return u, nil // checked when opened (catalog.OpenPostgres)
	case scheme != "sqlite":
		return "", fmt.Errorf("--catalog %q: unknown scheme %q; expected sqlite://PATH", u, scheme)
	}
	path, query, _ := strings.Cut(rest, "?")
	if path == "" || strings.HasSuffix(path, "/") {
		return "", fmt.Errorf("--catalog %q: sqlite:// needs a file path, e.g. sqlite:///var/lib/ferry/catalog.db", u)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if query != "" {
		abs += "?" + query
	}
	return "sqlite://" + abs, nil
}
