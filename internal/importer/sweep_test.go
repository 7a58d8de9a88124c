package importer

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
)

// sweeper returns the env's association as the importer has it, an
// applier and a sweeper of small unpaced pages that wakes it.
func (e *env) sweeper(cfg SweepConfig) (*dra.Assoc, *Applier, *Sweeper) {
	e.t.Helper()
	ap := e.im.NewApplier(ApplyConfig{Owner: "test"})
	cfg.Notify = ap.Notify
	if cfg.PagesPerSecond == 0 {
		cfg.PagesPerSecond = -1
	}
	a, ok := e.im.table().ByID(e.a.AssociationId)
	if !ok {
		e.t.Fatal("no association")
	}
	return a, ap, e.im.NewSweeper(cfg)
}

// sweep sweeps a once and applies the hints it queued.
func (e *env) sweep(sw *Sweeper, ap *Applier, a *dra.Assoc) SweepResult {
	e.t.Helper()
	res, err := sw.SweepOnce(context.Background(), a)
	if err != nil {
		e.t.Fatalf("SweepOnce: %v", err)
	}
	if _, err := ap.Drain(context.Background()); err != nil {
		e.t.Fatalf("Drain: %v", err)
	}
	return res
}

// create makes a local file, as a write through the mount does before
// its export: no state (never exported).
func (e *env) create(rel, body string) {
	e.t.Helper()
	if err := os.WriteFile(e.dir+"/"+rel, []byte(body), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func TestSweepNewChangedDeleted(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	for _, k := range []string{"d.e", "d/a", "d/b", "d/c", "d0", "top", "u/x", "u/y", "v"} {
		e.put("data/"+k, []byte(k), nil)
	}
	e.listed("ExtData")
	e.listed("ExtData/d") // u is never listed
	a, ap, sw := e.sweeper(SweepConfig{PageSize: 2})

	// Nothing changed: no hint; 9 keys in pages of 2, u's keys passed
	// over: the page that ends in them is followed by one that starts
	// after them.
	res := e.sweep(sw, ap, a)
	want := SweepResult{Objects: 9, ListRequests: 5, Jumps: 1, LocalFiles: 7, Skipped: 2}
	if res != want {
		t.Fatalf("first sweep: %+v, want %+v", res, want)
	}

	e.put("data/d/new", []byte("new"), nil)
	etag := e.put("data/d/b", []byte("b, version two"), nil)
	e.del("data/d/c")
	e.put("data/u/z", []byte("z"), nil)         // a directory never listed
	e.put("data/n/m/deep", []byte("deep"), nil) // a new directory
	e.put("data/n/m/deeper", []byte("deeper"), nil)
	e.create("ExtData/d/local", "never exported")
	e.create("ExtData/mine", "never exported")

	// Pages [d.e d/a] [d/b d/new] [d0 n/m/deep], then after n/: [top u/x],
	// then after u/: [v].
	res = e.sweep(sw, ap, a)
	want = SweepResult{Objects: 9, ListRequests: 5, Jumps: 2, LocalFiles: 9, New: 2, Changed: 1, Deleted: 1, Skipped: 2}
	if res != want {
		t.Fatalf("second sweep: %+v, want %+v", res, want)
	}
	e.state("ExtData/d/new")
	if st := e.state("ExtData/d/b"); st.ETag != etag || !st.Flags.Has(hsm.Released) {
		t.Errorf("changed file: %+v", st)
	}
	e.absent("ExtData/d/c")
	e.absent("ExtData/u/z")
	if st := e.lstat("ExtData/n"); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("new directory: mode %o", st.Mode)
	}
	for _, rel := range []string{"ExtData/d/local", "ExtData/mine"} {
		if b, err := os.ReadFile(e.dir + "/" + rel); err != nil || string(b) != "never exported" {
			t.Errorf("local file %s: %q, %v", rel, b, err)
		}
	}
	// The new directory is listed at its first lookup, like any other.
	e.listed("ExtData/n")
	e.listed("ExtData/n/m")
	e.state("ExtData/n/m/deeper")

	// Converged: the next sweep finds nothing.
	if res = e.sweep(sw, ap, a); res.Hints() != 0 {
		t.Errorf("third sweep: %+v", res)
	}
	if s := e.im.Stats().Hints; s.New != 2 || s.Changed != 1 || s.Deleted != 1 {
		t.Errorf("applied: %+v", s)
	}
}

// A directory never listed is passed over in one jump (StartAfter), not
// page by page.
func TestSweepJumpsOverUnlisted(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	e.put("data/a", []byte("a"), nil)
	for i := range 20 {
		e.put(fmt.Sprintf("data/u/%02d", i), []byte("u"), nil)
	}
	e.put("data/z", []byte("z"), nil)
	e.listed("ExtData")
	a, ap, sw := e.sweeper(SweepConfig{PageSize: 2})
	etag := e.put("data/z", []byte("z two"), nil)
	res := e.sweep(sw, ap, a)
	// [a, u/00], then after u/: [z].
	want := SweepResult{Objects: 3, ListRequests: 2, Jumps: 1, LocalFiles: 2, Changed: 1, Skipped: 1}
	if res != want {
		t.Fatalf("sweep: %+v, want %+v", res, want)
	}
	if st := e.state("ExtData/z"); st.ETag != etag {
		t.Errorf("z after the jump: %+v", st)
	}
}

// Conflicts keep both sides; a file never exported is never removed.
func TestSweepConflicts(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	e.put("data/f", []byte("repository one"), nil)
	e.put("data/g", []byte("g"), nil)
	e.listed("ExtData")
	a, ap, sw := e.sweeper(SweepConfig{})
	e.dirty(e.im, "ExtData/f", []byte("local edit"))
	e.dirty(e.im, "ExtData/g", []byte("local g"))
	e.create("ExtData/h", "local h")
	etag := e.put("data/f", []byte("repository two"), nil)
	e.del("data/g")

	res := e.sweep(sw, ap, a)
	if res.Changed != 1 || res.Deleted != 1 || res.New != 0 {
		t.Fatalf("sweep: %+v", res)
	}
	cs := e.conflictCopies("ExtData", "f")
	if len(cs) != 1 {
		t.Fatalf("conflict copies of f: %v", cs)
	}
	if b, _ := os.ReadFile(e.dir + "/" + cs[0]); string(b) != "local edit" {
		t.Errorf("conflict copy holds %q", b)
	}
	if st := e.state("ExtData/f"); st.ETag != etag {
		t.Errorf("f is not the repository's version: %+v", st)
	}
	if got := e.content(e.im, "ExtData/f"); string(got) != "repository two" {
		t.Errorf("f reads %q", got)
	}
	if b, _ := os.ReadFile(e.dir + "/ExtData/g"); string(b) != "local g" {
		t.Errorf("dirty g after its object went: %q", b)
	}
	if b, _ := os.ReadFile(e.dir + "/ExtData/h"); string(b) != "local h" {
		t.Errorf("local h: %q", b)
	}
	if s := e.im.Stats().Hints; s.ConflictsChanged != 1 || s.ConflictsDeleted != 1 {
		t.Errorf("conflicts: %+v", s)
	}
	// Both sides stay as they are: the copy and g are local-only, h was
	// never exported; the next sweep queues nothing.
	if res := e.sweep(sw, ap, a); res.Hints() != 0 {
		t.Errorf("second sweep: %+v", res)
	}
}

// Only the events of the policy are queued; an association none of whose
// directories was listed costs no request.
func TestSweepPolicyAndUnlisted(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, api.EventNew)
	e.put("data/a", []byte("a"), nil)
	e.put("data/b", []byte("b"), nil)
	a, ap, sw := e.sweeper(SweepConfig{})
	if res := e.sweep(sw, ap, a); res != (SweepResult{}) {
		t.Fatalf("sweep of an association never listed: %+v", res)
	}
	e.listed("ExtData")
	e.put("data/a", []byte("a two"), nil)
	e.del("data/b")
	e.put("data/c", []byte("c"), nil)
	res := e.sweep(sw, ap, a)
	if res.New != 1 || res.Changed != 0 || res.Deleted != 0 {
		t.Fatalf("NEW only: %+v", res)
	}
	e.state("ExtData/b")
	e.state("ExtData/c")
}

// Keys that sort around "/" ("a-c" < "a.b" < "a/x" < "a0"), non-ASCII
// names and directories larger than the memory budget (sorted through
// the spill file): the merge sees both sides in one order, so a sweep
// over an unchanged tree queues nothing, and one change is one hint.
func TestSweepKeyOrderAndSpill(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	keys := []string{"a-c", "a.b", "a.d/z", "a/x", "a/y", "a0", "ab", "e", "é", "z/é/1", "z/é/2"}
	for i := range 40 {
		keys = append(keys, fmt.Sprintf("many/f%02d", i), fmt.Sprintf("many/f%02d.d/x", i))
	}
	for _, k := range keys {
		e.put("data/"+k, []byte(k), nil)
	}
	if _, err := e.im.ImportAll(context.Background(), e.a, nil); err != nil {
		t.Fatal(err)
	}
	for _, mem := range []int{0, 4} {
		a, ap, sw := e.sweeper(SweepConfig{PageSize: 7, MemEntries: mem})
		res := e.sweep(sw, ap, a)
		if res.Hints() != 0 || res.Objects != int64(len(keys)) || res.LocalFiles != int64(len(keys)) {
			t.Fatalf("MemEntries %d: unchanged tree: %+v", mem, res)
		}
	}
	a, ap, sw := e.sweeper(SweepConfig{PageSize: 7, MemEntries: 4})
	e.del("data/many/f17")
	e.put("data/many/f17.new", []byte("n"), nil)
	e.del("data/a.d/z")
	res := e.sweep(sw, ap, a)
	if res.New != 1 || res.Deleted != 2 || res.Changed != 0 {
		t.Fatalf("changes: %+v", res)
	}
	e.absent("ExtData/many/f17")
	e.state("ExtData/many/f17.new")
	e.absent("ExtData/a.d") // emptied here and in the repository
}

// The sweep alone, at a short interval, brings new, changed and deleted
// objects of listed directories, and nothing of a directory never listed.
func TestSweepRun(t *testing.T) {
	e := newEnv(t, Config{})
	e.policy(e.im, allEvents...)
	e.put("data/l/old", []byte("old"), nil)
	e.put("data/l/gone", []byte("gone"), nil)
	e.put("data/u/x", []byte("x"), nil)
	e.listed("ExtData")
	e.listed("ExtData/l")
	_, ap, sw := e.sweeper(SweepConfig{Interval: 200 * time.Millisecond, PageSize: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { ap.Run(ctx); done <- struct{}{} }()
	go func() { sw.Run(ctx); done <- struct{}{} }()
	defer func() { cancel(); <-done; <-done }()

	start := time.Now()
	e.put("data/l/new", []byte("new"), nil)
	etag := e.put("data/l/old", []byte("old, changed"), nil)
	e.del("data/l/gone")
	e.put("data/u/y", []byte("y"), nil)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, errNew := e.st.GetState("ExtData/l/new")
		st, _ := e.st.GetState("ExtData/l/old")
		_, errGone := e.st.Lstat("ExtData/l/gone")
		if errNew == nil && st.ETag == etag && errGone != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s: new %v, old %+v, gone %v; sweeps %+v", errNew, st, errGone, sw.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("changes visible after %v", time.Since(start).Round(time.Millisecond))
	e.absent("ExtData/u/y")
	s := sw.Stats()
	if s.Sweeps < 1 || s.LastEnd.IsZero() || s.Last.ListRequests < 2 || s.Total.Hints() < 3 {
		t.Errorf("stats: %+v", s)
	}
}

// A sweep keeps its page rate, and waits while reads hold half of the
// request slots or more (at most maxYield per page).
func TestSweepPaced(t *testing.T) {
	e := newEnv(t, Config{Concurrency: 4})
	e.policy(e.im, allEvents...)
	for i := range 4 {
		e.put(fmt.Sprintf("data/f%d", i), []byte("f"), nil)
	}
	e.listed("ExtData")
	a, _, sw := e.sweeper(SweepConfig{PageSize: 1, PagesPerSecond: 10})
	start := time.Now()
	res, err := sw.SweepOnce(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	// 4 keys in pages of 1: 4 or 5 pages (a full last page may say
	// truncated), 100 ms apart.
	if d := time.Since(start); d < time.Duration(res.ListRequests-1)*100*time.Millisecond || res.ListRequests < 4 {
		t.Errorf("%d pages in %v at 10 pages/s", res.ListRequests, d)
	}

	// Reads hold 2 of the 4 slots: the sweep waits until they are free.
	_, _, sw = e.sweeper(SweepConfig{PageSize: 1000})
	e.im.req <- struct{}{}
	e.im.req <- struct{}{}
	freed := time.Now().Add(300 * time.Millisecond)
	time.AfterFunc(300*time.Millisecond, func() { <-e.im.req; <-e.im.req })
	if _, err := sw.SweepOnce(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); now.Before(freed) || now.After(freed.Add(maxYield)) {
		t.Errorf("sweep ended %v after the reads' slots were freed", now.Sub(freed))
	}
}
