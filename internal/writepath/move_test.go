package writepath

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
)

// TestRecoverMoves: the daemon dies between a rename in the store and its
// RENAME entry (simulated: a move record and a rename made directly in the
// store, as Rename does before it journals). RecoverMoves, run at the next
// start, journals the renames that happened — the pending entries of the
// old names move to the new ones instead of being dropped as gone
// (invariant 1) — and drops the record of a rename that did not happen.
// A rename that fails leaves no record.
func TestRecoverMoves(t *testing.T) {
	e := newEnv(t)
	must(t, e.st.MkdirAll("ExtData/d/sub", 0o755))
	e.write("ExtData/d/a", "a")
	e.write("ExtData/d/sub/b", "b")
	e.write("ExtData/f", "f")
	e.write("ExtData/h", "h")
	must(t, e.st.Mkdir("ExtData/full", 0o755))
	e.write("ExtData/full/x", "x")

	// Failed renames end their records.
	if err := e.w.Rename(ctx, "ExtData/nope", "ExtData/nope2", 0); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("rename of a missing name: %v", err)
	}
	if err := e.w.Rename(ctx, "ExtData/d", "ExtData/full", 0); !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) {
		t.Fatalf("rename onto a non-empty directory: %v", err)
	}
	e.noMoves("failed renames")
	e.drain()
	e.write("ExtData/d/a", "a2") // never exported: still NEW
	e.write("ExtData/d/sub/b", "b2")
	e.write("ExtData/f", "f2")
	e.write("ExtData/h", "h2")

	// The crash: records begun, renames made, RENAMEs never appended.
	begin := func(from, to string) int64 {
		id, err := e.jnl.BeginMove(ctx, from, to)
		must(t, err)
		return id
	}
	begin("ExtData/d", "ExtData/e")
	must(t, e.st.Rename("ExtData/d", "ExtData/e", 0))
	begin("ExtData/h", "ExtData/i")
	must(t, e.st.Rename("ExtData/h", "ExtData/i", 0))
	begin("ExtData/f", "ExtData/g") // died before the rename

	n, err := RecoverMoves(ctx, Config{Store: e.st, Journal: e.jnl})
	must(t, err)
	if n != 2 {
		t.Errorf("RecoverMoves journaled %d renames, want 2", n)
	}
	got := entriesOf(e.pending(""))
	want := []entry{
		{"ExtData/e", "RENAME", "ExtData/d"},
		{"ExtData/e/a", "NEW", ""},
		{"ExtData/e/sub/b", "NEW", ""},
		{"ExtData/f", "NEW", ""},
		{"ExtData/i", "NEW", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("journal after recovery %v, want %v", got, want)
	}
	e.noMoves("after recovery")
	// Recovery with nothing left to settle does nothing.
	if n, err := RecoverMoves(ctx, Config{Store: e.st, Journal: e.jnl}); err != nil || n != 0 {
		t.Errorf("second recovery: %d %v", n, err)
	}
}

// listedRecorder is the importer's record of listed directories, in the
// catalog (as internal/importer keeps it), counting its calls.
type listedRecorder struct {
	cat         catalog.Catalog
	renamed     int
	movedListed int
}

func (l *listedRecorder) Renamed(ctx context.Context, from, to string) error {
	l.renamed++
	return l.cat.MoveListed(ctx, keypath.ToCatalog(from), keypath.ToCatalog(to))
}

func (l *listedRecorder) MovedListed(ctx context.Context, from, to string) error {
	l.movedListed++
	return nil
}

// TestRecoverMovesListed: a directory renamed by a daemon killed before it
// journaled the rename keeps its listed records under its new name after
// recovery — else its first lookup there lists the new prefix, and files
// deleted in it come back from their objects (TestModel, seed
// 1796317249404454187 sequence 562: a file unlinked, its directory renamed
// with a kill in the window, then renamed back, and the file was there
// again). The same holds outside exporting associations, where the record
// is kept only for the listed records; a rename through the Writer moves
// them once, with its record.
func TestRecoverMovesListed(t *testing.T) {
	for _, tc := range []struct{ name, root string }{{"exporting", "ExtData"}, {"not exporting", "plain"}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			lr := &listedRecorder{cat: e.cat}
			e.w = New(Config{Store: e.st, Journal: e.jnl, Listed: lr})
			d, d2, d3 := tc.root+"/d", tc.root+"/d2", tc.root+"/d3"
			must(t, e.st.MkdirAll(d+"/sub", 0o755))
			for _, p := range []string{d, d + "/sub"} {
				must(t, e.cat.MarkListed(ctx, catalog.ListedDir{Path: keypath.ToCatalog(p), ListedAt: time.Now()}))
			}
			listed := func(p string) bool {
				t.Helper()
				_, ok, err := e.cat.Listed(ctx, keypath.ToCatalog(p))
				must(t, err)
				return ok
			}
			// The crash: the record begun, the rename made, nothing after.
			_, err := e.jnl.BeginMove(ctx, keypath.ToCatalog(d), keypath.ToCatalog(d2))
			must(t, err)
			must(t, e.st.Rename(d, d2, 0))
			if _, err := RecoverMoves(ctx, Config{Store: e.st, Journal: e.jnl, Listed: lr}); err != nil {
				t.Fatal(err)
			}
			if listed(d) || !listed(d2) || !listed(d2+"/sub") {
				t.Fatalf("after recovery: %s listed %v, %s listed %v (want the records moved)", d, listed(d), d2, listed(d2))
			}
			if lr.movedListed != 1 || lr.renamed != 0 {
				t.Fatalf("recovery told the importer %d MovedListed, %d Renamed; want 1, 0", lr.movedListed, lr.renamed)
			}
			// A second recovery finds nothing, and the records stay.
			if _, err := RecoverMoves(ctx, Config{Store: e.st, Journal: e.jnl, Listed: lr}); err != nil {
				t.Fatal(err)
			}
			must(t, e.w.Rename(ctx, d2, d3, 0))
			if listed(d2) || !listed(d3) || !listed(d3+"/sub") {
				t.Fatalf("after a rename: %s listed %v, %s listed %v (want the records moved)", d2, listed(d2), d3, listed(d3))
			}
			if lr.movedListed != 2 || lr.renamed != 0 {
				t.Fatalf("the rename told the importer %d MovedListed, %d Renamed; want 2, 0", lr.movedListed, lr.renamed)
			}
			e.noMoves("after the rename")
		})
	}
}

// TestRenameJournal: the entries of each kind of rename — within the
// association, of a directory, outside it, out of it, a tree moved into
// it (NEW for every entry below, after the RENAME) — and RENAME_EXCHANGE
// (CHANGED for both names; EINVAL for a directory or a released file
// inside an exporting association); no move record is left.
func TestRenameJournal(t *testing.T) {
	e := newEnv(t)
	e.write("ExtData/keep", "k")
	must(t, e.st.MkdirAll("ExtData/dir", 0o755))
	e.write("ExtData/dir/in", "i")
	e.write("ExtData/x", "x")
	e.write("ExtData/y", "y")
	e.drain()
	steps := []struct {
		name string
		op   func() error
		want []entry
	}{
		{"rename file", func() error { return e.w.Rename(ctx, "ExtData/keep", "ExtData/kept", 0) },
			[]entry{{"ExtData/kept", "RENAME", "ExtData/keep"}}},
		{"rename directory", func() error { return e.w.Rename(ctx, "ExtData/dir", "ExtData/dir2", 0) },
			[]entry{{"ExtData/dir2", "RENAME", "ExtData/dir"}}},
		{"outside the association", func() error {
			e.write("out", "o")
			must(t, e.st.Mkdir("outdir", 0o755))
			return e.w.Rename(ctx, "out", "outdir/out", 0)
		}, nil},
		{"rename out of the association", func() error { return e.w.Rename(ctx, "ExtData/kept", "kept", 0) },
			[]entry{{"kept", "RENAME", "ExtData/kept"}}},
		{"tree moved into the association", func() error {
			must(t, e.st.MkdirAll("tree/sub", 0o755))
			e.write("tree/sub/x", "x")
			must(t, e.st.Symlink("x", "tree/l"))
			return e.w.Rename(ctx, "tree", "ExtData/tree", 0)
		}, []entry{{"ExtData/tree", "RENAME", "tree"}, {"ExtData/tree/l", "NEW", ""},
			{"ExtData/tree/sub", "NEW", ""}, {"ExtData/tree/sub/x", "NEW", ""}}},
		{"exchange", func() error { return e.w.Rename(ctx, "ExtData/x", "ExtData/y", store.RenameExchange) },
			[]entry{{"ExtData/x", "CHANGED", ""}, {"ExtData/y", "CHANGED", ""}}},
		{"exchange of directories refused", func() error {
			err := e.w.Rename(ctx, "ExtData/dir2", "ExtData/tree", store.RenameExchange)
			if !errors.Is(err, unix.EINVAL) {
				t.Errorf("exchange of directories: %v, want EINVAL", err)
			}
			return nil
		}, nil},
	}
	for _, s := range steps {
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := entriesOf(e.pending(""))
		if !slices.Equal(got, s.want) && !(len(got) == 0 && len(s.want) == 0) {
			t.Errorf("%s: journal %v, want %v", s.name, got, s.want)
		}
		e.noMoves(s.name)
		e.drain()
	}
	if e.notify.Load() == 0 {
		t.Error("the exporter was never notified")
	}
}
