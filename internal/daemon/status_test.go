package daemon

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// status asks the daemon for its status over the control socket (the JSON
// of POST /status, decoded).
func (e *env) status() api.Status {
	e.t.Helper()
	s, err := e.c.Status(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// statusUntil polls the status until cond holds and returns that status.
func (e *env) statusUntil(what string, cond func(api.Status) bool) api.Status {
	e.t.Helper()
	var s api.Status
	testutil.Eventually(e.t, 60*time.Second, what, func() bool {
		s = e.status()
		return cond(s)
	})
	return s
}

func assocOf(s api.Status, id string) api.StatusAssociation {
	for _, a := range s.Associations {
		if a.AssociationId == id {
			return a
		}
	}
	return api.StatusAssociation{}
}

// ferry status follows real work: the node is this daemon; a read makes
// released bytes local; a task shows while it runs (an import task waiting
// for a file held open) and goes once it ends; a conflict is counted and
// listed; an export that cannot go
// (the bucket deleted) shows in its association's backlog with a growing
// lag, and leaves it once exported.
func TestStatusFollowsWork(t *testing.T) {
	e := startExportEnv(t, func(c *Config) {
		c.CacheScanAge = 50 * time.Millisecond
		c.AvailableCheckInterval = 300 * time.Millisecond
	})
	bucket := e.srv.Bucket(t)
	big := make([]byte, 1<<20)
	rand.Read(big)
	e.srv.Put(t, bucket, "p/big.bin", big)
	e.srv.Put(t, bucket, "p/in.txt", []byte("v1"))
	id := e.exportData(bucket)

	s := e.status()
	if len(s.Nodes) != 1 || !s.Nodes[0].Self || s.Nodes[0].Pid != os.Getpid() || s.Nodes[0].MountPoint != e.mp ||
		s.Nodes[0].NodeId != e.d.ID()+"@"+hostname()+":"+e.mp || time.Since(s.Nodes[0].LastHeartbeat.Time) > time.Minute ||
		s.Nodes[0].StartTime.After(s.Nodes[0].LastHeartbeat.Time) {
		t.Errorf("nodes: %+v", s.Nodes)
	}
	a := assocOf(s, id)
	if s.FileSystemId != e.d.ID() || s.CatalogEngine != "sqlite" || a.Lifecycle != api.LifecycleAvailable || a.FileSystemPath != "/data" ||
		len(a.AutoExport) != 3 || len(a.AutoImport) != 0 || a.Export.Pending != 0 || len(s.Tasks) != 0 {
		t.Errorf("status at the start: %+v", s)
	}

	// The listing makes released stubs; reading one makes its data local.
	if _, err := os.ReadDir(filepath.Join(e.mp, "data")); err != nil {
		t.Fatal(err)
	}
	before := e.statusUntil("released stubs counted", func(s api.Status) bool {
		return s.Cache.ReleasedFiles >= 2 && s.Cache.ReleasedBytes >= 1<<20 && s.Cache.ScanTime != nil
	})
	got, err := os.ReadFile(filepath.Join(e.mp, "data/big.bin"))
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read big.bin: %v", err)
	}
	after := e.statusUntil("read data counted", func(s api.Status) bool {
		return s.Cache.LocalBytes >= before.Cache.LocalBytes+1<<20 && s.Cache.ReleasedBytes <= before.Cache.ReleasedBytes-1<<20
	})
	if after.Cache.FetchedBytes < before.Cache.FetchedBytes+1<<20 || after.Cache.ReleasedFiles != before.Cache.ReleasedFiles-1 ||
		after.Cache.StoreSizeBytes == 0 || after.Cache.StoreUsedPercent <= 0 || !after.Cache.ScanTime.After(before.Cache.ScanTime.Time) {
		t.Errorf("cache before %+v, after %+v", before.Cache, after.Cache)
	}

	// A task shows while it runs: the import task must re-stub in.txt,
	// which is open, so it waits for it.
	f, err := os.Open(filepath.Join(e.mp, "data/in.txt"))
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Put(t, bucket, "p/in.txt", []byte("version two"))
	var tr api.CreateDataRepositoryTaskResponse
	if err := e.c.Call(context.Background(), api.OpCreateTask, api.CreateDataRepositoryTaskRequest{FileSystemId: e.d.ID(),
		Type: api.TaskImportMetadataFromRepository, Paths: []string{"s3://" + bucket + "/p/"}, Report: &api.CompletionReport{}}, &tr); err != nil {
		f.Close()
		t.Fatal(err)
	}
	task := tr.DataRepositoryTask.TaskId
	s = e.statusUntil("the task executing", func(s api.Status) bool {
		return len(s.Tasks) == 1 && s.Tasks[0].TaskId == task && s.Tasks[0].Lifecycle == api.TaskExecuting
	})
	if tk := s.Tasks[0]; tk.Type != api.TaskImportMetadataFromRepository || tk.StartTime == nil || len(tk.Paths) != 1 {
		t.Errorf("running task: %+v", tk)
	}
	f.Close()
	if ended := e.waitTask(task); ended.Lifecycle != api.TaskSucceeded {
		t.Errorf("task: %+v", ended)
	}
	if s = e.status(); len(s.Tasks) != 0 {
		t.Errorf("tasks after the end: %+v", s.Tasks)
	}

	// A conflict: local changes to a file whose object changed, found by
	// an import task.
	in, err := e.create(api.CreateDataRepositoryAssociationRequest{FileSystemPath: "/in", DataRepositoryPath: "s3://" + bucket + "/q"})
	if err != nil {
		t.Fatal(err)
	}
	e.srv.Put(t, bucket, "q/c.txt", []byte("remote one"))
	e.waitState(in.AssociationId, api.LifecycleAvailable)
	if err := os.WriteFile(filepath.Join(e.mp, "in/c.txt"), []byte("local"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.srv.Put(t, bucket, "q/c.txt", []byte("remote two"))
	if err := e.c.Call(context.Background(), api.OpCreateTask, api.CreateDataRepositoryTaskRequest{FileSystemId: e.d.ID(),
		Type: api.TaskImportMetadataFromRepository, Paths: []string{"s3://" + bucket + "/q/"}, Report: &api.CompletionReport{}}, &tr); err != nil {
		t.Fatal(err)
	}
	e.waitTask(tr.DataRepositoryTask.TaskId)
	s = e.status()
	if c := s.Import.RecentConflicts; s.Import.Conflicts != 1 || len(c) != 1 || c[0].Path != filepath.Join(e.mp, "in/c.txt") ||
		c[0].Kind != api.ConflictChanged || c[0].CopyPath == "" || c[0].AssociationId != in.AssociationId {
		t.Errorf("conflicts: %d %+v", s.Import.Conflicts, c)
	}

	// The bucket goes: a write waits in the journal, under /data.
	emptyAndDeleteBucket(t, e.srv.Client(t), bucket)
	e.waitState(id, api.LifecycleMisconfigured)
	if err := os.WriteFile(filepath.Join(e.mp, "data/out.txt"), []byte("out"), 0o644); err != nil {
		t.Fatal(err)
	}
	first := e.statusUntil("the write pending", func(s api.Status) bool { return assocOf(s, id).Export.Pending == 1 })
	time.Sleep(300 * time.Millisecond) // the lag must grow while nothing exports
	second := e.status()
	fa, sa := assocOf(first, id), assocOf(second, id)
	if sa.Export.Pending != 1 || sa.Export.OldestAgeSeconds < fa.Export.OldestAgeSeconds+0.25 || sa.Lifecycle != api.LifecycleMisconfigured ||
		sa.FailureDetails == nil || second.Export.Pending < 1 || sa.Export.OldestAgeBound {
		t.Errorf("backlog: first %+v, second %+v (file system %+v)", fa, sa, second.Export)
	}
	createBucket(t, e.srv.Client(t), bucket)
	e.statusUntil("the backlog exported", func(s api.Status) bool {
		a := assocOf(s, id)
		return a.Lifecycle == api.LifecycleAvailable && a.Export.Pending == 0 && a.Export.OldestAgeSeconds == 0
	})
}

// The backlog of each association is the journal's entries under its
// path, parked ones apart, with the age of its own oldest entry; a path
// holding the whole journal takes the journal's.
func TestJournalBacklog(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, store.MetaDir), 0o700); err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Open(ctx, "", catalog.Options{StoreRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	appendNew := func(paths ...string) {
		t.Helper()
		for _, p := range paths {
			if err := cat.Append(ctx, catalog.JournalAppend{Path: p, Kind: catalog.KindNew}); err != nil {
				t.Fatal(err)
			}
		}
	}
	aAt := time.Now()
	appendNew("a/1", "a/sub/2")
	time.Sleep(300 * time.Millisecond) // a's entries older than b's by that much
	bAt := time.Now()
	appendNew("b/1", "ab/1")
	// Park b/1 (a permanent failure).
	claimed, err := cat.Claim(ctx, "test", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range claimed {
		if e.Path == "b/1" {
			if err := cat.Park(ctx, e, "PathSizeTooLong"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := cat.ReleaseClaims(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	d := &Daemon{cat: cat}
	depth, _ := cat.Depth(ctx)
	oldest, _ := cat.OldestAge(ctx)
	total := api.ExportStatus{Pending: depth, OldestAgeSeconds: oldest.Seconds()}
	// Ages are checked against the times around the appends, read after
	// the backlog (a loaded machine may take long between the steps).
	for _, c := range []struct {
		prefix          string
		pending, parked int64
		since           time.Time // the age is at most the time since
		olderThanB      bool      // and at least the time since bAt plus the sleep
	}{
		{"a", 2, 0, aAt, true},
		{"b", 0, 1, bAt, false},
		{"ab", 1, 0, bAt, false},
		{"", 3, 1, aAt, true},
		{"c", 0, 0, time.Time{}, false},
	} {
		b, err := d.journalBacklog(ctx, c.prefix, total)
		maxAge := 0.0
		if !c.since.IsZero() {
			maxAge = time.Since(c.since).Seconds()
		}
		minAge := 0.0
		if c.olderThanB {
			minAge = 0.3
		}
		if err != nil || b.Pending != c.pending || b.Parked != c.parked || b.OldestAgeSeconds < minAge || b.OldestAgeSeconds > maxAge || b.OldestAgeBound {
			t.Errorf("%q: %+v %v, want %d pending, %d parked, age in [%.2f, %.2f]", c.prefix, b, err, c.pending, c.parked, minAge, maxAge)
		}
	}
}
