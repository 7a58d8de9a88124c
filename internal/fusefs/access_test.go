package fusefs

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestAccessRecords: opens of files the repository knows reach the catalog's
// access records — when the batch is full, and the rest at Close — and
// nothing else does (files without `exists`, creations).
func TestAccessRecords(t *testing.T) {
	cat, err := catalog.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "catalog.db"), catalog.Options{})
	must(t, err)
	var e *env
	t.Cleanup(func() { // after the unmount
		if e != nil {
			e.fsys.Close()
		}
		cat.Close()
	})
	e = mount(t, Options{Access: cat, AccessBatch: 2, AccessEvery: time.Hour})
	for _, n := range []string{"k1", "k2", "local"} {
		must(t, os.WriteFile(e.s(n), []byte(n), 0o644))
	}
	for _, n := range []string{"k1", "k2"} {
		must(t, e.st.SetState(n, store.State{Flags: hsm.Exists | hsm.Archived, Size: 2}))
	}
	records := func() []string {
		as, err := cat.LeastRecentlyAccessed(context.Background(), nil, 10)
		must(t, err)
		var out []string
		for _, a := range as {
			out = append(out, a.Path)
		}
		return out
	}
	open := func(n string) {
		f, err := os.Open(e.m(n))
		must(t, err)
		must(t, f.Close())
	}

	must(t, os.WriteFile(e.m("created"), []byte("c"), 0o644)) // a creation: no record
	open("k1")
	open("local") // the batch is full: written now, without k1's neighbour
	testutil.Eventually(t, 10*time.Second, "the full batch written", func() bool { return len(records()) > 0 })
	if got := records(); !slices.Equal(got, []string{"k1"}) {
		t.Fatalf("after a full batch: %v, want [k1]", got)
	}
	open("k2")
	e.fsys.Close()
	if got := records(); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Fatalf("after Close: %v, want [k1 k2] (oldest first)", got)
	}
}

// BenchmarkOpenClose: open + close of one file through the mount, without
// and with access records (the cost of noting the path on every open).
func BenchmarkOpenClose(b *testing.B) {
	for _, rec := range []bool{false, true} {
		b.Run(map[bool]string{false: "access=off", true: "access=on"}[rec], func(b *testing.B) {
			var opt Options
			var e *env
			if rec {
				cat, err := catalog.OpenSQLite(context.Background(), filepath.Join(b.TempDir(), "catalog.db"), catalog.Options{})
				must(b, err)
				b.Cleanup(func() {
					if e != nil {
						e.fsys.Close()
					}
					cat.Close()
				})
				opt.Access = cat
			}
			e = mount(b, opt)
			must(b, os.MkdirAll(e.s("d/e"), 0o755))
			must(b, os.WriteFile(e.s("d/e/f"), []byte("f"), 0o644))
			must(b, e.st.SetState("d/e/f", store.State{Flags: hsm.Exists | hsm.Archived, Size: 1}))
			b.ResetTimer()
			for range b.N {
				f, err := os.Open(e.m("d/e/f"))
				if err != nil {
					b.Fatal(err)
				}
				f.Close()
			}
		})
	}
}
