package catalogtest

import (
	"errors"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

func sessionIDs(ss []catalog.Session) []string {
	var out []string
	for _, s := range ss {
		out = append(out, s.NodeID)
	}
	return out
}

func live(t *testing.T, c catalog.Catalog) []string {
	t.Helper()
	ss, err := c.LiveSessions(ctx)
	must(t, err)
	return sessionIDs(ss)
}

// testSessions: sessions are registered, heartbeated and listed while
// live; one not heartbeated for longer than its TTL is no longer live,
// cannot be heartbeated, and ExpireSessions removes it and makes its
// journal and hint claims claimable by the other nodes at once (their
// leases are far from over). The live node's claims stay.
func testSessions(t *testing.T, c catalog.Catalog, clk *Clock) {
	const ttl = 30 * time.Second
	a := catalog.Session{NodeID: "node-a", Host: "cn1", MountPoint: "/mnt/fsx", PID: 4242, Version: "v1.2.3", Started: clk.Now().Add(-time.Minute)}
	must(t, c.RegisterSession(ctx, a, ttl))
	must(t, c.RegisterSession(ctx, catalog.Session{NodeID: "node-b", Host: "cn2", MountPoint: "/mnt/fsx", PID: 7}, ttl))
	ss, err := c.LiveSessions(ctx)
	must(t, err)
	if len(ss) != 2 || ss[0].NodeID != "node-a" || ss[1].NodeID != "node-b" {
		t.Fatalf("live sessions %+v, want node-a node-b", ss)
	}
	got := ss[0]
	if got.Host != "cn1" || got.MountPoint != "/mnt/fsx" || got.PID != 4242 || got.Version != "v1.2.3" || !got.Started.Equal(a.Started) ||
		!got.Heartbeat.Equal(clk.Now()) || !got.Expires.Equal(clk.Now().Add(ttl)) {
		t.Fatalf("session node-a read back as %+v", got)
	}
	if !ss[1].Started.Equal(clk.Now()) {
		t.Fatalf("a session registered without a start time starts now: %v", ss[1].Started)
	}

	// Both nodes claim work.
	for _, p := range []string{"a1", "b1", "b2", "free"} {
		appendOne(t, c, p, catalog.KindNew, 1)
	}
	enqueue(t, c, hint("bk", "ka", catalog.HintCreated, ""), hint("bk", "kb", catalog.HintCreated, ""))
	claim := func(owner string, n int) {
		t.Helper()
		if _, err := c.Claim(ctx, owner, n, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	claim("node-a", 1) // a1
	claim("node-b", 2) // b1 b2
	if hs, err := c.ClaimHints(ctx, "node-a", 1, time.Hour); err != nil || keysOf(hs) != "bk/ka" {
		t.Fatalf("node-a claims %q, %v", keysOf(hs), err)
	}
	if hs, err := c.ClaimHints(ctx, "node-b", 1, time.Hour); err != nil || keysOf(hs) != "bk/kb" {
		t.Fatalf("node-b claims %q, %v", keysOf(hs), err)
	}

	clk.Advance(20 * time.Second)
	must(t, c.HeartbeatSession(ctx, "node-a", ttl))
	if got, _ := c.ExpireSessions(ctx); len(got) != 0 {
		t.Fatalf("expired %v while both are live", sessionIDs(got))
	}
	clk.Advance(15 * time.Second) // node-b: 35 s without a heartbeat
	if ids := live(t, c); len(ids) != 1 || ids[0] != "node-a" {
		t.Fatalf("live %v after node-b's TTL, want node-a", ids)
	}
	if err := c.HeartbeatSession(ctx, "node-b", ttl); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("heartbeat of an expired session: %v, want ErrNotFound", err)
	}
	// Before the reaping, node-b's claims still hold (their leases run).
	if es, _ := c.Claim(ctx, "node-c", 10, time.Hour); len(es) != 1 || es[0].Path != "free" {
		t.Fatalf("node-c claimed %v before the reaping, want only free", pathsOf(es))
	}
	gone, err := c.ExpireSessions(ctx)
	must(t, err)
	if ids := sessionIDs(gone); len(ids) != 1 || ids[0] != "node-b" || gone[0].Host != "cn2" {
		t.Fatalf("expired %+v, want node-b", gone)
	}
	if again, _ := c.ExpireSessions(ctx); len(again) != 0 {
		t.Fatalf("expired twice: %v", sessionIDs(again))
	}
	es, err := c.Claim(ctx, "node-c", 10, time.Hour)
	must(t, err)
	if p := pathsOf(es); p != "b1 b2" {
		t.Fatalf("node-c claimed %q after node-b expired, want b1 b2 (a1 stays node-a's)", p)
	}
	if hs := claimAll(t, c, "node-c"); keysOf(hs) != "bk/kb" {
		t.Fatalf("node-c claimed hints %q after node-b expired, want bk/kb", keysOf(hs))
	}

	// A clean stop releases at once too.
	must(t, c.EndSession(ctx, "node-a"))
	must(t, c.EndSession(ctx, "node-a")) // gone: not an error
	if ids := live(t, c); len(ids) != 0 {
		t.Fatalf("live %v after node-a ended", ids)
	}
	if es, _ := c.Claim(ctx, "node-c", 10, time.Hour); pathsOf(es) != "a1" {
		t.Fatalf("node-c claimed %q after node-a ended, want a1", pathsOf(es))
	}
	// The expired node comes back.
	must(t, c.RegisterSession(ctx, catalog.Session{NodeID: "node-b", Host: "cn2"}, ttl))
	must(t, c.HeartbeatSession(ctx, "node-b", ttl))
	if ids := live(t, c); len(ids) != 1 || ids[0] != "node-b" {
		t.Fatalf("live %v after node-b registered again", ids)
	}
	for _, bad := range []struct {
		s   catalog.Session
		ttl time.Duration
	}{{catalog.Session{}, ttl}, {catalog.Session{NodeID: "x"}, 0}} {
		if err := c.RegisterSession(ctx, bad.s, bad.ttl); err == nil {
			t.Errorf("register %+v ttl %v accepted", bad.s, bad.ttl)
		}
	}
}

func pathsOf(es []catalog.JournalEntry) string {
	s := ""
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		s += e.Path
	}
	return s
}

// testRenameNonASCII: moving listed records and forwarding renames keeps
// the part below a non-ASCII directory name whole (SQL's substr counts
// characters, not bytes).
func testRenameNonASCII(t *testing.T, c catalog.Catalog, clk *Clock) {
	for _, p := range []string{"été", "été/ß", "été/ß/x"} {
		must(t, c.MarkListed(ctx, catalog.ListedDir{Path: p, ListedAt: clk.Now(), Marker: "m-" + p}))
	}
	must(t, c.MoveListed(ctx, "été", "hiver"))
	for p, want := range map[string]string{"hiver": "m-été", "hiver/ß": "m-été/ß", "hiver/ß/x": "m-été/ß/x"} {
		if d, ok, err := c.Listed(ctx, p); err != nil || !ok || d.Marker != want {
			t.Fatalf("Listed(%q) = %+v, %v, %v; want marker %q", p, d, ok, err, want)
		}
	}
	// A pending RENAME from below a renamed directory follows it.
	rename(t, c, "ñu/a", "z", false)
	must(t, c.ForwardRenames(ctx, "ñu", "ñandú"))
	es, err := c.RenamesFrom(ctx, []string{"ñandú/a"}, 10)
	must(t, err)
	if len(es) != 1 || es[0].Path != "z" || es[0].OldPath != "ñandú/a" {
		t.Fatalf("renames from ñandú/a: %+v", es)
	}
}
