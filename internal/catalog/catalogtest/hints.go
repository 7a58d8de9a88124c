package catalogtest

import (
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// The import hint queue (catalog.ImportHints).

func hint(bucket, key string, kind catalog.HintKind, seqr string) catalog.ImportHint {
	return catalog.ImportHint{Source: "test", Bucket: bucket, Key: key, Kind: kind, Sequencer: seqr, Size: -1}
}

func enqueue(t *testing.T, c catalog.Catalog, hs ...catalog.ImportHint) []catalog.HintOutcome {
	t.Helper()
	out, err := c.EnqueueHints(ctx, hs...)
	must(t, err)
	if len(out) != len(hs) {
		t.Fatalf("EnqueueHints: %d outcomes for %d hints", len(out), len(hs))
	}
	return out
}

func hintDepth(t *testing.T, c catalog.Catalog) int64 {
	t.Helper()
	d, err := c.HintDepth(ctx)
	must(t, err)
	return d
}

// claimAll claims every ready hint for owner (lease 1 minute).
func claimAll(t *testing.T, c catalog.Catalog, owner string) []catalog.QueuedHint {
	t.Helper()
	hs, err := c.ClaimHints(ctx, owner, 1000, time.Minute)
	must(t, err)
	return hs
}

func keysOf(hs []catalog.QueuedHint) string {
	var b strings.Builder
	for i, h := range hs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h.Bucket + "/" + h.Key)
	}
	return b.String()
}

// testHintsDedup: one pending hint per (bucket, key); a newer hint carries
// its details into the pending one, an equal or older one changes nothing.
func testHintsDedup(t *testing.T, c catalog.Catalog, clk *Clock) {
	h1 := hint("b", "dir/a b+c%2F.txt", catalog.HintCreated, "0055AED6DCD90281E5")
	h1.Size, h1.ETag, h1.EventTime = 5, `"e1"`, clk.Now().Add(-time.Second).UTC()
	out := enqueue(t, c, h1, hint("b", "other", catalog.HintCreated, "01"), hint("b2", "dir/a b+c%2F.txt", catalog.HintCreated, "01"))
	if out[0] != catalog.HintQueued || out[1] != catalog.HintQueued || out[2] != catalog.HintQueued {
		t.Fatalf("first hints: %v, want all queued (the same key in another bucket is another object)", out)
	}
	// The same event delivered again.
	if out := enqueue(t, c, h1); out[0] != catalog.HintStale {
		t.Fatalf("duplicate delivery: %v, want stale", out[0])
	}
	// A later change of the same key.
	h2 := h1
	h2.Kind, h2.Sequencer, h2.Size, h2.ETag = catalog.HintRemoved, "0055AED6DCD90281F0", -1, ""
	if out := enqueue(t, c, h2); out[0] != catalog.HintReplaced {
		t.Fatalf("newer hint: %v, want newer", out[0])
	}
	if d := hintDepth(t, c); d != 3 {
		t.Fatalf("depth %d, want 3: duplicates must collapse", d)
	}
	hs := claimAll(t, c, "imp")
	if keysOf(hs) != "b/dir/a b+c%2F.txt b/other b2/dir/a b+c%2F.txt" {
		t.Fatalf("claimed %q", keysOf(hs))
	}
	got := hs[0]
	if got.Kind != catalog.HintRemoved || got.Sequencer != h2.Sequencer || got.Size != -1 || got.ETag != "" || got.Source != "test" ||
		!got.EventTime.Equal(h1.EventTime) {
		t.Fatalf("collapsed hint %+v, want the newer one's details", got)
	}
	if got.Key != h1.Key {
		t.Fatalf("key %q changed in the catalog, want %q byte for byte", got.Key, h1.Key)
	}
}

// testHintsSequencer: sequencers are compared only for the same key, right
// padded with zeros, case-insensitively; an older one never replaces a
// newer one.
func testHintsSequencer(t *testing.T, c catalog.Catalog, clk *Clock) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"0A", "0a", 0},
		{"0A", "0A00", 0}, // right padding
		{"1", "0FFF", 1},
		{"0055AED6DCD90281E5", "0055AED6DCD90281E6", -1},
		{"0055AED6DCD90281E5", "0055AED6DCD90281E", 1},
	} {
		if got := catalog.CompareSequencers(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareSequencers(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := catalog.CompareSequencers(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareSequencers(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
	newer := hint("b", "k", catalog.HintRemoved, "00F0")
	older := hint("b", "k", catalog.HintCreated, "00E9")
	other := hint("b", "k2", catalog.HintCreated, "0001") // smaller, but another key
	out := enqueue(t, c, newer, older, other)
	if out[0] != catalog.HintQueued || out[1] != catalog.HintStale || out[2] != catalog.HintQueued {
		t.Fatalf("outcomes %v, want queued stale queued", out)
	}
	// In another call too, and with a later event time: the sequencer wins.
	older.EventTime = clk.Now().Add(time.Hour)
	if out := enqueue(t, c, older); out[0] != catalog.HintStale {
		t.Fatalf("older sequencer with a later time: %v, want stale", out[0])
	}
	hs := claimAll(t, c, "imp")
	if len(hs) != 2 || hs[0].Kind != catalog.HintRemoved || hs[0].Sequencer != "00F0" {
		t.Fatalf("claimed %+v: the older sequencer replaced the newer", hs)
	}
	// Without sequencers, event times order; an event without either is
	// taken as the later arrival unless it says the same.
	t1 := clk.Now().UTC()
	a := hint("b", "t", catalog.HintCreated, "")
	a.EventTime = t1
	b := a
	b.Kind, b.EventTime = catalog.HintRemoved, t1.Add(-time.Second)
	out = enqueue(t, c, a, b)
	if out[0] != catalog.HintQueued || out[1] != catalog.HintStale {
		t.Fatalf("by event time: %v, want queued stale", out)
	}
	c2 := a
	c2.EventTime = time.Time{}
	c2.Kind = catalog.HintRemoved
	if out := enqueue(t, c, c2); out[0] != catalog.HintReplaced {
		t.Fatalf("unordered different hint: %v, want newer", out[0])
	}
}

// testHintsArrivalOrder: claims come in arrival order of keys, and a key
// keeps its place when later hints for it collapse into it.
func testHintsArrivalOrder(t *testing.T, c catalog.Catalog, clk *Clock) {
	enqueue(t, c, hint("b", "z", catalog.HintCreated, "01"))
	clk.Advance(time.Millisecond)
	enqueue(t, c, hint("b", "a", catalog.HintCreated, "01"), hint("a", "m", catalog.HintCreated, "01"))
	clk.Advance(time.Millisecond)
	if out := enqueue(t, c, hint("b", "z", catalog.HintRemoved, "02")); out[0] != catalog.HintReplaced {
		t.Fatalf("later hint for z: %v", out[0])
	}
	enqueue(t, c, hint("b", "c", catalog.HintCreated, ""))
	hs, err := c.ClaimHints(ctx, "imp", 2, time.Minute)
	must(t, err)
	if keysOf(hs) != "b/z b/a" {
		t.Fatalf("first claim %q, want arrival order b/z b/a", keysOf(hs))
	}
	if hs[0].FirstSeq >= hs[1].FirstSeq || hs[0].Seq <= hs[1].Seq {
		t.Fatalf("z: first_seq %d seq %d; a: first_seq %d seq %d", hs[0].FirstSeq, hs[0].Seq, hs[1].FirstSeq, hs[1].Seq)
	}
	hs = claimAll(t, c, "imp")
	if keysOf(hs) != "a/m b/c" {
		t.Fatalf("second claim %q, want a/m b/c", keysOf(hs))
	}
	age, err := c.HintOldestAge(ctx)
	must(t, err)
	if age != 2*time.Millisecond {
		t.Fatalf("oldest age %v, want 2ms (z's first arrival)", age)
	}
}

// testHintsLease: claims lease hints; others skip them until the lease
// ends; a hint newer than a claim survives the claim's completion.
func testHintsLease(t *testing.T, c catalog.Catalog, clk *Clock) {
	enqueue(t, c, hint("b", "1", catalog.HintCreated, "01"), hint("b", "2", catalog.HintCreated, "01"), hint("b", "3", catalog.HintCreated, "01"))
	mine, err := c.ClaimHints(ctx, "one", 2, time.Minute)
	must(t, err)
	if keysOf(mine) != "b/1 b/2" || mine[0].Owner != "one" || !mine[0].ReadyAt.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("claim: %+v", mine)
	}
	if hs := claimAll(t, c, "two"); keysOf(hs) != "b/3" {
		t.Fatalf("other owner claimed %q, want only b/3", keysOf(hs))
	}
	if hs := claimAll(t, c, "two"); len(hs) != 0 {
		t.Fatalf("claimed %q while every hint is leased", keysOf(hs))
	}
	clk.Advance(40 * time.Second)
	if n, err := c.ExtendHintLease(ctx, "one", mine[:1], time.Minute); err != nil || n != 1 {
		t.Fatalf("extend: %d %v", n, err)
	}
	if n, err := c.ExtendHintLease(ctx, "two", mine, time.Minute); err != nil || n != 0 {
		t.Fatalf("extend by a non-owner: %d %v", n, err)
	}
	clk.Advance(30 * time.Second) // b/2's and b/3's leases ended, b/1's not
	hs := claimAll(t, c, "two")
	if keysOf(hs) != "b/2 b/3" {
		t.Fatalf("after the lease: claimed %q, want b/2 b/3", keysOf(hs))
	}
	// A newer event for b/1 while "one" checks it.
	if out := enqueue(t, c, hint("b", "1", catalog.HintRemoved, "02")); out[0] != catalog.HintReplaced {
		t.Fatalf("newer during a claim: %v", out[0])
	}
	removed, err := c.CompleteHint(ctx, mine[0])
	must(t, err)
	if removed {
		t.Fatal("completing a claim removed the newer hint that arrived meanwhile")
	}
	again := claimAll(t, c, "one")
	if keysOf(again) != "b/1" || again[0].Kind != catalog.HintRemoved {
		t.Fatalf("after a superseded complete: claimed %+v, want b/1 (REMOVED) ready at once", again)
	}
	for _, h := range append(again, hs...) {
		removed, err := c.CompleteHint(ctx, h)
		must(t, err)
		if !removed {
			t.Fatalf("complete %s/%s: not removed", h.Bucket, h.Key)
		}
	}
	if d := hintDepth(t, c); d != 0 {
		t.Fatalf("depth %d after completing everything", d)
	}
	if age, err := c.HintOldestAge(ctx); err != nil || age != 0 {
		t.Fatalf("oldest age of an empty queue: %v %v", age, err)
	}
	if _, err := c.ClaimHints(ctx, "", 1, time.Minute); err == nil {
		t.Fatal("a claim without an owner was accepted")
	}
}

// testHintsFail: a failed hint waits until its retry time, counted.
func testHintsFail(t *testing.T, c catalog.Catalog, clk *Clock) {
	enqueue(t, c, hint("b", "k", catalog.HintCreated, "01"))
	hs := claimAll(t, c, "imp")
	must(t, c.FailHint(ctx, hs[0], "HEAD: 503 SlowDown", clk.Now().Add(10*time.Second)))
	if got := claimAll(t, c, "imp"); len(got) != 0 {
		t.Fatalf("claimed %q before its retry time", keysOf(got))
	}
	clk.Advance(10 * time.Second)
	got := claimAll(t, c, "imp")
	if len(got) != 1 || got[0].Attempts != 1 || got[0].LastError != "HEAD: 503 SlowDown" {
		t.Fatalf("after the retry time: %+v", got)
	}
}

// testHintsRelease: the hints an owner holds are ready again at once when
// it releases them (a restart); others' claims stay.
func testHintsRelease(t *testing.T, c catalog.Catalog, clk *Clock) {
	enqueue(t, c, hint("b", "1", catalog.HintCreated, "01"), hint("b", "2", catalog.HintCreated, "01"))
	mine, err := c.ClaimHints(ctx, "one", 1, time.Hour)
	must(t, err)
	if hs := claimAll(t, c, "two"); len(hs) != 1 || len(mine) != 1 {
		t.Fatalf("claims: %q and %q", keysOf(mine), keysOf(hs))
	}
	n, err := c.ReleaseHints(ctx, "one")
	must(t, err)
	if n != 1 {
		t.Fatalf("released %d hints, want 1", n)
	}
	if hs := claimAll(t, c, "three"); keysOf(hs) != keysOf(mine) {
		t.Fatalf("after the release: claimed %q, want %q (and not two's)", keysOf(hs), keysOf(mine))
	}
	if _, err := c.ReleaseHints(ctx, ""); err == nil {
		t.Fatal("a release without an owner was accepted")
	}
}

// testHintsInvalid: a batch with an invalid hint is refused whole.
func testHintsInvalid(t *testing.T, c catalog.Catalog, clk *Clock) {
	good := hint("b", "k", catalog.HintCreated, "01")
	for name, bad := range map[string]catalog.ImportHint{
		"empty key":      hint("b", "", catalog.HintCreated, ""),
		"long key":       hint("b", strings.Repeat("k", catalog.MaxHintKey+1), catalog.HintCreated, ""),
		"bad UTF-8":      hint("b", "k\xff", catalog.HintCreated, ""),
		"empty bucket":   hint("", "k", catalog.HintCreated, ""),
		"slash bucket":   hint("a/b", "k", catalog.HintCreated, ""),
		"kind":           hint("b", "k", "CHANGED", ""),
		"sequencer":      hint("b", "k", catalog.HintCreated, "0x12"),
		"long sequencer": hint("b", "k", catalog.HintCreated, strings.Repeat("0", 65)),
	} {
		if _, err := c.EnqueueHints(ctx, good, bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if d := hintDepth(t, c); d != 0 {
		t.Fatalf("depth %d: part of a refused batch was queued", d)
	}
	// A key at S3's limit is fine.
	enqueue(t, c, hint("b", strings.Repeat("k", catalog.MaxHintKey), catalog.HintCreated, ""))
}

// Reopenable returns a new, empty catalog with opts and a function that
// opens the same catalog again once the caller closed the first (a
// restart of the daemon).
type Reopenable func(t *testing.T, opts catalog.Options) (c catalog.Catalog, reopen func() catalog.Catalog)

// RunReopen runs the conformance tests that close a catalog and open it
// again.
func RunReopen(t *testing.T, open Reopenable) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c catalog.Catalog, reopen func() catalog.Catalog, clk *Clock)
	}{
		{"HintsSurviveReopen", testHintsSurviveReopen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewClock()
			c, reopen := open(t, catalog.Options{Now: clk.Now})
			tc.fn(t, c, reopen, clk)
		})
	}
}

// testHintsSurviveReopen: enqueued hints, claimed or not, are there after
// the catalog is closed and opened again (the daemon restarted before the
// importer completed them); a claim made before is honoured until its
// lease ends, then the hint is claimable again.
func testHintsSurviveReopen(t *testing.T, c catalog.Catalog, reopen func() catalog.Catalog, clk *Clock) {
	h := hint("b", "dir/new obj", catalog.HintCreated, "0A")
	h.Size, h.ETag, h.EventTime = 42, `"etag"`, clk.Now().UTC()
	enqueue(t, c, h, hint("b", "second", catalog.HintRemoved, ""), hint("b", "third", catalog.HintCreated, ""))
	claimed, err := c.ClaimHints(ctx, "dead-daemon", 1, time.Minute)
	must(t, err)
	if keysOf(claimed) != "b/dir/new obj" {
		t.Fatalf("claimed %q", keysOf(claimed))
	}
	must(t, c.Close()) // the importer never completed it
	c = reopen()
	defer c.Close()
	if d := hintDepth(t, c); d != 3 {
		t.Fatalf("depth %d after reopening, want 3", d)
	}
	if hs, err := c.ClaimHints(ctx, "new-daemon", 10, time.Hour); err != nil || keysOf(hs) != "b/second b/third" {
		t.Fatalf("after reopening: claimed %q, want the unclaimed b/second b/third (%v)", keysOf(hs), err)
	}
	clk.Advance(time.Minute)
	hs := claimAll(t, c, "new-daemon")
	if len(hs) != 1 {
		t.Fatalf("after the dead claim's lease: claimed %q, want b/dir/new obj", keysOf(hs))
	}
	got := hs[0]
	if got.Key != h.Key || got.Kind != h.Kind || got.Size != 42 || got.ETag != h.ETag || got.Sequencer != "0A" ||
		!got.EventTime.Equal(h.EventTime) || got.Source != "test" {
		t.Fatalf("hint after reopening: %+v, want %+v", got.ImportHint, h)
	}
	removed, err := c.CompleteHint(ctx, got)
	must(t, err)
	if !removed {
		t.Fatal("complete after reopening: not removed")
	}
}
