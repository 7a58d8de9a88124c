// Package catalogtest is the conformance suite every catalog engine passes
// (the JuiceFS model: one metadata interface, one test suite, several
// engines). An engine's test calls Run with a constructor of empty catalogs.
package catalogtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/store"
)

// Open returns a new, empty catalog with opts; the suite closes it.
type Open func(t *testing.T, opts catalog.Options) catalog.Catalog

// Clock is a settable clock for Options.Now.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Run runs every conformance test against the engine open makes.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, c catalog.Catalog, clk *Clock)
	}{
		{"Identity", testIdentity},
		{"Tokens", testTokens},
		{"Associations", testAssociations},
		{"AssociationPaging", testAssociationPaging},
		{"Tasks", testTasks},
		{"TaskPaging", testTaskPaging},
		{"ListedDirs", testListed},
		{"MoveListed", testMoveListed},
		{"FinishMoveListed", testFinishMoveListed},
		{"ChunkMaps", testChunkMaps},
		{"JournalDedup", testJournalDedup},
		{"JournalClaimLease", testJournalLease},
		{"JournalCompleteNewer", testJournalCompleteNewer},
		{"JournalFail", testJournalFail},
		{"JournalPending", testJournalPending},
		{"JournalConcurrent", testJournalConcurrent},
		{"JournalRenameBeforeExport", testJournalRenameBeforeExport},
		{"JournalRenameTree", testJournalRenameTree},
		{"JournalPark", testJournalPark},
		{"JournalReschedule", testJournalReschedule},
		{"JournalRenamedFrom", testJournalRenamedFrom},
		{"JournalRenameClaimedKeepsPlace", testJournalRenameClaimedKeepsPlace},
		{"AccessTimes", testAccess},
		{"Moves", testMoves},
		{"Links", testLinks},
		{"HintsDedup", testHintsDedup},
		{"HintsSequencer", testHintsSequencer},
		{"HintsArrivalOrder", testHintsArrivalOrder},
		{"HintsLease", testHintsLease},
		{"HintsFail", testHintsFail},
		{"HintsRelease", testHintsRelease},
		{"HintsInvalid", testHintsInvalid},
		{"Sessions", testSessions},
		{"RenameNonASCII", testRenameNonASCII},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewClock()
			c := open(t, catalog.Options{Now: clk.Now})
			defer c.Close()
			tc.fn(t, c, clk)
		})
	}
}

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testIdentity(t *testing.T, c catalog.Catalog, clk *Clock) {
	if _, err := c.FileSystem(ctx); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("identity of a new catalog: %v, want ErrNotFound", err)
	}
	if _, err := c.InitFileSystem(ctx, catalog.FileSystemInfo{FileSystemId: "nope"}); err == nil {
		t.Fatal("bad file system id accepted")
	}
	want := catalog.FileSystemInfo{FileSystemId: dra.NewFileSystemID(), CreationTime: clk.Now(), StorePath: "/data/store"}
	got, err := c.InitFileSystem(ctx, want)
	must(t, err)
	if got.FileSystemId != want.FileSystemId || !got.CreationTime.Equal(want.CreationTime) || got.StorePath != want.StorePath {
		t.Fatalf("init: got %+v want %+v", got, want)
	}
	again, err := c.InitFileSystem(ctx, catalog.FileSystemInfo{FileSystemId: dra.NewFileSystemID(), StorePath: "/other"})
	must(t, err)
	if again.FileSystemId != want.FileSystemId || again.StorePath != want.StorePath {
		t.Fatalf("second init replaced the identity: %+v", again)
	}
	got, err = c.FileSystem(ctx)
	must(t, err)
	if got.FileSystemId != want.FileSystemId {
		t.Fatalf("FileSystem: %+v", got)
	}
}

func testTokens(t *testing.T, c catalog.Catalog, clk *Clock) {
	const op = "CreateDataRepositoryAssociation"
	if _, ok, err := c.LookupToken(ctx, op, "tok"); err != nil || ok {
		t.Fatalf("lookup of an unknown token: %v %v", ok, err)
	}
	rec := dra.TokenRecord{Operation: op, Token: "tok", Fingerprint: "f1", ResourceID: "dra-0123456789abcdef0"}
	prev, saved, err := c.SaveToken(ctx, rec)
	must(t, err)
	if !saved || prev != rec {
		t.Fatalf("first save: %+v %v", prev, saved)
	}
	prev, saved, err = c.SaveToken(ctx, dra.TokenRecord{Operation: op, Token: "tok", Fingerprint: "f2", ResourceID: "dra-1"})
	must(t, err)
	if saved || prev != rec {
		t.Fatalf("second save must keep the first: %+v %v", prev, saved)
	}
	// Scoped by operation.
	if _, saved, err := c.SaveToken(ctx, dra.TokenRecord{Operation: "CreateDataRepositoryTask", Token: "tok", Fingerprint: "f3", ResourceID: "task-1"}); err != nil || !saved {
		t.Fatalf("same token, other operation: %v %v", saved, err)
	}
	// The dra helpers on top of the catalog.
	id, replay, err := dra.CheckToken(ctx, c, op, "tok", "f1")
	if err != nil || !replay || id != rec.ResourceID {
		t.Fatalf("CheckToken same parameters: %q %v %v", id, replay, err)
	}
	if _, _, err := dra.CheckToken(ctx, c, op, "tok", "other"); !api.IsCode(err, api.CodeIncompatibleParameterError) {
		t.Fatalf("CheckToken other parameters: %v", err)
	}
	if _, _, err := dra.SaveToken(ctx, c, dra.TokenRecord{Operation: op, Token: "tok", Fingerprint: "other", ResourceID: "dra-2"}); !api.IsCode(err, api.CodeIncompatibleParameterError) {
		t.Fatalf("SaveToken other parameters: %v", err)
	}
	// Racing saves: exactly one wins, all see the winner.
	var wg sync.WaitGroup
	wins := make(chan string, 16)
	for i := range 16 {
		wg.Go(func() {
			r := dra.TokenRecord{Operation: op, Token: "race", Fingerprint: "f", ResourceID: fmt.Sprint("dra-", i)}
			got, replay, err := dra.SaveToken(ctx, c, r)
			if err != nil {
				t.Error(err)
				return
			}
			if !replay {
				wins <- got
			}
		})
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d racing saves won, want 1", n)
	}
}

func newAssoc(clk *Clock, fsID, path string) api.DataRepositoryAssociation {
	id := dra.NewAssociationID()
	return api.DataRepositoryAssociation{
		AssociationId: id, FileSystemId: fsID, ResourceARN: api.AssociationARN(fsID, id),
		Lifecycle: api.LifecycleCreating, FileSystemPath: path, DataRepositoryPath: "s3://bucket" + path + "/",
		ImportedFileChunkSize: api.DefaultImportChunkSize, CreationTime: api.NewTime(clk.Now()),
		S3:   &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: []api.EventType{api.EventNew, api.EventChanged}}},
		Tags: []api.Tag{{Key: "k", Value: "v"}},
	}
}

func testAssociations(t *testing.T, c catalog.Catalog, clk *Clock) {
	fsID := dra.NewFileSystemID()
	a := newAssoc(clk, fsID, "/ns1")
	tok := &dra.TokenRecord{Operation: "CreateDataRepositoryAssociation", Token: "t1", Fingerprint: "fp", ResourceID: a.AssociationId}
	prev, created, err := c.CreateAssociation(ctx, a, tok)
	must(t, err)
	if !created || prev != *tok {
		t.Fatalf("create: %+v %v", prev, created)
	}
	// Same token again: nothing inserted, the first resource returned.
	b := newAssoc(clk, fsID, "/ns2")
	prev, created, err = c.CreateAssociation(ctx, b, &dra.TokenRecord{Operation: tok.Operation, Token: "t1", Fingerprint: "fp", ResourceID: b.AssociationId})
	must(t, err)
	if created || prev.ResourceID != a.AssociationId {
		t.Fatalf("replayed create: %+v %v", prev, created)
	}
	if _, err := c.Association(ctx, b.AssociationId); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("replayed create inserted its association: %v", err)
	}
	if _, _, err := c.CreateAssociation(ctx, a, nil); !errors.Is(err, catalog.ErrExists) {
		t.Fatalf("duplicate id: %v", err)
	}
	got, err := c.Association(ctx, a.AssociationId)
	must(t, err)
	if dra.Fingerprint(got) != dra.Fingerprint(a) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, a)
	}
	up, _, updated, err := c.UpdateAssociation(ctx, a.AssociationId, nil, func(x *api.DataRepositoryAssociation) error {
		x.Lifecycle = api.LifecycleAvailable
		x.ImportedFileChunkSize = 2048
		return nil
	})
	must(t, err)
	if up.Lifecycle != api.LifecycleAvailable || !updated {
		t.Fatal(up.Lifecycle, updated)
	}
	// An update with a token saves it with the change; a replay changes
	// nothing and returns the first request's record.
	utok := &dra.TokenRecord{Operation: "UpdateDataRepositoryAssociation", Token: "u1", Fingerprint: "ufp", ResourceID: a.AssociationId}
	_, prev, updated, err = c.UpdateAssociation(ctx, a.AssociationId, utok, func(x *api.DataRepositoryAssociation) error {
		x.ImportedFileChunkSize = 4096
		return nil
	})
	must(t, err)
	if !updated || prev != *utok {
		t.Fatalf("update with token: %v %+v", updated, prev)
	}
	cur, prev, updated, err := c.UpdateAssociation(ctx, a.AssociationId, &dra.TokenRecord{Operation: utok.Operation, Token: "u1", Fingerprint: "other", ResourceID: a.AssociationId},
		func(x *api.DataRepositoryAssociation) error {
			t.Error("fn called on a replayed token")
			return nil
		})
	must(t, err)
	if updated || prev != *utok || cur.ImportedFileChunkSize != 4096 {
		t.Fatalf("replayed update: %v %+v %d", updated, prev, cur.ImportedFileChunkSize)
	}
	// A failed update does not keep its token.
	if _, _, _, err := c.UpdateAssociation(ctx, a.AssociationId, &dra.TokenRecord{Operation: utok.Operation, Token: "u2", Fingerprint: "f", ResourceID: a.AssociationId},
		func(*api.DataRepositoryAssociation) error { return errors.New("refused") }); err == nil {
		t.Fatal("fn error lost")
	}
	if _, ok, _ := c.LookupToken(ctx, utok.Operation, "u2"); ok {
		t.Fatal("token of a failed update kept")
	}
	_, _, _, err = c.UpdateAssociation(ctx, a.AssociationId, nil, func(x *api.DataRepositoryAssociation) error {
		x.ImportedFileChunkSize = 2048
		return nil
	})
	must(t, err)
	got, err = c.Association(ctx, a.AssociationId)
	must(t, err)
	if got.Lifecycle != api.LifecycleAvailable || got.ImportedFileChunkSize != 2048 {
		t.Fatalf("update not kept: %+v", got)
	}
	if _, _, _, err := c.UpdateAssociation(ctx, a.AssociationId, nil, func(x *api.DataRepositoryAssociation) error {
		x.FileSystemPath = "/moved"
		return nil
	}); err == nil {
		t.Fatal("update changed an immutable path")
	}
	boom := errors.New("boom")
	if _, _, _, err := c.UpdateAssociation(ctx, a.AssociationId, nil, func(x *api.DataRepositoryAssociation) error {
		x.Lifecycle = api.LifecycleFailed
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if got, _ := c.Association(ctx, a.AssociationId); got.Lifecycle != api.LifecycleAvailable {
		t.Fatal("a failed update was kept")
	}
	if _, _, _, err := c.UpdateAssociation(ctx, "dra-00000000", nil, func(*api.DataRepositoryAssociation) error { return nil }); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("update missing: %v", err)
	}
	clk.Advance(time.Second)
	b.CreationTime = api.NewTime(clk.Now())
	_, _, err = c.CreateAssociation(ctx, b, nil)
	must(t, err)
	all, err := c.Associations(ctx)
	must(t, err)
	if len(all) != 2 || all[0].AssociationId != a.AssociationId || all[1].AssociationId != b.AssociationId {
		t.Fatalf("list: %+v", all)
	}
	must(t, c.DeleteAssociation(ctx, a.AssociationId))
	if err := c.DeleteAssociation(ctx, a.AssociationId); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	// The token outlives the association.
	if r, ok, _ := c.LookupToken(ctx, tok.Operation, "t1"); !ok || r.ResourceID != a.AssociationId {
		t.Fatalf("token after delete: %+v %v", r, ok)
	}
}

// pageAll pages through a describe with the catalog and with dra's
// in-memory reference and compares every page.
func testAssociationPaging(t *testing.T, c catalog.Catalog, clk *Clock) {
	fsA, fsB := dra.NewFileSystemID(), dra.NewFileSystemID()
	var all []api.DataRepositoryAssociation
	for i := range 30 {
		fs := fsA
		if i%3 == 0 {
			fs = fsB
		}
		a := newAssoc(clk, fs, fmt.Sprintf("/p%02d", i))
		if i%5 != 0 { // some share a creation time: the id breaks ties
			clk.Advance(time.Millisecond + 1234*time.Nanosecond)
		}
		_, _, err := c.CreateAssociation(ctx, a, nil)
		must(t, err)
		all = append(all, a)
	}
	max := func(n int32) *int32 { return &n }
	reqs := []api.DescribeDataRepositoryAssociationsRequest{
		{},
		{MaxResults: max(7)},
		{MaxResults: max(1), Filters: []api.Filter{{Name: api.FilterFileSystemID, Values: []string{fsB}}}},
		{MaxResults: max(4), AssociationIds: []string{all[3].AssociationId, all[17].AssociationId, all[29].AssociationId, all[0].AssociationId, all[11].AssociationId}},
		{Filters: []api.Filter{{Name: api.FilterDataRepositoryType, Values: []string{"NFS"}}}},
		{Filters: []api.Filter{{Name: api.FilterDataRepositoryType, Values: []string{"S3"}}, {Name: api.FilterFileSystemID, Values: []string{fsA}}}},
	}
	for i, req := range reqs {
		pages := 0
		for {
			want, err := dra.DescribeAssociations(all, req)
			must(t, err)
			q, err := dra.ParseDescribeAssociations(req)
			must(t, err)
			got, next, err := c.DescribeAssociations(ctx, q)
			must(t, err)
			var tok string
			if next != nil {
				tok = q.NextToken(*next)
			}
			if len(got) != len(want.Associations) || tok != want.NextToken {
				t.Fatalf("request %d page %d: %d items, token %q; want %d, %q", i, pages, len(got), tok, len(want.Associations), want.NextToken)
			}
			for j := range got {
				if got[j].AssociationId != want.Associations[j].AssociationId {
					t.Fatalf("request %d page %d item %d: %s want %s", i, pages, j, got[j].AssociationId, want.Associations[j].AssociationId)
				}
			}
			pages++
			if tok == "" {
				break
			}
			req.NextToken = tok
		}
	}
	q, err := dra.ParseDescribeAssociations(api.DescribeDataRepositoryAssociationsRequest{AssociationIds: []string{all[0].AssociationId, "dra-0000000000000000a"}})
	must(t, err)
	if _, _, err := c.DescribeAssociations(ctx, q); !api.IsCode(err, api.CodeDataRepositoryAssociationNotFound) {
		t.Fatalf("describe of a missing id: %v", err)
	}
}

func newTask(clk *Clock, fsID string, lc api.DataRepositoryTaskLifecycle) api.DataRepositoryTask {
	id := dra.NewTaskID()
	return api.DataRepositoryTask{TaskId: id, Lifecycle: lc, Type: api.TaskExportToRepository, CreationTime: api.NewTime(clk.Now()),
		ResourceARN: api.TaskARN(id), FileSystemId: fsID, Paths: []string{"/ns1/a"},
		Report: &api.CompletionReport{Enabled: false}}
}

func testTasks(t *testing.T, c catalog.Catalog, clk *Clock) {
	fsID := dra.NewFileSystemID()
	task := newTask(clk, fsID, api.TaskPending)
	tok := &dra.TokenRecord{Operation: "CreateDataRepositoryTask", Token: "t", Fingerprint: "fp", ResourceID: task.TaskId}
	_, created, err := c.CreateTask(ctx, task, []string{"dra-00000001", "dra-00000002"}, tok)
	must(t, err)
	if !created {
		t.Fatal("not created")
	}
	other := newTask(clk, fsID, api.TaskPending)
	prev, created, err := c.CreateTask(ctx, other, nil, &dra.TokenRecord{Operation: tok.Operation, Token: "t", Fingerprint: "fp", ResourceID: other.TaskId})
	must(t, err)
	if created || prev.ResourceID != task.TaskId {
		t.Fatalf("replay: %+v %v", prev, created)
	}
	if _, err := c.Task(ctx, other.TaskId); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("replayed task inserted: %v", err)
	}
	got, err := c.Task(ctx, task.TaskId)
	must(t, err)
	if dra.Fingerprint(got) != dra.Fingerprint(task) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, task)
	}
	ids, err := c.TaskAssociations(ctx, task.TaskId)
	must(t, err)
	if !slices.Equal(ids, []string{"dra-00000001", "dra-00000002"}) {
		t.Fatal(ids)
	}
	clk.Advance(time.Second)
	started, err := c.UpdateTask(ctx, task.TaskId, func(x *api.DataRepositoryTask) error {
		if err := dra.TaskTransition(x.Lifecycle, api.TaskExecuting); err != nil {
			return err
		}
		x.Lifecycle = api.TaskExecuting
		x.StartTime = api.TimePtr(clk.Now())
		x.Status = &api.DataRepositoryTaskStatus{TotalCount: 10}
		return nil
	})
	must(t, err)
	if started.Status.TotalCount != 10 {
		t.Fatal(started.Status)
	}
	for range 3 {
		clk.Advance(time.Second)
		must(t, c.AddTaskCounts(ctx, task.TaskId, catalog.TaskCounts{Succeeded: 2, Failed: 1, ReleasedBytes: 100}))
	}
	got, err = c.Task(ctx, task.TaskId)
	must(t, err)
	s := got.Status
	if s == nil || s.TotalCount != 10 || s.SucceededCount != 6 || s.FailedCount != 3 || s.ReleasedCapacity == nil || *s.ReleasedCapacity != 300 ||
		s.LastUpdatedTime == nil || !s.LastUpdatedTime.Equal(clk.Now()) {
		t.Fatalf("counters: %+v", s)
	}
	if got.Lifecycle != api.TaskExecuting || got.StartTime == nil {
		t.Fatalf("lifecycle: %+v", got)
	}
	// Update sees the counters and may keep or replace them.
	got, err = c.UpdateTask(ctx, task.TaskId, func(x *api.DataRepositoryTask) error {
		if x.Status.SucceededCount != 6 {
			return fmt.Errorf("update saw %+v", x.Status)
		}
		x.Lifecycle = api.TaskSucceeded
		x.EndTime = api.TimePtr(clk.Now())
		return nil
	})
	must(t, err)
	if got.Status.SucceededCount != 6 || got.Lifecycle != api.TaskSucceeded {
		t.Fatalf("after update: %+v", got)
	}
	if err := c.AddTaskCounts(ctx, "task-0123456789abcdef0", catalog.TaskCounts{Total: 1}); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("counts of a missing task: %v", err)
	}
}

func testTaskPaging(t *testing.T, c catalog.Catalog, clk *Clock) {
	fsA, fsB := dra.NewFileSystemID(), dra.NewFileSystemID()
	lcs := []api.DataRepositoryTaskLifecycle{api.TaskPending, api.TaskExecuting, api.TaskSucceeded, api.TaskFailed, api.TaskCanceled}
	draX, draY := "dra-0000000000000000a", "dra-0000000000000000b"
	links := map[string][]string{}
	var all []api.DataRepositoryTask
	for i := range 60 {
		fs := fsA
		if i%4 == 0 {
			fs = fsB
		}
		task := newTask(clk, fs, lcs[i%len(lcs)])
		var as []string
		switch i % 3 {
		case 0:
			as = []string{draX}
		case 1:
			as = []string{draX, draY}
		}
		links[task.TaskId] = as
		if i%7 != 0 {
			clk.Advance(time.Microsecond)
		}
		_, _, err := c.CreateTask(ctx, task, as, nil)
		must(t, err)
		all = append(all, task)
	}
	assocOf := func(t api.DataRepositoryTask) []string { return links[t.TaskId] }
	max := func(n int32) *int32 { return &n }
	reqs := []api.DescribeDataRepositoryTasksRequest{
		{},
		{MaxResults: max(9)},
		{MaxResults: max(5), Filters: []api.Filter{{Name: api.FilterTaskLifecycle, Values: []string{"PENDING", "FAILED"}}}},
		{MaxResults: max(4), Filters: []api.Filter{{Name: api.FilterAssociationID, Values: []string{draY}}, {Name: api.FilterFileSystemID, Values: []string{fsA}}}},
		{MaxResults: max(2), TaskIds: []string{all[59].TaskId, all[1].TaskId, all[30].TaskId}},
	}
	for i, req := range reqs {
		for page := 0; ; page++ {
			want, err := dra.DescribeTasks(all, req, assocOf)
			must(t, err)
			q, err := dra.ParseDescribeTasks(req)
			must(t, err)
			got, next, err := c.DescribeTasks(ctx, q)
			must(t, err)
			var tok string
			if next != nil {
				tok = q.NextToken(*next)
			}
			if len(got) != len(want.DataRepositoryTasks) || tok != want.NextToken {
				t.Fatalf("request %d page %d: %d items, token %q; want %d, %q", i, page, len(got), tok, len(want.DataRepositoryTasks), want.NextToken)
			}
			for j := range got {
				if got[j].TaskId != want.DataRepositoryTasks[j].TaskId {
					t.Fatalf("request %d page %d item %d: %s want %s", i, page, j, got[j].TaskId, want.DataRepositoryTasks[j].TaskId)
				}
			}
			if tok == "" {
				break
			}
			req.NextToken = tok
		}
	}
	q, err := dra.ParseDescribeTasks(api.DescribeDataRepositoryTasksRequest{TaskIds: []string{"task-0123456789abcdef0"}})
	must(t, err)
	if _, _, err := c.DescribeTasks(ctx, q); !api.IsCode(err, api.CodeDataRepositoryTaskNotFound) {
		t.Fatalf("missing task id: %v", err)
	}
}

func testListed(t *testing.T, c catalog.Catalog, clk *Clock) {
	if _, ok, err := c.Listed(ctx, "a"); err != nil || ok {
		t.Fatal(ok, err)
	}
	now := clk.Now()
	must(t, c.MarkListed(ctx, catalog.ListedDir{Path: "a", ListedAt: now, Marker: "etag1"},
		catalog.ListedDir{Path: "a/b", ListedAt: now}, catalog.ListedDir{Path: "a.b", ListedAt: now}, catalog.ListedDir{Path: "", ListedAt: now}))
	d, ok, err := c.Listed(ctx, "a")
	must(t, err)
	if !ok || d.Marker != "etag1" || !d.ListedAt.Equal(now) {
		t.Fatalf("%+v %v", d, ok)
	}
	must(t, c.MarkListed(ctx, catalog.ListedDir{Path: "a", ListedAt: now.Add(time.Hour), Marker: "etag2"}))
	if d, _, _ := c.Listed(ctx, "a"); d.Marker != "etag2" {
		t.Fatalf("re-mark: %+v", d)
	}
	if err := c.MarkListed(ctx, catalog.ListedDir{Path: "/abs"}); err == nil {
		t.Fatal("absolute path accepted")
	}
	for dir, want := range map[string]bool{"": true, "a": true, "a/b": false, "a.b": false, "x": false, "a/": false} {
		if got, err := c.ListedBelow(ctx, dir); err != nil || got != want {
			t.Errorf("ListedBelow(%q) = %v, %v; want %v", dir, got, err, want)
		}
	}
	n, err := c.ForgetListed(ctx, "a")
	must(t, err)
	if n != 2 {
		t.Fatalf("forgot %d, want 2 (a, a/b; not a.b)", n)
	}
	if _, ok, _ := c.Listed(ctx, "a.b"); !ok {
		t.Fatal("sibling a.b forgotten")
	}
	if n, _ := c.ForgetListed(ctx, ""); n != 2 {
		t.Fatalf("forget all: %d", n)
	}
}

func testChunkMaps(t *testing.T, c catalog.Catalog, clk *Clock) {
	var ms store.MapStore = c
	id := store.MapID{1, 2, 3}
	if _, err := ms.LoadChunkMap(id); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("missing map: %v", err)
	}
	big := make([]byte, 300_000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	must(t, ms.SaveChunkMap(id, big))
	got, err := ms.LoadChunkMap(id)
	must(t, err)
	if !slices.Equal(got, big) {
		t.Fatal("map differs")
	}
	must(t, ms.SaveChunkMap(id, nil))
	if got, err := ms.LoadChunkMap(id); err != nil || len(got) != 0 {
		t.Fatalf("empty map: %v %v", got, err)
	}
	must(t, ms.DeleteChunkMap(id))
	must(t, ms.DeleteChunkMap(id))
	if _, err := ms.LoadChunkMap(id); !errors.Is(err, catalog.ErrNotFound) {
		t.Fatalf("deleted map: %v", err)
	}
}

func appendOne(t *testing.T, c catalog.Catalog, path string, kind catalog.Kind, version int64) {
	t.Helper()
	must(t, c.Append(ctx, catalog.JournalAppend{Path: path, Kind: kind, Version: version}))
}

func depth(t *testing.T, c catalog.Catalog) int64 {
	t.Helper()
	d, err := c.Depth(ctx)
	must(t, err)
	return d
}

func testJournalDedup(t *testing.T, c catalog.Catalog, clk *Clock) {
	if d := depth(t, c); d != 0 {
		t.Fatal(d)
	}
	if age, err := c.OldestAge(ctx); err != nil || age != 0 {
		t.Fatal(age, err)
	}
	appendOne(t, c, "d/f", catalog.KindNew, 1)
	first, err := c.JournalSeq(ctx)
	must(t, err)
	clk.Advance(5 * time.Second)
	appendOne(t, c, "d/f", catalog.KindChanged, 2)
	appendOne(t, c, "d/g", catalog.KindChanged, 1)
	if d := depth(t, c); d != 2 {
		t.Fatalf("depth %d after superseding, want 2", d)
	}
	if age, _ := c.OldestAge(ctx); age != 5*time.Second {
		t.Fatalf("oldest age %v: a superseded entry keeps its place", age)
	}
	es, err := c.Pending(ctx, "", "", 10)
	must(t, err)
	if len(es) != 2 || es[0].Path != "d/f" || es[0].Kind != catalog.KindNew || es[0].Version != 2 || es[0].FirstSeq != first || es[0].Seq <= first {
		t.Fatalf("merged entry: %+v", es)
	}
	// Kind merging: RENAME then CHANGED keeps the rename; then DELETED wins.
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "r", Kind: catalog.KindRename, OldPath: "old"}))
	appendOne(t, c, "r", catalog.KindChanged, 3)
	es, _ = c.Pending(ctx, "r", "", 10)
	if len(es) != 1 || es[0].Kind != catalog.KindRename || es[0].OldPath != "old" || es[0].Version != 3 {
		t.Fatalf("rename+changed: %+v", es)
	}
	appendOne(t, c, "r", catalog.KindDeleted, 4)
	es, _ = c.Pending(ctx, "r", "", 10)
	if es[0].Kind != catalog.KindDeleted || es[0].OldPath != "" {
		t.Fatalf("rename+deleted: %+v", es[0])
	}
	for _, tc := range []struct {
		old, new, want catalog.Kind
	}{{catalog.KindNew, catalog.KindChanged, catalog.KindNew}, {catalog.KindChanged, catalog.KindNew, catalog.KindNew},
		{catalog.KindDeleted, catalog.KindNew, catalog.KindNew}, {catalog.KindNew, catalog.KindDeleted, catalog.KindDeleted}} {
		p := "m/" + string(tc.old) + string(tc.new)
		appendOne(t, c, p, tc.old, 1)
		appendOne(t, c, p, tc.new, 2)
		es, _ := c.Pending(ctx, p, "", 1)
		if k, _ := catalog.MergeKind(tc.old, "", tc.new, ""); es[0].Kind != tc.want || k != tc.want {
			t.Fatalf("%s then %s: %s (MergeKind %s), want %s", tc.old, tc.new, es[0].Kind, k, tc.want)
		}
	}
	// One call's entries apply in order.
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "o", Kind: catalog.KindNew, Version: 1}, catalog.JournalAppend{Path: "o", Kind: catalog.KindDeleted, Version: 2}))
	if es, _ := c.Pending(ctx, "o", "", 1); es[0].Kind != catalog.KindDeleted || es[0].Version != 2 {
		t.Fatalf("in-call order: %+v", es[0])
	}
	for _, bad := range []catalog.JournalAppend{{Path: "/x", Kind: catalog.KindNew}, {Path: "x", Kind: "MOVED"},
		{Path: "x", Kind: catalog.KindRename}, {Path: "x", Kind: catalog.KindNew, OldPath: "y"}} {
		if err := c.Append(ctx, bad); err == nil {
			t.Fatalf("bad entry %+v accepted", bad)
		}
	}
}

func testJournalLease(t *testing.T, c catalog.Catalog, clk *Clock) {
	for i := range 5 {
		appendOne(t, c, fmt.Sprintf("f%d", i), catalog.KindNew, 1)
		clk.Advance(time.Millisecond)
	}
	a, err := c.Claim(ctx, "A", 3, time.Minute)
	must(t, err)
	if len(a) != 3 || a[0].Path != "f0" || a[1].Path != "f1" || a[2].Path != "f2" || a[0].Owner != "A" {
		t.Fatalf("claim A: %+v", a)
	}
	b, err := c.Claim(ctx, "B", 10, time.Minute)
	must(t, err)
	if len(b) != 2 || b[0].Path != "f3" {
		t.Fatalf("claim B skips A's: %+v", b)
	}
	if none, _ := c.Claim(ctx, "C", 10, time.Minute); len(none) != 0 {
		t.Fatalf("everything is leased: %+v", none)
	}
	// A's lease is extended; B crashes and its lease expires.
	clk.Advance(50 * time.Second)
	held, err := c.ExtendLease(ctx, "A", a, time.Minute)
	must(t, err)
	if held != 3 {
		t.Fatalf("A holds %d", held)
	}
	if held, _ := c.ExtendLease(ctx, "A", b, time.Minute); held != 0 {
		t.Fatalf("A extended B's claims: %d", held)
	}
	clk.Advance(11 * time.Second)
	cl, err := c.Claim(ctx, "C", 10, time.Minute)
	must(t, err)
	if len(cl) != 2 || cl[0].Path != "f3" || cl[1].Path != "f4" {
		t.Fatalf("expired claims of B return to C: %+v", cl)
	}
	// A restarts under the same name: its claims return at once.
	n, err := c.ReleaseClaims(ctx, "A")
	must(t, err)
	if n != 3 {
		t.Fatalf("released %d", n)
	}
	again, _ := c.Claim(ctx, "A2", 10, time.Minute)
	if len(again) != 3 {
		t.Fatalf("after release: %+v", again)
	}
	// B, back from the dead, completes f3 for the content it saw: it is
	// exported, so removing it is right even though C holds it now.
	if ok, err := c.Complete(ctx, b[0]); err != nil || !ok {
		t.Fatal(ok, err)
	}
	for _, e := range append(again, cl[1]) {
		if ok, err := c.Complete(ctx, e); err != nil || !ok {
			t.Fatal(e, ok, err)
		}
	}
	if d := depth(t, c); d != 0 {
		t.Fatalf("depth %d", d)
	}
	if _, err := c.Claim(ctx, "", 1, time.Minute); err == nil {
		t.Fatal("claim without owner")
	}
}

func testJournalCompleteNewer(t *testing.T, c catalog.Catalog, clk *Clock) {
	appendOne(t, c, "f", catalog.KindNew, 1)
	es, err := c.Claim(ctx, "A", 1, time.Hour)
	must(t, err)
	barrier, _ := c.JournalSeq(ctx)
	clk.Advance(time.Second)
	appendOne(t, c, "f", catalog.KindChanged, 2) // written while being exported
	// The claim stays with A: nobody else uploads f meanwhile.
	if other, _ := c.Claim(ctx, "B", 1, time.Hour); len(other) != 0 {
		t.Fatalf("superseded entry claimed by another exporter: %+v", other)
	}
	ok, err := c.Complete(ctx, es[0])
	must(t, err)
	if ok {
		t.Fatal("Complete removed an entry with a newer version")
	}
	if d := depth(t, c); d != 1 {
		t.Fatalf("depth %d", d)
	}
	// What the barrier covered is exported: hsm wait with that barrier ends.
	if n, _ := c.PendingCount(ctx, "", barrier); n != 0 {
		t.Fatalf("pending before barrier: %d", n)
	}
	if n, _ := c.PendingCount(ctx, "", 0); n != 1 {
		t.Fatalf("pending: %d", n)
	}
	es2, err := c.Claim(ctx, "B", 1, time.Hour)
	must(t, err)
	if len(es2) != 1 || es2[0].Version != 2 || es2[0].Kind != catalog.KindNew {
		t.Fatalf("newer version ready at once: %+v", es2)
	}
	if ok, _ := c.Complete(ctx, es2[0]); !ok {
		t.Fatal("complete of the latest")
	}
	if d := depth(t, c); d != 0 {
		t.Fatal(d)
	}
}

func testJournalFail(t *testing.T, c catalog.Catalog, clk *Clock) {
	appendOne(t, c, "f", catalog.KindNew, 1)
	appendOne(t, c, "g", catalog.KindNew, 1)
	es, _ := c.Claim(ctx, "A", 1, time.Hour)
	must(t, c.Fail(ctx, es[0], "503 SlowDown", clk.Now().Add(time.Minute)))
	got, _ := c.Claim(ctx, "A", 10, time.Hour)
	if len(got) != 1 || got[0].Path != "g" {
		t.Fatalf("failed entry claimed before its retry time: %+v", got)
	}
	clk.Advance(time.Minute)
	got, _ = c.Claim(ctx, "B", 10, time.Hour)
	if len(got) != 1 || got[0].Path != "f" || got[0].Attempts != 1 || got[0].LastError != "503 SlowDown" {
		t.Fatalf("retry: %+v", got)
	}
	// A Fail by an owner who lost the claim changes nothing.
	must(t, c.Fail(ctx, es[0], "late", clk.Now().Add(time.Hour)))
	p, _ := c.Pending(ctx, "f", "", 1)
	if p[0].Owner != "B" || p[0].Attempts != 1 {
		t.Fatalf("stale Fail applied: %+v", p[0])
	}
	// A newer append keeps the backoff (an outage is not cured by writing).
	must(t, c.Fail(ctx, got[0], "again", clk.Now().Add(time.Minute)))
	appendOne(t, c, "f", catalog.KindChanged, 2)
	if none, _ := c.Claim(ctx, "A", 10, time.Hour); len(none) != 0 {
		t.Fatalf("append cut the backoff: %+v", none)
	}
	p, _ = c.Pending(ctx, "f", "", 1)
	if p[0].Attempts != 2 || p[0].LastError != "again" {
		t.Fatalf("bookkeeping: %+v", p[0])
	}
	// Defer waits like Fail but counts no attempt.
	clk.Advance(time.Minute)
	got, _ = c.Claim(ctx, "C", 10, time.Hour)
	if len(got) != 1 || got[0].Path != "f" {
		t.Fatalf("claim after the backoff: %+v", got)
	}
	must(t, c.Defer(ctx, got[0], "busy", clk.Now().Add(time.Second)))
	if none, _ := c.Claim(ctx, "C", 10, time.Hour); len(none) != 0 {
		t.Fatalf("deferred entry claimed before its time: %+v", none)
	}
	p, _ = c.Pending(ctx, "f", "", 1)
	if p[0].Attempts != 2 || p[0].LastError != "busy" || p[0].Owner != "" {
		t.Fatalf("after Defer: %+v", p[0])
	}
}

func testJournalReschedule(t *testing.T, c catalog.Catalog, clk *Clock) {
	for _, p := range []string{"a/x", "a/y", "a/z", "ab", "b"} {
		appendOne(t, c, p, catalog.KindNew, 1)
	}
	es, err := c.Claim(ctx, "A", 10, time.Hour)
	must(t, err)
	for _, e := range es {
		switch e.Path {
		case "a/z":
			must(t, c.Park(ctx, e, "PathSizeTooLong"))
		case "a/y":
			// stays leased
		default:
			must(t, c.Fail(ctx, e, "NoSuchBucket", clk.Now().Add(time.Hour)))
		}
	}
	n, err := c.Reschedule(ctx, "a")
	must(t, err)
	if n != 1 {
		t.Fatalf("Reschedule(a) = %d, want 1 (a/x; a/y is leased, a/z parked, ab outside)", n)
	}
	got, _ := c.Claim(ctx, "B", 10, time.Hour)
	if len(got) != 1 || got[0].Path != "a/x" || got[0].Attempts != 1 || got[0].LastError != "NoSuchBucket" {
		t.Fatalf("after Reschedule(a): %+v, want a/x ready with its attempt kept", got)
	}
	if n, _ := c.Reschedule(ctx, ""); n != 2 {
		t.Fatalf("Reschedule(\"\") = %d, want 2 (ab, b)", n)
	}
	if got, _ := c.Claim(ctx, "B", 10, time.Hour); len(got) != 2 {
		t.Fatalf("after Reschedule(\"\"): %+v", got)
	}
}

func testJournalPending(t *testing.T, c catalog.Catalog, clk *Clock) {
	paths := []string{"", "a", "a/b", "a/b/c", "a/z", "a.b", "a.b/c", "a!", "ab", "b"}
	for _, p := range paths {
		appendOne(t, c, p, catalog.KindChanged, 1)
	}
	barrier, _ := c.JournalSeq(ctx)
	appendOne(t, c, "a/new", catalog.KindNew, 1)
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", slices.Sorted(slices.Values(append(slices.Clone(paths), "a/new")))},
		{"a", []string{"a", "a/b", "a/b/c", "a/new", "a/z"}},
		{"a/b", []string{"a/b", "a/b/c"}},
		{"a.b", []string{"a.b", "a.b/c"}},
		{"nothing", nil},
	} {
		var got []string
		after := ""
		for {
			es, err := c.Pending(ctx, tc.prefix, after, 2)
			must(t, err)
			for _, e := range es {
				got = append(got, e.Path)
			}
			if len(es) < 2 {
				break
			}
			after = es[len(es)-1].Path
		}
		if !slices.Equal(got, tc.want) {
			t.Fatalf("Pending(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
		n, err := c.PendingCount(ctx, tc.prefix, 0)
		must(t, err)
		if n != int64(len(tc.want)) {
			t.Fatalf("PendingCount(%q) = %d, want %d", tc.prefix, n, len(tc.want))
		}
		wantBefore := int64(len(tc.want))
		if slices.Contains(tc.want, "a/new") {
			wantBefore--
		}
		if n, _ := c.PendingCount(ctx, tc.prefix, barrier); n != wantBefore {
			t.Fatalf("PendingCount(%q, barrier) = %d, want %d", tc.prefix, n, wantBefore)
		}
	}
}

func testJournalConcurrent(t *testing.T, c catalog.Catalog, clk *Clock) {
	const writers, each = 32, 20
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := c.Append(ctx, catalog.JournalAppend{Path: fmt.Sprintf("w%02d/f%02d", w, i), Kind: catalog.KindNew, Version: 1}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	// Exporters claim and complete while writers append.
	done := make(chan int64)
	go func() {
		var n int64
		for range 50 {
			es, err := c.Claim(ctx, "E", 16, time.Hour)
			if err != nil {
				t.Error(err)
				break
			}
			for _, e := range es {
				if ok, err := c.Complete(ctx, e); err != nil || !ok {
					t.Error(ok, err)
				}
				n++
			}
		}
		done <- n
	}()
	wg.Wait()
	completed := <-done
	d := depth(t, c)
	if d+completed != writers*each {
		t.Fatalf("depth %d + completed %d != %d appended", d, completed, writers*each)
	}
	seq, _ := c.JournalSeq(ctx)
	if seq != writers*each {
		t.Fatalf("seq %d", seq)
	}
}

func testAccess(t *testing.T, c catalog.Catalog, clk *Clock) {
	t0 := clk.Now()
	must(t, c.RecordAccess(ctx, catalog.Access{Path: "a", At: t0.Add(3 * time.Second)}, catalog.Access{Path: "b", At: t0.Add(time.Second)},
		catalog.Access{Path: "c", At: t0.Add(time.Second)}, catalog.Access{Path: "d", At: t0.Add(2 * time.Second)}))
	// An older access never moves a file back.
	must(t, c.RecordAccess(ctx, catalog.Access{Path: "a", At: t0}, catalog.Access{Path: "b", At: t0.Add(4 * time.Second)}))
	var got []string
	var after *catalog.Access
	for {
		as, err := c.LeastRecentlyAccessed(ctx, after, 3)
		must(t, err)
		for _, a := range as {
			got = append(got, a.Path)
		}
		if len(as) < 3 {
			break
		}
		after = &as[len(as)-1]
	}
	if !slices.Equal(got, []string{"c", "d", "a", "b"}) {
		t.Fatalf("order %q", got)
	}
	must(t, c.ForgetAccess(ctx, "c", "zz"))
	as, _ := c.LeastRecentlyAccessed(ctx, nil, 1)
	if len(as) != 1 || as[0].Path != "d" || !as[0].At.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("after forget: %+v", as)
	}
}

func testClosed(t *testing.T, c catalog.Catalog, clk *Clock) {
	appendOne(t, c, "f", catalog.KindNew, 1)
	must(t, c.Close())
	if err := c.Append(ctx, catalog.JournalAppend{Path: "g", Kind: catalog.KindNew}); !errors.Is(err, catalog.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	must(t, c.Close()) // idempotent
}

// pendingMap returns every pending entry by path.
func pendingMap(t *testing.T, c catalog.Catalog) map[string]catalog.JournalEntry {
	t.Helper()
	es, err := c.Pending(ctx, "", "", 1000)
	must(t, err)
	m := map[string]catalog.JournalEntry{}
	for _, e := range es {
		m[e.Path] = e
	}
	if d := depth(t, c); d != int64(len(m)) {
		t.Fatalf("depth %d, %d entries pending", d, len(m))
	}
	return m
}

// wantEntries checks the pending entries: path → "KIND" or "RENAME<-old".
func wantEntries(t *testing.T, c catalog.Catalog, want map[string]string) {
	t.Helper()
	got := map[string]string{}
	for p, e := range pendingMap(t, c) {
		k := string(e.Kind)
		if e.OldPath != "" {
			k += "<-" + e.OldPath
		}
		got[p] = k
	}
	for p, k := range want {
		if got[p] != k {
			t.Errorf("%q: %q, want %q", p, got[p], k)
		}
	}
	for p, k := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("unexpected entry %q: %s", p, k)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

func rename(t *testing.T, c catalog.Catalog, from, to string, tree bool) {
	t.Helper()
	must(t, c.Append(ctx, catalog.JournalAppend{Path: to, Kind: catalog.KindRename, OldPath: from, Tree: tree}))
}

func testJournalRenameBeforeExport(t *testing.T, c catalog.Catalog, clk *Clock) {
	// A new file renamed before its export: one NEW under the final name.
	appendOne(t, c, "a", catalog.KindNew, 1)
	barrier, _ := c.JournalSeq(ctx)
	rename(t, c, "a", "b", false)
	rename(t, c, "b", "b2", false)
	// A changed file renamed: the old key must still go.
	appendOne(t, c, "c", catalog.KindChanged, 1)
	rename(t, c, "c", "d", false)
	// A rename of a rename keeps the first origin; renamed back it is a change.
	rename(t, c, "e", "f", false)
	rename(t, c, "f", "g", false)
	rename(t, c, "h", "i", false)
	rename(t, c, "i", "h", false)
	// A pending deletion stays (that object's removal is still due).
	appendOne(t, c, "x", catalog.KindDeleted, 1)
	rename(t, c, "x", "y", false)
	// A NEW file renamed over a changed one: the target's object is
	// replaced by an upload, nothing is copied.
	appendOne(t, c, "n", catalog.KindNew, 1)
	appendOne(t, c, "z", catalog.KindChanged, 1)
	rename(t, c, "n", "z", false)
	// A file created where a rename landed: the rename's old key must go.
	rename(t, c, "o", "p", false)
	appendOne(t, c, "p", catalog.KindNew, 2)
	wantEntries(t, c, map[string]string{
		"b2": "NEW", "d": "RENAME<-c", "g": "RENAME<-e", "h": "CHANGED",
		"x": "DELETED", "y": "RENAME<-x", "z": "NEW", "p": "RENAME<-o",
	})
	// The collapsed entry keeps its place and barrier: hsm wait on the new
	// name waits for content closed under the old one.
	if n, _ := c.PendingCount(ctx, "b2", barrier); n != 1 {
		t.Fatalf("PendingCount(b2, barrier) = %d, want 1", n)
	}
	for _, tc := range []struct{ old, new catalog.Kind }{{catalog.KindRename, catalog.KindNew}, {catalog.KindRename, catalog.KindChanged}} {
		if k, o := catalog.MergeKind(tc.old, "o", tc.new, ""); k != catalog.KindRename || o != "o" {
			t.Fatalf("MergeKind(%s, %s) = %s %q", tc.old, tc.new, k, o)
		}
	}

	// A claimed entry is in flight: it stays, and the rename stays a rename.
	appendOne(t, c, "q", catalog.KindNew, 1)
	for {
		es, err := c.Claim(ctx, "A", 100, time.Minute)
		must(t, err)
		if len(es) == 0 {
			break
		}
	}
	rename(t, c, "q", "r", false)
	m := pendingMap(t, c)
	if m["q"].Kind != catalog.KindNew || m["q"].Owner != "A" || m["r"].Kind != catalog.KindRename || m["r"].OldPath != "q" {
		t.Fatalf("claimed: q %+v r %+v", m["q"], m["r"])
	}
	// Once the lease expired the entry is no longer in flight.
	clk.Advance(2 * time.Minute)
	rename(t, c, "r", "s", false)
	appendOne(t, c, "t", catalog.KindNew, 1)
	es, _ := c.Claim(ctx, "B", 100, time.Minute)
	_ = es
	clk.Advance(2 * time.Minute)
	rename(t, c, "t", "u", false)
	m = pendingMap(t, c)
	if _, ok := m["t"]; ok || m["u"].Kind != catalog.KindNew {
		t.Fatalf("expired claim: t %+v u %+v", m["t"], m["u"])
	}
	for _, bad := range []catalog.JournalAppend{
		{Path: "a", Kind: catalog.KindRename, OldPath: "a"},
		{Path: "a", Kind: catalog.KindChanged, Tree: true},
		{Path: "d/e", Kind: catalog.KindRename, OldPath: "d", Tree: true},
	} {
		if err := c.Append(ctx, bad); err == nil {
			t.Fatalf("bad entry %+v accepted", bad)
		}
	}
}

func testJournalRenameTree(t *testing.T, c catalog.Catalog, clk *Clock) {
	appendOne(t, c, "d", catalog.KindNew, 1)
	appendOne(t, c, "d/n", catalog.KindNew, 1)
	appendOne(t, c, "d/c", catalog.KindChanged, 1)
	rename(t, c, "d/q", "d/r", false)
	appendOne(t, c, "d/x", catalog.KindDeleted, 1)
	appendOne(t, c, "d/s/t", catalog.KindChanged, 1)
	appendOne(t, c, "dd/other", catalog.KindChanged, 1) // not below d
	es, err := c.Pending(ctx, "d/s/t", "", 1)
	must(t, err)
	clk.Advance(time.Second)
	// Claim only d/s/t: claim everything, then give the others back.
	all, err := c.Claim(ctx, "A", 100, time.Minute)
	must(t, err)
	for _, e := range all {
		if e.Path != "d/s/t" {
			must(t, c.Fail(ctx, e, "later", clk.Now()))
		}
	}
	barrier, _ := c.JournalSeq(ctx)
	rename(t, c, "d", "e", true)
	wantEntries(t, c, map[string]string{
		"e":        "RENAME<-d",
		"e/n":      "NEW",
		"e/c":      "RENAME<-d/c",
		"e/r":      "RENAME<-d/q",
		"d/x":      "DELETED",
		"d/s/t":    "CHANGED",
		"e/s/t":    "RENAME<-d/s/t",
		"dd/other": "CHANGED",
	})
	m := pendingMap(t, c)
	// The rename added for the claimed entry keeps its place in the
	// queue: its export may find d/s/t gone, and a barrier taken before the
	// rename (hsm wait) must still wait for the content under e/s/t.
	if m["e/s/t"].FirstSeq != es[0].FirstSeq || m["d/s/t"].FirstSeq != es[0].FirstSeq {
		t.Fatalf("claimed entry: %+v, added rename: %+v", m["d/s/t"], m["e/s/t"])
	}
	if n, _ := c.PendingCount(ctx, "e", barrier); n != 5 {
		t.Fatalf("PendingCount(e, barrier) = %d, want 5 (moved entries and the rename of the claimed one keep their barrier)", n)
	}
	// A change after the first rename, then a second rename: the objects
	// are still under d, where the first rename's entry moves them from.
	appendOne(t, c, "e/y", catalog.KindChanged, 1)
	must(t, c.Fail(ctx, m["e/s/t"], "x", clk.Now())) // unclaimed anyway
	rename(t, c, "e", "f", true)
	wantEntries(t, c, map[string]string{
		"f":        "RENAME<-d",
		"f/n":      "NEW",
		"f/c":      "RENAME<-d/c",
		"f/r":      "RENAME<-d/q",
		"f/y":      "RENAME<-d/y",
		"d/x":      "DELETED",
		"d/s/t":    "CHANGED",
		"f/s/t":    "RENAME<-d/s/t",
		"dd/other": "CHANGED",
	})
	// Renamed back: what is below is where its objects are, except what
	// was exported under f meanwhile; the directory's RENAME from f moves
	// that (a file's origin says where its object is).
	rename(t, c, "f", "d", true)
	wantEntries(t, c, map[string]string{
		"d":        "RENAME<-f",
		"d/n":      "NEW",
		"d/c":      "CHANGED",
		"d/r":      "RENAME<-d/q",
		"d/y":      "CHANGED",
		"d/x":      "DELETED",
		"d/s/t":    "CHANGED",
		"dd/other": "CHANGED",
	})
	if d := depth(t, c); d != 8 {
		t.Fatalf("depth %d", d)
	}
}

func testJournalPark(t *testing.T, c catalog.Catalog, clk *Clock) {
	appendOne(t, c, "long", catalog.KindNew, 1)
	appendOne(t, c, "ok", catalog.KindNew, 1)
	barrier, _ := c.JournalSeq(ctx)
	es, err := c.Claim(ctx, "A", 10, 2*time.Hour)
	must(t, err)
	must(t, c.Park(ctx, es[0], "PathSizeTooLong: key too long"))
	clk.Advance(time.Hour)
	if got, _ := c.Claim(ctx, "B", 10, time.Minute); len(got) != 0 {
		t.Fatalf("parked entry claimed: %+v", got)
	}
	if d := depth(t, c); d != 2 {
		t.Fatalf("depth %d: a parked entry is still pending", d)
	}
	for _, b := range []int64{0, barrier} {
		for _, p := range []string{"", "long"} {
			want := int64(0)
			if p == "" {
				want = 1 // ok, still claimed by A
			}
			if n, _ := c.PendingCount(ctx, p, b); n != want {
				t.Fatalf("PendingCount(%q, %d) = %d, want %d: hsm wait must not hang on a parked entry", p, b, n, want)
			}
		}
	}
	for _, p := range []string{"", "long"} {
		parked, err := c.ParkedEntries(ctx, p, "", 10)
		must(t, err)
		if len(parked) != 1 || parked[0].Path != "long" || !parked[0].IsParked() || parked[0].LastError != "PathSizeTooLong: key too long" || parked[0].Attempts != 1 {
			t.Fatalf("ParkedEntries(%q): %+v", p, parked)
		}
	}
	if parked, _ := c.ParkedEntries(ctx, "ok", "", 10); len(parked) != 0 {
		t.Fatalf("ParkedEntries(ok): %+v", parked)
	}
	// A newer append may fit: it is tried again.
	appendOne(t, c, "long", catalog.KindChanged, 2)
	got, err := c.Claim(ctx, "B", 10, time.Minute)
	must(t, err)
	if len(got) != 1 || got[0].Path != "long" || got[0].IsParked() {
		t.Fatalf("unparked: %+v", got)
	}
	// Parking a superseded entry only releases it.
	appendOne(t, c, "long", catalog.KindChanged, 3)
	must(t, c.Park(ctx, got[0], "FileSizeTooLarge"))
	again, _ := c.Claim(ctx, "C", 10, time.Minute)
	if len(again) != 1 || again[0].Path != "long" || again[0].Version != 3 {
		t.Fatalf("superseded park: %+v", again)
	}
}

func testMoves(t *testing.T, c catalog.Catalog, clk *Clock) {
	appendOne(t, c, "d/a", catalog.KindChanged, 1)
	id1, err := c.BeginMove(ctx, "d", "e")
	must(t, err)
	clk.Advance(time.Second)
	id2, err := c.BeginMove(ctx, "x", "y")
	must(t, err)
	if id1 == 0 || id2 == 0 || id1 == id2 {
		t.Fatalf("move ids %d, %d: want distinct, non-zero", id1, id2)
	}
	ms, err := c.Moves(ctx)
	must(t, err)
	if len(ms) != 2 || ms[0].ID != id1 || ms[0].From != "d" || ms[0].To != "e" || ms[1].ID != id2 || !ms[1].Created.After(ms[0].Created) {
		t.Fatalf("moves %+v", ms)
	}
	// The RENAME that ends a move removes its record in its transaction.
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "e", Kind: catalog.KindRename, OldPath: "d", Tree: true, EndMove: id1, Relaxed: true}))
	wantEntries(t, c, map[string]string{"e": "RENAME<-d", "e/a": "RENAME<-d/a"})
	ms, err = c.Moves(ctx)
	must(t, err)
	if len(ms) != 1 || ms[0].ID != id2 {
		t.Fatalf("after the RENAME: moves %+v, want only %d", ms, id2)
	}
	must(t, c.EndMove(ctx, id2))
	must(t, c.EndMove(ctx, id2)) // gone already: not an error
	if ms, _ = c.Moves(ctx); len(ms) != 0 {
		t.Fatalf("after EndMove: %+v", ms)
	}
	if _, err := c.BeginMove(ctx, "/abs", "b"); err == nil {
		t.Fatal("BeginMove accepted an absolute path")
	}
}

func testLinks(t *testing.T, c catalog.Catalog, clk *Clock) {
	must(t, c.AddLinks(ctx, 7, "a/f", "b/g"))
	must(t, c.AddLinks(ctx, 7, "a/f")) // again: kept once
	must(t, c.AddLinks(ctx, 8, "a/h"))
	wantLinks := func(ino uint64, want ...string) {
		t.Helper()
		got, err := c.Links(ctx, ino)
		must(t, err)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("links of %d: %q, want %q", ino, got, want)
		}
	}
	wantLinks(7, "a/f", "b/g")
	// A RENAME moves a recorded name; a tree RENAME every name below.
	rename(t, c, "b/g", "b/g2", false)
	wantLinks(7, "a/f", "b/g2")
	rename(t, c, "a", "c", true)
	wantLinks(7, "b/g2", "c/f")
	wantLinks(8, "c/h")
	// "ab" is not below "a".
	must(t, c.AddLinks(ctx, 9, "cd/x"))
	rename(t, c, "c", "z", true)
	wantLinks(9, "cd/x")
	must(t, c.ForgetLinks(ctx, 7, "b/g2"))
	wantLinks(7, "z/f")
	must(t, c.ForgetLinks(ctx, 8))
	wantLinks(8)
	if err := c.AddLinks(ctx, 1, "bad/"); err == nil {
		t.Fatal("AddLinks accepted a path with a trailing slash")
	}
}

// testJournalRenamedFrom: RenamesFrom finds pending RENAMEs by old path,
// claimed or not, and forgets completed and parked ones.
func testJournalRenamedFrom(t *testing.T, c catalog.Catalog, clk *Clock) {
	check := func(want bool, paths ...string) {
		t.Helper()
		got, err := c.RenamesFrom(ctx, paths, 10)
		must(t, err)
		if (len(got) > 0) != want {
			t.Fatalf("RenamesFrom(%q) = %+v, want any: %v", paths, got, want)
		}
		for _, e := range got {
			if e.Kind != catalog.KindRename || !slices.Contains(paths, e.OldPath) {
				t.Fatalf("RenamesFrom(%q): %+v", paths, e)
			}
		}
	}
	check(false)
	check(false, "a")
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "b", Kind: catalog.KindRename, OldPath: "a"}))
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "d2", Kind: catalog.KindRename, OldPath: "d", Tree: true}))
	appendOne(t, c, "x", catalog.KindChanged, 1)
	check(true, "a")
	check(true, "zz", "d")
	check(false, "b", "x", "d2", "a/b")
	if got, err := c.RenamesFrom(ctx, []string{"a", "d"}, 1); err != nil || len(got) != 1 || got[0].Path != "b" {
		t.Fatalf("RenamesFrom(a, d) limit 1: %+v %v", got, err)
	}
	// A RENAME(q ← a) that moved nothing (q renamed on before it ran):
	// the renames from q and below it are from a and below it now.
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "c", Kind: catalog.KindRename, OldPath: "q"}))
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "e/x", Kind: catalog.KindRename, OldPath: "d2/x"}))
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "e/y", Kind: catalog.KindRename, OldPath: "d20"}))
	must(t, c.ForwardRenames(ctx, "q", "a"))
	must(t, c.ForwardRenames(ctx, "d2", "d"))
	for path, old := range map[string]string{"c": "a", "e/x": "d/x", "e/y": "d20"} {
		es, err := c.Pending(ctx, path, "", 1)
		if err != nil || len(es) != 1 || es[0].Path != path || es[0].OldPath != old {
			t.Fatalf("after ForwardRenames, %s: %+v %v, want old path %s", path, es, err, old)
		}
	}
	for _, p := range []string{"c", "e/x", "e/y"} {
		es, _ := c.Pending(ctx, p, "", 1)
		if _, err := c.Complete(ctx, es[0]); err != nil {
			t.Fatal(err)
		}
	}
	es, err := c.Claim(ctx, "A", 10, time.Hour)
	must(t, err)
	check(true, "a") // in flight: still to be moved
	for _, e := range es {
		switch e.Path {
		case "b":
			if _, err := c.Complete(ctx, e); err != nil {
				t.Fatal(err)
			}
		case "d2":
			must(t, c.Park(ctx, e, "PathSizeTooLong: key too long"))
		}
	}
	check(false, "a")
	check(false, "d") // parked: never moves, must not hold others back
}

// testMoveListed: a renamed directory's listed records, its own and below,
// move to the new name; what was listed under the new name goes; siblings
// with the same leading bytes stay.
func testMoveListed(t *testing.T, c catalog.Catalog, clk *Clock) {
	for _, p := range []string{"a", "a/b", "a/b/c", "a.b", "ab", "x", "x/old"} {
		must(t, c.MarkListed(ctx, catalog.ListedDir{Path: p, ListedAt: clk.Now(), Marker: "m-" + p}))
	}
	must(t, c.MoveListed(ctx, "a", "x"))
	for p, want := range map[string]string{"x": "m-a", "x/b": "m-a/b", "x/b/c": "m-a/b/c", "a.b": "m-a.b", "ab": "m-ab"} {
		d, ok, err := c.Listed(ctx, p)
		must(t, err)
		if !ok || d.Marker != want {
			t.Fatalf("Listed(%q) = %+v, %v; want marker %q", p, d, ok, want)
		}
	}
	for _, p := range []string{"a", "a/b", "a/b/c", "x/old"} {
		if _, ok, _ := c.Listed(ctx, p); ok {
			t.Fatalf("%q still listed after the move", p)
		}
	}
	if err := c.MoveListed(ctx, "", "y"); err == nil {
		t.Fatal("the root moved")
	}
}

// testFinishMoveListed: the listed records of a renamed directory move
// with the end of its move record, in the same transaction (FinishMove, or
// the RENAME carrying EndMove), and only once: a repeat after the record
// is gone moves nothing (recovery after a crash must not drop the records
// at the new name). A move that did not happen (EndMove) moves nothing.
func testFinishMoveListed(t *testing.T, c catalog.Catalog, clk *Clock) {
	for _, p := range []string{"d", "d/s", "f", "g"} {
		must(t, c.MarkListed(ctx, catalog.ListedDir{Path: p, ListedAt: clk.Now(), Marker: "m-" + p}))
	}
	listed := func(p string) bool {
		t.Helper()
		_, ok, err := c.Listed(ctx, p)
		must(t, err)
		return ok
	}
	id, err := c.BeginMove(ctx, "d", "e")
	must(t, err)
	must(t, c.FinishMove(ctx, id))
	if listed("d") || listed("d/s") || !listed("e") || !listed("e/s") {
		t.Fatal("FinishMove did not move d's listed records to e")
	}
	must(t, c.FinishMove(ctx, id)) // a repeat: the record is gone
	if !listed("e") || !listed("e/s") {
		t.Fatal("a repeated FinishMove dropped e's listed records")
	}
	id, err = c.BeginMove(ctx, "f", "h")
	must(t, err)
	must(t, c.EndMove(ctx, id))
	if !listed("f") || listed("h") {
		t.Fatal("EndMove (a rename that did not happen) moved f's listed record")
	}
	id, err = c.BeginMove(ctx, "g", "k")
	must(t, err)
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "k", Kind: catalog.KindRename, OldPath: "g", Tree: true, EndMove: id, Relaxed: true}))
	if listed("g") || !listed("k") {
		t.Fatal("the RENAME ending a move did not move g's listed record to k")
	}
}

// testJournalRenameClaimedKeepsPlace: a file renamed while its entry is in
// flight: the RENAME keeps that entry's place in the queue, so `hsm wait`
// begun before the rename waits for the content under the new name even
// when the in-flight export finds the old name gone and completes.
func testJournalRenameClaimedKeepsPlace(t *testing.T, c catalog.Catalog, clk *Clock) {
	appendOne(t, c, "a", catalog.KindNew, 1)
	barrier, _ := c.JournalSeq(ctx)
	es, err := c.Claim(ctx, "A", 1, time.Hour)
	must(t, err)
	clk.Advance(time.Second)
	must(t, c.Append(ctx, catalog.JournalAppend{Path: "b", Kind: catalog.KindRename, OldPath: "a"}))
	if _, err := c.Complete(ctx, es[0]); err != nil { // found "a" gone
		t.Fatal(err)
	}
	if n, _ := c.PendingCount(ctx, "", barrier); n != 1 {
		t.Fatalf("PendingCount(barrier) = %d after the in-flight entry ended, want 1 (b)", n)
	}
}
