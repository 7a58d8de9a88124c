package fusefs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestRecoverMoves: the daemon dies between a rename in the store and its
// RENAME entry (simulated: a move record and a rename made directly in the
// store, as Rename does before it journals). RecoverMoves, run at the next
// start, journals the renames that happened — the pending entries of the
// old names move to the new ones instead of being dropped as gone
// (invariant 1) — and drops the record of a rename that did not happen.
// A rename through the mount that fails leaves no record.
func TestRecoverMoves(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	ctx := context.Background()
	m := func(p string) string { return je.m(filepath.Join("ExtData", p)) }
	must(t, os.MkdirAll(m("d/sub"), 0o755))
	must(t, os.WriteFile(m("d/a"), []byte("a"), 0o644))
	must(t, os.WriteFile(m("d/sub/b"), []byte("b"), 0o644))
	must(t, os.WriteFile(m("f"), []byte("f"), 0o644))
	must(t, os.WriteFile(m("h"), []byte("h"), 0o644))
	must(t, os.Mkdir(m("full"), 0o755))
	must(t, os.WriteFile(m("full/x"), []byte("x"), 0o644))

	// Failed renames through the mount end their records.
	if err := os.Rename(m("nope"), m("nope2")); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("rename of a missing name: %v", err)
	}
	if err := os.Rename(m("d"), m("full")); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("rename onto a non-empty directory: %v", err)
	}
	if ms, err := je.cat.Moves(ctx); err != nil || len(ms) != 0 {
		t.Fatalf("failed renames left move records: %+v %v", ms, err)
	}
	je.drainJournal(t)
	must(t, os.WriteFile(m("d/a"), []byte("a2"), 0o644)) // never exported: still NEW
	must(t, os.WriteFile(m("d/sub/b"), []byte("b2"), 0o644))
	must(t, os.WriteFile(m("f"), []byte("f2"), 0o644))
	must(t, os.WriteFile(m("h"), []byte("h2"), 0o644))

	// The crash: records begun, renames made, RENAMEs never appended.
	begin := func(from, to string) int64 {
		id, err := je.jnl.BeginMove(ctx, from, to)
		must(t, err)
		return id
	}
	begin("ExtData/d", "ExtData/e")
	must(t, je.st.Rename("ExtData/d", "ExtData/e", 0))
	begin("ExtData/h", "ExtData/i")
	must(t, je.st.Rename("ExtData/h", "ExtData/i", 0))
	begin("ExtData/f", "ExtData/g") // died before the rename

	n, err := RecoverMoves(ctx, je.st, je.jnl, slog.New(slog.DiscardHandler))
	must(t, err)
	if n != 2 {
		t.Errorf("RecoverMoves journaled %d renames, want 2", n)
	}
	got := entriesOf(je.pending(t, ""))
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
	if ms, err := je.cat.Moves(ctx); err != nil || len(ms) != 0 {
		t.Errorf("move records left after recovery: %+v %v", ms, err)
	}
	// Recovery with nothing left to settle does nothing.
	if n, err := RecoverMoves(ctx, je.st, je.jnl, slog.New(slog.DiscardHandler)); err != nil || n != 0 {
		t.Errorf("second recovery: %d %v", n, err)
	}
}
