package writepath

import (
	"errors"
	"log/slog"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

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

	n, err := RecoverMoves(ctx, e.st, e.jnl, slog.New(slog.DiscardHandler))
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
	if n, err := RecoverMoves(ctx, e.st, e.jnl, slog.New(slog.DiscardHandler)); err != nil || n != 0 {
		t.Errorf("second recovery: %d %v", n, err)
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
