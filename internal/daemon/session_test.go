package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// logBuffer is a log both daemons of a test write to.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// nodeEnv is a daemon of a store shared with others (same store
// directory, same PostgreSQL catalog), with its own mount point and
// runtime directory, as on another node.
func nodeEnv(t *testing.T, srv *testutil.MinIO, st, pg string, log *logBuffer) *env {
	t.Helper()
	e := &env{t: t, srv: srv, rt: t.TempDir(), st: st, mp: t.TempDir()}
	testutil.DetachOnCleanup(t, e.mp)
	e.startExport(func(c *Config) {
		c.Catalog = pg
		c.SessionTTL = 3 * time.Second
		c.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	return e
}

func (e *env) describeFS() api.FileSystem {
	e.t.Helper()
	var resp api.DescribeFileSystemsResponse
	if err := e.c.Call(context.Background(), api.OpDescribeFileSystems, api.DescribeFileSystemsRequest{}, &resp); err != nil {
		e.t.Fatal(err)
	}
	if len(resp.FileSystems) != 1 {
		e.t.Fatalf("describe-file-systems: %+v", resp)
	}
	return resp.FileSystems[0]
}

// Two daemons over one store directory and one PostgreSQL catalog, each
// with its own mount point and runtime directory (two nodes): both serve
// the same FileSystemId, both are live nodes in describe-file-systems and
// status, a file written on one reads back on the other, and a clean stop
// of one ends its session at once.
func TestTwoNodes(t *testing.T) {
	testutil.NeedFUSE(t)
	srv := testutil.SharedMinIO(t)
	srv.Client(t)
	pg := testutil.PostgresDatabase(t)
	st := t.TempDir()
	var log logBuffer
	a := nodeEnv(t, srv, st, pg, &log)
	b := nodeEnv(t, srv, st, pg, &log)
	if a.d.ID() != b.d.ID() || !a.d.Created() || b.d.Created() {
		t.Fatalf("file systems %s (created %v) and %s (created %v): want one, made by the first", a.d.ID(), a.d.Created(), b.d.ID(), b.d.Created())
	}
	host := hostname()
	wantA, wantB := a.d.ID()+"@"+host+":"+a.mp, b.d.ID()+"@"+host+":"+b.mp
	if a.d.claimOwner() != wantA || b.d.claimOwner() != wantB {
		t.Fatalf("node ids %q %q, want %q %q", a.d.claimOwner(), b.d.claimOwner(), wantA, wantB)
	}
	for _, e := range []*env{a, b} {
		nodes := e.describeFS().FerryNodes
		var ids []string
		for _, n := range nodes {
			ids = append(ids, n.NodeId)
			if n.Host != host || n.Pid != os.Getpid() || n.Started.IsZero() || time.Since(n.LastHeartbeat.Time) > time.Minute {
				t.Errorf("node %+v", n)
			}
		}
		if want := []string{wantA, wantB}; !slices.Equal(ids, slices.Sorted(slices.Values(want))) {
			t.Fatalf("FerryNodes %+v, want %v", nodes, want)
		}
		s := e.status()
		var self []string
		for _, n := range s.Nodes {
			if n.Self {
				self = append(self, n.MountPoint)
			}
		}
		if len(s.Nodes) != 2 || !slices.Equal(self, []string{e.mp}) {
			t.Fatalf("status nodes %+v: want both, this one (%s) Self", s.Nodes, e.mp)
		}
	}
	// The store is one: written on a, read on b.
	if err := os.WriteFile(filepath.Join(a.mp, "f"), []byte("from a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(b.mp, "f")); err != nil || string(got) != "from a" {
		t.Fatalf("read on b: %q %v", got, err)
	}
	// The heartbeat keeps both alive past the TTL.
	time.Sleep(4 * time.Second)
	if n := len(a.status().Nodes); n != 2 {
		t.Fatalf("%d live nodes after the TTL, want 2 (heartbeats)", n)
	}
	// A node whose session is gone (here ended behind its back, as
	// another node would expire it after a long pause) warns and
	// registers again at its next heartbeat.
	if err := b.d.cat.EndSession(context.Background(), wantA); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, "a registered again", func() bool {
		return len(b.describeFS().FerryNodes) == 2
	})
	if n := strings.Count(log.String(), "registering again"); n != 1 || !strings.Contains(log.String(), "level=WARN") {
		t.Fatalf("%d warnings of a session registered again, want 1:\n%s", n, log.String())
	}
	if err := b.d.Stop(); err != nil {
		t.Fatal(err)
	}
	if nodes := a.describeFS().FerryNodes; len(nodes) != 1 || nodes[0].NodeId != wantA {
		t.Fatalf("FerryNodes after b stopped: %+v, want only %s", nodes, wantA)
	}
	if strings.Contains(log.String(), "node expired") {
		t.Fatalf("a session expired:\n%s", log.String())
	}
}

// A node that stops heartbeating (a dead node, registered here directly
// in the catalog, its journal entries claimed with a long lease) is
// expired by a live node within about its TTL and one heartbeat, logged
// once, and the live nodes export what it held claimed.
func TestDeadNodeExpires(t *testing.T) {
	testutil.NeedFUSE(t)
	srv := testutil.SharedMinIO(t)
	srv.Client(t)
	pg := testutil.PostgresDatabase(t)
	st := t.TempDir()
	var log logBuffer
	a := nodeEnv(t, srv, st, pg, &log)
	bucket := srv.Bucket(t)
	a.exportData(bucket)
	fsID := a.d.ID()
	if err := a.d.Stop(); err != nil {
		t.Fatal(err)
	}
	// The dead node: its session and three files it claimed for export,
	// written to the store (its mount) and journaled.
	ctx := context.Background()
	cat, err := catalog.Open(ctx, pg, catalog.Options{StoreRoot: st})
	if err != nil {
		t.Fatal(err)
	}
	dead := fsID + "@deadhost:/mnt/fsx"
	files := []string{"data/d1", "data/d2", "data/d3"}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(st, f), []byte("by "+dead), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := cat.Append(ctx, catalog.JournalAppend{Path: f, Kind: catalog.KindNew}); err != nil {
			t.Fatal(err)
		}
	}
	const ttl = 5 * time.Second
	if err := cat.RegisterSession(ctx, catalog.Session{NodeID: dead, Host: "deadhost", MountPoint: "/mnt/fsx", PID: 1}, ttl); err != nil {
		t.Fatal(err)
	}
	registered := time.Now()
	claimed, err := cat.Claim(ctx, dead, 10, time.Hour)
	if err != nil || len(claimed) != len(files) {
		t.Fatalf("claimed %+v %v", claimed, err)
	}
	cat.Close()

	// Two live nodes.
	a = nodeEnv(t, srv, st, pg, &log)
	b := nodeEnv(t, srv, st, pg, &log)
	if since := time.Since(registered); since < ttl-time.Second {
		if n := len(a.describeFS().FerryNodes); n != 3 {
			t.Errorf("%d live nodes %v after the dead one registered, want 3", n, since)
		}
		if _, ok := getObject(t, a.srv.Client(t), bucket, "p/d1"); ok {
			t.Fatalf("d1 exported %v after the dead node registered, before its TTL (%v): its claim was not held", since, ttl)
		}
	}
	for _, f := range files {
		key := "p/" + strings.TrimPrefix(f, "data/")
		testutil.Eventually(t, 60*time.Second, key+" exported", func() bool {
			_, ok := getObject(t, a.srv.Client(t), bucket, key)
			return ok
		})
	}
	// Within TTL + one heartbeat (TTL/3 of the live nodes: 1s), with
	// slack for the export itself and a slow machine.
	if took := time.Since(registered); took > ttl+time.Second+10*time.Second {
		t.Errorf("the dead node's claims were exported %v after it registered (TTL %v)", took, ttl)
	}
	if n := strings.Count(log.String(), "node expired"); n != 1 || !strings.Contains(log.String(), "node="+dead) {
		t.Errorf("%d expiry lines, want 1 naming %s:\n%s", n, dead, log.String())
	}
	for _, e := range []*env{a, b} {
		if n := len(e.describeFS().FerryNodes); n != 2 {
			t.Errorf("%d live nodes after the dead one expired, want 2", n)
		}
	}
}

// A second daemon over a store whose catalog is the default SQLite file
// (another runtime directory, as a second node would have) is refused
// with the first one's name and the fix, --catalog postgres://; the first
// keeps serving, and once it stops the store mounts again.
func TestSecondDaemonSQLiteRefused(t *testing.T) {
	testutil.NeedFUSE(t)
	st, mp, mp2 := t.TempDir(), t.TempDir(), t.TempDir()
	testutil.DetachOnCleanup(t, mp)
	testutil.DetachOnCleanup(t, mp2)
	d, err := Start(Config{Store: st, MountPoint: mp, RuntimeDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop()
	_, err = Start(Config{Store: st, MountPoint: mp2, RuntimeDir: t.TempDir()})
	if !errors.Is(err, mounts.ErrAlreadyMounted) || !strings.Contains(err.Error(), "--catalog postgres://") || !strings.Contains(err.Error(), mp) {
		t.Fatalf("second daemon over an SQLite catalog: %v", err)
	}
	if _, ok, _ := mounts.Mounted(mp2); ok {
		t.Fatal("the refused daemon mounted")
	}
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	d2, err := Start(Config{Store: st, MountPoint: mp2, RuntimeDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d2.Stop(); err != nil {
		t.Fatal(err)
	}
}

func TestNodeID(t *testing.T) {
	if got := nodeID("fs-0123456789abcdef0", "n1", "/fsx"); got != "fs-0123456789abcdef0@n1:/fsx" {
		t.Errorf("nodeID: %q", got)
	}
	long := "/" + strings.Repeat("x", 300)
	a, b := nodeID("fs-0123456789abcdef0", "n1", long), nodeID("fs-0123456789abcdef0", "n1", long+"y")
	if len(a) > maxNodeID || a == b || a != nodeID("fs-0123456789abcdef0", "n1", long) || !strings.HasPrefix(a, "fs-0123456789abcdef0@n1:sha256:") {
		t.Errorf("long mount points: %q %q", a, b)
	}
	if got := nodeID("fs-0123456789abcdef0", strings.Repeat("h", 300), "/fsx"); len(got) > maxNodeID {
		t.Errorf("long host: %q", got)
	}
	for _, bad := range []time.Duration{0, time.Second, 2 * time.Hour} {
		if err := CheckSessionTTL(bad); err == nil || !strings.Contains(err.Error(), "--session-ttl") {
			t.Errorf("CheckSessionTTL(%v): %v", bad, err)
		}
	}
}

// TestAssociationFromAnotherNode: an association created through one node
// reaches the other before it is AVAILABLE there — the leader waits for
// the other nodes to follow the catalog — so a file written on the other
// node right after is journaled and exported; one node (the leader) does
// the association work.
func TestAssociationFromAnotherNode(t *testing.T) {
	testutil.NeedFUSE(t)
	srv := testutil.SharedMinIO(t)
	srv.Client(t)
	pg := testutil.PostgresDatabase(t)
	st := t.TempDir()
	var log logBuffer
	a := nodeEnv(t, srv, st, pg, &log)
	b := nodeEnv(t, srv, st, pg, &log)
	leaders := 0
	for _, e := range []*env{a, b} {
		if e.d.leader.Load() {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders among two nodes, want 1", leaders)
	}
	bucket := srv.Bucket(t)
	for i, pair := range [][2]*env{{a, b}, {b, a}} {
		via, other := pair[0], pair[1]
		dir := fmt.Sprintf("/data%d", i)
		assoc, err := via.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: dir, DataRepositoryPath: fmt.Sprintf("s3://%s/p%d", bucket, i), S3: exportAll})
		if err != nil {
			t.Fatal(err)
		}
		via.waitState(assoc.AssociationId, api.LifecycleAvailable)
		// At once on the other node: written there, journaled there.
		rel := filepath.Join(dir[1:], "from-the-other-node")
		if err := os.WriteFile(filepath.Join(other.mp, rel), []byte(other.d.claimOwner()), 0o644); err != nil {
			t.Fatal(err)
		}
		if ev := other.wait(60, filepath.Join(other.mp, dir[1:])); ev.Pending != 0 {
			t.Fatalf("%s: hsm wait on the other node: %+v", dir, ev)
		}
		if body, ok := getObject(t, srv.Client(t), bucket, fmt.Sprintf("p%d/from-the-other-node", i)); !ok || body != other.d.claimOwner() {
			t.Fatalf("%s: a file written on the node that did not create the association, right after AVAILABLE: object %q (found %v)", dir, body, ok)
		}
	}
}
