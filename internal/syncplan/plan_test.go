package syncplan

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sliceIter yields fixed entries and counts how many it has handed out.
type sliceIter struct {
	ents   []Entry
	read   int
	err    error // returned after the entries, instead of the end
	closed bool
}

func (s *sliceIter) Next() (Entry, bool, error) {
	if s.read == len(s.ents) {
		if s.err != nil {
			return Entry{}, false, s.err
		}
		return Entry{}, false, nil
	}
	s.read++
	return s.ents[s.read-1], true, nil
}

func (s *sliceIter) Close() error { s.closed = true; return nil }

var t0 = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)

// ents builds entries from "rel" or "rel:size" or "rel:size:+secs".
func ents(specs ...string) []Entry {
	var out []Entry
	for _, s := range specs {
		parts := strings.Split(s, ":")
		e := Entry{Rel: parts[0], Size: 1, ModTime: t0, Path: "p/" + parts[0]}
		if len(parts) > 1 {
			fmt.Sscan(parts[1], &e.Size)
		}
		if len(parts) > 2 {
			var secs int
			fmt.Sscan(parts[2], &secs)
			e.ModTime = t0.Add(time.Duration(secs) * time.Second)
		}
		out = append(out, e)
	}
	return out
}

// render prints actions as "copy rel", "update rel", "delete rel".
func render(as []Action) []string {
	var out []string
	for _, a := range as {
		switch {
		case a.Kind == ActDelete:
			out = append(out, "delete "+a.Dst.Rel)
		case a.Exists:
			if a.Src.Rel != a.Dst.Rel {
				out = append(out, "BAD update "+a.Src.Rel+" "+a.Dst.Rel)
			}
			out = append(out, "update "+a.Src.Rel)
		default:
			out = append(out, "copy "+a.Src.Rel)
		}
	}
	return out
}

func runPlan(t *testing.T, src, dst []Entry, opts Options) []string {
	t.Helper()
	var got []Action
	err := Plan(context.Background(), &sliceIter{ents: src}, &sliceIter{ents: dst}, opts, func(a Action) error {
		got = append(got, a)
		return nil
	})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return render(got)
}

func TestPlanMerge(t *testing.T) {
	ex := func(p string) Filter { return Filter{Pattern: p} }
	in := func(p string) Filter { return Filter{Include: true, Pattern: p} }
	cases := []struct {
		name     string
		src, dst []Entry
		opts     Options
		want     []string
	}{
		{"both empty", nil, nil, Options{}, nil},
		{"only source", ents("a", "b/c"), nil, Options{}, []string{"copy a", "copy b/c"}},
		{"only destination, no delete", nil, ents("a", "b"), Options{}, nil},
		{"only destination, delete", nil, ents("a", "b"), Options{Delete: true}, []string{"delete a", "delete b"}},
		{"both, same", ents("a", "b"), ents("a", "b"), Options{}, nil},
		{"both, size differs", ents("a:2", "b"), ents("a:3", "b"), Options{}, []string{"update a"}},
		{"upload: newer source", ents("a:1:+5"), ents("a:1"), Options{Direction: Upload}, []string{"update a"}},
		{"download: newer object not copied", ents("a:1:+5"), ents("a:1"), Options{Direction: Download}, nil},
		{"download: newer local copied", ents("a:1"), ents("a:1:+5"), Options{Direction: Download}, []string{"update a"}},
		{"size-only", ents("a:1:+5"), ents("a:1"), Options{Compare: CompareSizeOnly}, nil},
		{
			"interleaved with delete",
			ents("a", "c", "d/x", "f"),
			ents("b", "c:9", "d/w", "e", "g"),
			Options{Delete: true},
			[]string{"copy a", "delete b", "update c", "delete d/w", "copy d/x", "delete e", "copy f", "delete g"},
		},
		{
			"interleaved without delete",
			ents("a", "c", "d/x", "f"),
			ents("b", "c:9", "d/w", "e", "g"),
			Options{},
			[]string{"copy a", "update c", "copy d/x", "copy f"},
		},
		{
			"key order, not path-component order",
			ents("a.txt", "a/b", "a0"),
			ents("a-b", "a/b"),
			Options{Delete: true},
			[]string{"delete a-b", "copy a.txt", "copy a0"},
		},
		{
			"excluded destination file is not deleted",
			ents("keep.txt"),
			ents("keep.txt", "logs/old.log", "x.tmp"),
			Options{Delete: true, Filters: Filters{ex("*.log")}},
			[]string{"delete x.tmp"},
		},
		{
			"excluded source file is not copied, and its destination twin not deleted",
			ents("a.tmp", "b"),
			ents("a.tmp:7"),
			Options{Delete: true, Filters: Filters{ex("*.tmp")}},
			[]string{"copy b"},
		},
		{
			"include after exclude brings files back on both sides",
			ents("a.jpg", "b.txt"),
			ents("c.txt", "d.jpg"),
			Options{Delete: true, Filters: Filters{ex("*"), in("*.txt")}},
			[]string{"copy b.txt", "delete c.txt"},
		},
		{
			"exclude a directory",
			ents("data/a", "data/b", "top"),
			ents("data/c", "other"),
			Options{Delete: true, Filters: Filters{ex("data/*")}},
			[]string{"delete other", "copy top"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := runPlan(t, c.src, c.dst, c.opts)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("plan:\n got  %q\n want %q", got, c.want)
			}
		})
	}
}

func TestPlanActionFields(t *testing.T) {
	src := ents("a:1", "b:2")
	dst := ents("b:3", "c:4")
	var got []Action
	err := Plan(context.Background(), &sliceIter{ents: src}, &sliceIter{ents: dst}, Options{Delete: true}, func(a Action) error {
		got = append(got, a)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Action{
		{Kind: ActCopy, Src: src[0]},
		{Kind: ActCopy, Src: src[1], Dst: dst[0], Exists: true},
		{Kind: ActDelete, Dst: dst[1], Exists: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("actions:\n got  %+v\n want %+v", got, want)
	}
}

// TestPlanReadsOneAhead checks that when Plan emits the action for Rel r, it
// has read from each side at most the entries up to r plus one.
func TestPlanReadsOneAhead(t *testing.T) {
	src := &sliceIter{ents: ents("a", "b", "c", "e", "g", "h", "i")}
	dst := &sliceIter{ents: ents("a", "d", "e", "f", "j", "k")}
	upTo := func(es []Entry, rel string) int {
		n := 0
		for _, e := range es {
			if e.Rel <= rel {
				n++
			}
		}
		return n
	}
	emitted := 0
	err := Plan(context.Background(), src, dst, Options{Delete: true, Compare: CompareSizeOnly}, func(a Action) error {
		emitted++
		rel := a.Src.Rel
		if a.Kind == ActDelete {
			rel = a.Dst.Rel
		}
		for _, s := range []*sliceIter{src, dst} {
			if limit := upTo(s.ents, rel) + 1; s.read > limit {
				t.Errorf("at %q: read %d entries of a side, at most %d allowed", rel, s.read, limit)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if emitted != 9 { // copy b c g h i, delete d f j k; a and e are equal
		t.Errorf("emitted %d actions, want 9", emitted)
	}
	if !src.closed || !dst.closed {
		t.Errorf("Plan did not close its iterators (src %v, dst %v)", src.closed, dst.closed)
	}
}

func TestPlanErrors(t *testing.T) {
	boom := errors.New("boom")
	t.Run("source out of order", func(t *testing.T) {
		err := Plan(context.Background(), &sliceIter{ents: ents("b", "a")}, &sliceIter{}, Options{}, func(Action) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "out of order") {
			t.Fatalf("err = %v, want out of order", err)
		}
	})
	t.Run("destination duplicate", func(t *testing.T) {
		err := Plan(context.Background(), &sliceIter{}, &sliceIter{ents: ents("a", "a")}, Options{Delete: true}, func(Action) error { return nil })
		if err == nil || !strings.Contains(err.Error(), "out of order") {
			t.Fatalf("err = %v, want out of order", err)
		}
	})
	t.Run("out of order even when filtered", func(t *testing.T) {
		err := Plan(context.Background(), &sliceIter{ents: ents("b.tmp", "a")}, &sliceIter{}, Options{Filters: Filters{{Pattern: "*.tmp"}}}, func(Action) error { return nil })
		if err == nil {
			t.Fatal("no error for an out-of-order source")
		}
	})
	t.Run("iterator error", func(t *testing.T) {
		var n int
		err := Plan(context.Background(), &sliceIter{ents: ents("a"), err: boom}, &sliceIter{}, Options{}, func(Action) error { n++; return nil })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want boom", err)
		}
	})
	t.Run("emit error stops", func(t *testing.T) {
		var n int
		err := Plan(context.Background(), &sliceIter{ents: ents("a", "b", "c")}, &sliceIter{}, Options{}, func(Action) error { n++; return boom })
		if !errors.Is(err, boom) || n != 1 {
			t.Fatalf("err = %v after %d emits, want boom after 1", err, n)
		}
	})
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var n int
		err := Plan(ctx, &sliceIter{ents: ents("a", "b", "c")}, &sliceIter{}, Options{}, func(Action) error { n++; cancel(); return nil })
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Fatalf("err = %v after %d emits, want Canceled after 1", err, n)
		}
	})
}

// genIter yields n synthetic entries "dNNN/fNNNNNNN" in order without
// holding them: Rel i is made on demand.
type genIter struct {
	n, i  int
	every int // skip entries whose index is a multiple of every (0: none)
	size  int64
}

func (g *genIter) Next() (Entry, bool, error) {
	for g.i < g.n {
		i := g.i
		g.i++
		if g.every > 0 && i%g.every == 0 {
			continue
		}
		rel := fmt.Sprintf("d%03d/f%07d", i/10000, i)
		return Entry{Rel: rel, Size: g.size, ModTime: t0, Path: rel}, true, nil
	}
	return Entry{}, false, nil
}

// TestPlanBoundedMemory plans a sync of 1,000,000 entries per side (fewer
// with -short) and checks that the heap stays small: Plan holds one entry per
// side, whatever the number of files. FERRY_SYNCPLAN_ENTRIES overrides n.
func TestPlanBoundedMemory(t *testing.T) {
	n := 1_000_000
	if testing.Short() {
		n = 100_000
	}
	if v := os.Getenv("FERRY_SYNCPLAN_ENTRIES"); v != "" {
		fmt.Sscan(v, &n)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak uint64
	var copies, deletes, k int
	src := &genIter{n: n, every: 7, size: 1}
	dst := &genIter{n: n, every: 5, size: 2}
	err := Plan(context.Background(), src, dst, Options{Delete: true, Filters: Filters{{Pattern: "*9"}}}, func(a Action) error {
		if a.Kind == ActCopy {
			copies++
		} else {
			deletes++
		}
		if k++; k%100_000 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms)
	peak = max(peak, ms.HeapInuse)
	// Expected counts, by brute force over indices.
	var wantCopies, wantDeletes int
	for i := 0; i < n; i++ {
		if i%10 == 9 { // excluded by "*9"
			continue
		}
		inSrc, inDst := i%7 != 0, i%5 != 0
		switch {
		case inSrc:
			wantCopies++ // sizes differ when in both
		case inDst:
			wantDeletes++
		}
	}
	if copies != wantCopies || deletes != wantDeletes {
		t.Errorf("copies %d deletes %d, want %d and %d", copies, deletes, wantCopies, wantDeletes)
	}
	const limit = 16 << 20
	growth := int64(peak) - int64(base)
	t.Logf("%d entries per side: heap in use grew by %d KiB (base %d KiB)", n, growth>>10, base>>10)
	if growth > limit {
		t.Errorf("heap in use grew by %d MiB over %d entries; Plan must not hold the listings", growth>>20, n)
	}
}

// A source entry the walk could not read protects what the destination holds
// under its name from --delete (ferry keeps it; aws would delete it).
func TestPlanKeepsDestinationOfSkippedSource(t *testing.T) {
	skipped := func(rel string) Entry { return Entry{Rel: rel, Skipped: true} }
	src := []Entry{ents("a")[0], skipped("d/"), skipped("e"), ents("f")[0]}
	dst := ents("0old", "a", "d/x", "d/y/z", "d0", "e", "g")
	got := runPlan(t, src, dst, Options{Delete: true})
	want := []string{"delete 0old", "delete d0", "copy f", "delete g"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plan with skipped source entries:\ngot  %q\nwant %q", got, want)
	}
}

func TestWalkReportsSkippedEntries(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(root+"/a", []byte("a"), 0o644)
	if err := syscall.Mkfifo(root+"/p", 0o644); err != nil {
		t.Fatal(err)
	}
	it := WalkLocal(context.Background(), root, LocalOptions{FollowSymlinks: true, Warn: func(Warning) {}})
	var got []string
	for {
		e, ok, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		got = append(got, fmt.Sprintf("%s skipped=%v", e.Rel, e.Skipped))
	}
	want := []string{"a skipped=false", "p skipped=true"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("walk: got %q, want %q", got, want)
	}
}
