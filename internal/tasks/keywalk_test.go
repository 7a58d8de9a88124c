package tasks

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/store"
)

// TestKeyWalkOrder: the walk yields every entry's key in the bytewise
// order ListObjectsV2 lists keys, although a directory "a" sorts before
// the file "a.txt" by name while its key "a/" sorts after "a.txt" ('.' <
// '/' < '0').
func TestKeyWalkOrder(t *testing.T) {
	root := t.TempDir()
	st, err := store.Open(root)
	must(t, err)
	defer st.Close()
	files := []string{"A", "a-", "a.txt", "a0", "ab", "a/x", "a/x.y", "a/b/c", "a.d/z", "é/1", "a/b.c"}
	want := map[string]bool{}
	for _, f := range files {
		p := filepath.Join(root, "D", f)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, nil, 0o644))
		want[f] = true
		for d := filepath.Dir(f); d != "."; d = filepath.Dir(d) {
			want[d+"/"] = true
		}
	}
	must(t, os.Mkdir(filepath.Join(root, "D", "empty"), 0o755))
	want["empty/"] = true
	w := newKeyWalk(st, "D", func(rel string, err error) { t.Errorf("%s: %v", rel, err) })
	var got []string
	for e, ok := w.next(); ok; e, ok = w.next() {
		if strings.HasSuffix(e.key, "/") != (e.typ == 0o040000) {
			t.Errorf("%s: type %o", e.key, e.typ)
		}
		if rel := w.rel(e.key); !strings.HasPrefix(rel, "D/") {
			t.Errorf("rel of %s: %s", e.key, rel)
		}
		got = append(got, e.key)
	}
	if exp := slices.Sorted(maps.Keys(want)); !slices.Equal(got, exp) {
		t.Errorf("walk:\n%q\nwant (sorted keys)\n%q", got, exp)
	}
	// A missing directory walks nothing, and is not a failure.
	if _, ok := newKeyWalk(st, "missing", func(rel string, err error) { t.Errorf("%s: %v", rel, err) }).next(); ok {
		t.Error("walk of a missing directory yielded an entry")
	}
}
