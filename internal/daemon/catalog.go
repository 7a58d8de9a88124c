package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/mounts"
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

// lockSQLite takes the daemon's lock on the SQLite catalog at url (a
// sqlite:// URL), an exclusive flock(2) on PATH.lock beside it, held while
// the daemon runs; the returned release drops it. An SQLite catalog serves
// one daemon: two processes on one machine would share it without the
// nodes' coordination (and on a shared file system its WAL would not work
// at all), so a second daemon is refused with the first one's name and the
// way to serve a store from several daemons: a PostgreSQL catalog. A
// PostgreSQL URL takes no lock (release does nothing).
func lockSQLite(url, storeDir, mountPoint string) (release func() error, err error) {
	path, ok := strings.CutPrefix(url, "sqlite://")
	if !ok {
		return func() error { return nil }, nil
	}
	path, _, _ = strings.Cut(path, "?")
	lock := path + ".lock"
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", url, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(lock)
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: store %s: its SQLite catalog %s is in use by another ferry daemon (%s); "+
				"an SQLite catalog serves one daemon: to serve the store from several mounts or nodes, give each the same "+
				"--catalog postgres://USER@HOST/DATABASE (or run `ferry umount` on the other mount first)",
				mounts.ErrAlreadyMounted, storeDir, path, strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("catalog %s: locking %s: %w", url, lock, err)
	}
	// Who holds it, for the message above (best effort).
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "process %d on %s, mount point %s\n", os.Getpid(), hostname(), mountPoint)
	}
	return f.Close, nil // closing the descriptor drops the lock
}
