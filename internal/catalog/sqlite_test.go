package catalog_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/store"

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

func TestSQLiteReopenConformance(t *testing.T) {
	catalogtest.RunReopen(t, func(t *testing.T, opts catalog.Options) (catalog.Catalog, func() catalog.Catalog) {
		dir := t.TempDir()
		return openSQLite(t, dir, opts), func() catalog.Catalog { return openSQLite(t, dir, opts) }
	})
}

func TestParseURL(t *testing.T) {
	wd, _ := os.Getwd()
	for _, tc := range []struct {
		raw, root string
		want      catalog.Location
		bad       bool
	}{
		{"", "/srv/store", catalog.Location{Engine: "sqlite", Path: "/srv/store/.ferry/catalog.db"}, false},
		{"", "", catalog.Location{}, true},
		{"sqlite:///abs/path/catalog.db", "", catalog.Location{Engine: "sqlite", Path: "/abs/path/catalog.db"}, false},
		{"sqlite://rel/c.db", "/ignored", catalog.Location{Engine: "sqlite", Path: filepath.Join(wd, "rel/c.db")}, false},
		{"SQLITE:///a%20b.db", "", catalog.Location{Engine: "sqlite", Path: "/a b.db"}, false},
		{"sqlite://", "", catalog.Location{}, true},
		{"sqlite:///a.db?mode=ro", "", catalog.Location{}, true},
		{"postgres://u:pw@h/db", "", catalog.Location{Engine: "postgres", DSN: "postgres://u:pw@h/db"}, false},
		{"postgresql://h/db", "", catalog.Location{Engine: "postgres", DSN: "postgresql://h/db"}, false},
		{"mysql://h/db", "", catalog.Location{}, true},
		{"/plain/path.db", "", catalog.Location{}, true},
	} {
		got, err := catalog.ParseURL(tc.raw, tc.root)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("ParseURL(%q, %q) = %+v, %v", tc.raw, tc.root, got, err)
		}
	}
	// Nothing listens on port 1: the error names the catalog without its
	// password.
	_, err := catalog.Open(context.Background(), "postgres://u:secret@127.0.0.1:1/db?connect_timeout=5", catalog.Options{})
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("postgres with no server: %v", err)
	}
}

func TestDefaultLocationAndReopen(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	_ = st
	c, err := catalog.Open(ctx, "", catalog.Options{StoreRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	weird := "dir/\xff\xfe-not-utf8"
	if err := c.Append(ctx, catalog.JournalAppend{Path: weird, Kind: catalog.KindNew, Version: 7}); err != nil {
		t.Fatal(err)
	}
	fsID := dra.NewFileSystemID()
	if _, err := c.InitFileSystem(ctx, catalog.FileSystemInfo{FileSystemId: fsID, StorePath: root}); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(root, store.MetaDir, catalog.DefaultFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("catalog file: %v %v", fi, err)
	}
	c, err = catalog.Open(ctx, "", catalog.Options{StoreRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	es, err := c.Pending(ctx, "dir", "", 10)
	if err != nil || len(es) != 1 || es[0].Path != weird || es[0].Version != 7 {
		t.Fatalf("after reopen: %+v %v", es, err)
	}
	if got, err := c.FileSystem(ctx); err != nil || got.FileSystemId != fsID {
		t.Fatalf("identity after reopen: %+v %v", got, err)
	}
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	c := openSQLite(t, dir, catalog.Options{})
	c.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = catalog.Open(context.Background(), "sqlite://"+filepath.Join(dir, "catalog.db"), catalog.Options{})
	if !errors.Is(err, catalog.ErrSchemaTooNew) {
		t.Fatalf("open of a newer schema: %v", err)
	}
}

// TestCrashAppend is invariant 1's catalog half (docs/invariants.md): a
// process appends with group commit from many goroutines and reports each
// acknowledged entry; it is killed with SIGKILL mid-stream; every
// acknowledged entry must be in the catalog after reopening.
func TestCrashAppend(t *testing.T) {
	if dir := os.Getenv("FERRY_CATALOG_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashAppend$")
	cmd.Env = append(os.Environ(), "FERRY_CATALOG_CRASH_CHILD="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 2000
	acked := map[string]bool{}
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked[p] = true
		}
		if len(acked) == killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	// Acks printed before the kill landed are read above, up to EOF.
	err = cmd.Wait()
	if !killed || err == nil {
		t.Fatalf("child ended on its own (%v) after %d acks", err, len(acked))
	}
	c := openSQLite(t, dir, catalog.Options{})
	defer c.Close()
	ctx := context.Background()
	var present int
	after := ""
	for {
		es, err := c.Pending(ctx, "", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if acked[e.Path] {
				present++
			}
		}
		if len(es) < 1000 {
			break
		}
		after = es[len(es)-1].Path
	}
	if present != len(acked) {
		t.Fatalf("%d of %d acknowledged appends survived kill -9", present, len(acked))
	}
	d, _ := c.Depth(ctx)
	t.Logf("%d acknowledged, %d in the journal after kill -9 (depth counter %d)", len(acked), present, d)
	seq, _ := c.JournalSeq(ctx)
	if n, err := c.PendingCount(ctx, "", seq); err != nil || n != d { // counts rows
		t.Fatalf("depth counter %d disagrees with a count %d (%v)", d, n, err)
	}
}

func crashChild(dir string) {
	c, err := catalog.Open(context.Background(), "sqlite://"+filepath.Join(dir, "catalog.db"), catalog.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := 0; ; i++ {
				p := fmt.Sprintf("g%02d/f%06d", g, i)
				// Every other goroutine appends relaxed (as the mount does
				// on close): kill -9 must lose neither kind.
				if err := c.Append(context.Background(), catalog.JournalAppend{Path: p, Kind: catalog.KindNew, Version: 1, Relaxed: g%2 == 1}); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(w, "ack %s\n", p)
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
