package tasks

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

func TestMain(m *testing.M) { os.Exit(testutil.RunMain(m)) }

var ctx = context.Background()

const prefix = "pre/"

// env is a store, a SQLite catalog, a bucket with one association
// (/ExtData ↔ s3://bucket/pre/), the real exporter and importer, and a
// Runner.
type env struct {
	t      testing.TB
	m      *testutil.MinIO
	st     *store.Store
	cat    catalog.Catalog
	s3     *s3x.Client
	eng    *transfer.Engine
	bucket string
	fsID   string
	ex     *exporter.Exporter
	im     *importer.Importer
	cfg    Config
	r      *Runner
	// progress is the exporter's Config.Progress (changing_test.go).
	progress atomic.Pointer[func(rel string, n int64)]
	cancel   context.CancelFunc
	done     chan error
}

func newEnv(t testing.TB, tune ...func(*Config)) *env {
	t.Helper()
	return newEnvAt(t, "ExtData", tune...)
}

// newEnvAt is newEnv with the association's directory at dir.
func newEnvAt(t testing.TB, dir string, tune ...func(*Config)) *env {
	t.Helper()
	m := testutil.SharedMinIO(t)
	root := t.TempDir()
	st, err := store.Open(root)
	must(t, err)
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.OpenSQLite(ctx, filepath.Join(st.MetaPath(), catalog.DefaultFile), catalog.Options{})
	must(t, err)
	st.SetMapStore(cat)
	e := &env{t: t, m: m, st: st, cat: cat, s3: m.Client(t), bucket: m.Bucket(t), fsID: dra.NewFileSystemID()}
	e.eng = transfer.New(e.s3, transfer.Options{Concurrency: 4, PartSize: transfer.MinPartSize})
	_, err = cat.InitFileSystem(ctx, catalog.FileSystemInfo{FileSystemId: e.fsID, CreationTime: time.Now(), StorePath: root})
	must(t, err)
	a := api.DataRepositoryAssociation{
		AssociationId: dra.NewAssociationID(), FileSystemId: e.fsID, FileSystemPath: "/" + dir,
		DataRepositoryPath: "s3://" + e.bucket + "/" + prefix, Lifecycle: api.LifecycleAvailable,
		CreationTime: api.NewTime(time.Now()), ImportedFileChunkSize: 1024,
	}
	_, _, err = cat.CreateAssociation(ctx, a, nil)
	must(t, err)
	must(t, st.MkdirAll(dir, 0o755))
	e.ex, err = exporter.New(exporter.Config{Store: st, Catalog: cat, S3: e.s3, Engine: e.eng, Version: "test",
		Progress: func(rel string, n int64) {
			if f := e.progress.Load(); f != nil {
				(*f)(rel, n)
			}
		}})
	must(t, err)
	e.ex.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{a}, nil))
	e.im = importer.New(importer.Config{Store: st, Catalog: cat, S3: e.s3})
	e.im.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{a}, nil))
	t.Cleanup(func() {
		e.stop()
		e.im.Close()
		cat.Close()
	})
	e.cfg = Config{
		Catalog: cat, Store: st, Exporter: e.ex, Importer: e.im, S3: e.s3, Engine: e.eng,
		Applier: e.im.NewApplier(importer.ApplyConfig{AllEvents: true}),
		Workers: 4, FlushInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range tune {
		f(&e.cfg)
	}
	return e
}

// testLog sends the runner's log to the test's output.
type testLog struct{ t testing.TB }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// start runs a new Runner until the test ends or stop.
func (e *env) start() {
	e.t.Helper()
	r, err := New(e.cfg)
	must(e.t, err)
	e.r = r
	c, cancel := context.WithCancel(ctx)
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- r.Run(c) }()
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		e.t.Error("Run did not return within 30s of its context ending")
	}
	e.cancel = nil
}

// create makes a task through Runner.Create (or the catalog when no runner
// runs yet) and returns its id.
func (e *env) create(req api.CreateDataRepositoryTaskRequest) string {
	e.t.Helper()
	req.FileSystemId = e.fsID
	if req.Report == nil {
		req.Report = &api.CompletionReport{Enabled: false}
	}
	r := e.r
	if r == nil {
		var err error
		r, err = New(e.cfg)
		must(e.t, err)
	}
	out, err := r.Create(ctx, req)
	must(e.t, err)
	t := out.DataRepositoryTask
	if t.Lifecycle != api.TaskPending || !strings.HasPrefix(t.TaskId, "task-") {
		e.t.Fatalf("created task: %+v", t)
	}
	return t.TaskId
}

func (e *env) task(id string) api.DataRepositoryTask {
	e.t.Helper()
	t, err := e.cat.Task(ctx, id)
	must(e.t, err)
	return t
}

// wait waits until task id is in lifecycle l and returns it.
func (e *env) wait(id string, l api.DataRepositoryTaskLifecycle) api.DataRepositoryTask {
	e.t.Helper()
	var t api.DataRepositoryTask
	testutil.Eventually(e.t, 30*time.Second, "task "+id+" "+string(l), func() bool {
		t = e.task(id)
		if dra.TaskEnded(t.Lifecycle) && t.Lifecycle != l {
			e.t.Fatalf("task ended %s, want %s: %+v", t.Lifecycle, l, t.FailureDetails)
		}
		return t.Lifecycle == l
	})
	return t
}

func (e *env) write(rel, body string) {
	e.t.Helper()
	p := filepath.Join(e.st.Root(), rel)
	must(e.t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(e.t, os.WriteFile(p, []byte(body), 0o644))
}

func (e *env) object(key string) (string, bool) {
	e.t.Helper()
	out, err := e.s3.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		if c := s3x.CodeOf(e.s3.Explain(err, "get", e.bucket, key)); c == s3x.CodeNoSuchKey || c == "NotFound" {
			return "", false
		}
		e.t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	must(e.t, err)
	return string(b), true
}

func (e *env) flags(rel string) hsm.Flags {
	e.t.Helper()
	s, err := e.st.GetState(rel)
	if err != nil {
		e.t.Fatalf("state of %s: %v", rel, err)
	}
	return s.Flags
}

func counts(t api.DataRepositoryTask) (total, ok, failed int64) {
	if t.Status == nil {
		return 0, 0, 0
	}
	return t.Status.TotalCount, t.Status.SucceededCount, t.Status.FailedCount
}

func TestExportTask(t *testing.T) {
	e := newEnv(t)
	// Files that existed before the association (no state at all).
	e.write("ExtData/a.txt", "alpha")
	e.write("ExtData/d/b.txt", "bravo")
	must(t, os.MkdirAll(filepath.Join(e.st.Root(), "ExtData/d/empty"), 0o755))
	must(t, os.Symlink("a.txt", filepath.Join(e.st.Root(), "ExtData/link")))
	e.write("Other/x.txt", "outside every association")
	e.start()

	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
	tk := e.wait(id, api.TaskSucceeded)
	// a.txt, d/, d/b.txt, d/empty/, link
	if tot, ok, failed := counts(tk); tot != 5 || ok != 5 || failed != 0 {
		t.Fatalf("counts: total %d ok %d failed %d, want 5 5 0", tot, ok, failed)
	}
	if tk.StartTime == nil || tk.EndTime == nil || tk.Status.LastUpdatedTime == nil || tk.FailureDetails != nil {
		t.Fatalf("times/failure: %+v", tk)
	}
	for key, want := range map[string]string{prefix + "a.txt": "alpha", prefix + "d/b.txt": "bravo", prefix + "d/empty/": "", prefix + "link": "a.txt", prefix + "d/": ""} {
		if got, ok := e.object(key); !ok || got != want {
			t.Errorf("object %s = %q, %v; want %q", key, got, ok, want)
		}
	}
	if f := e.flags("ExtData/a.txt"); f != hsm.Exists|hsm.Archived {
		t.Errorf("a.txt after export: %v", f)
	}

	// Nothing changed: nothing to do, nothing counted.
	id2 := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, Paths: []string{"/"}})
	if tot, _, _ := counts(e.wait(id2, api.TaskSucceeded)); tot != 0 {
		t.Fatalf("second export counted %d files, want 0", tot)
	}

	// A local change (the mount marks the file dirty) is exported again.
	e.write("ExtData/d/b.txt", "bravo two")
	_, err := e.st.UpdateState("ExtData/d/b.txt", func(s *store.State) error {
		f, err := hsm.LocalWrite("ExtData/d/b.txt", s.Flags)
		s.Flags, s.Version = f, s.Version+1
		return err
	})
	must(t, err)
	id3 := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, Paths: []string{"ExtData"}})
	if tot, ok, _ := counts(e.wait(id3, api.TaskSucceeded)); tot != 1 || ok != 1 {
		t.Fatalf("third export: total %d ok %d, want 1 1", tot, ok)
	}
	if got, _ := e.object(prefix + "d/b.txt"); got != "bravo two" {
		t.Fatalf("d/b.txt = %q", got)
	}
	if _, ok := e.object("Other/x.txt"); ok {
		t.Fatal("a file outside every association was exported")
	}
	// A hard link of an exported file: the inode is clean, the new name
	// has no object yet; the next task exports it, the one after does not.
	must(t, os.Link(filepath.Join(e.st.Root(), "ExtData/a.txt"), filepath.Join(e.st.Root(), "ExtData/hard.txt")))
	id4 := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
	if tot, ok, _ := counts(e.wait(id4, api.TaskSucceeded)); tot != 1 || ok != 1 { // hard.txt (a.txt's object is current)
		t.Fatalf("hard link export counted %d %d, want 1 1", tot, ok)
	}
	if got, found := e.object(prefix + "hard.txt"); !found || got != "alpha" {
		t.Fatalf("hard link object: %q %v", got, found)
	}
	id5 := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
	if tot, _, _ := counts(e.wait(id5, api.TaskSucceeded)); tot != 0 {
		t.Fatalf("export after the hard link's: counted %d, want 0", tot)
	}
	// Describe by file system finds all five.
	resp, err := e.r.Describe(ctx, api.DescribeDataRepositoryTasksRequest{Filters: []api.Filter{{Name: api.FilterFileSystemID, Values: []string{e.fsID}}}})
	must(t, err)
	if len(resp.DataRepositoryTasks) != 5 {
		t.Fatalf("describe: %d tasks", len(resp.DataRepositoryTasks))
	}
}

func TestExportTaskPaths(t *testing.T) {
	e := newEnv(t)
	e.write("ExtData/a.txt", "alpha")
	e.write("ExtData/d/b.txt", "bravo")
	e.write("ExtData/d/c.txt", "charlie")
	e.write("Other/x.txt", "x")
	e.start()

	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, Paths: []string{"/ExtData/d"}})
	if tot, _, _ := counts(e.wait(id, api.TaskSucceeded)); tot != 3 { // d/, b, c
		t.Fatalf("total %d, want 3", tot)
	}
	if _, ok := e.object(prefix + "a.txt"); ok {
		t.Fatal("a.txt exported by a task for ExtData/d")
	}

	for _, tc := range []struct{ path, want string }{
		{"ExtData/missing", `"ExtData/missing" does not exist`},
		{"Other", `"Other" is not inside any data repository association`},
	} {
		id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, Paths: []string{"ExtData/a.txt", tc.path}})
		tk := e.wait(id, api.TaskFailed)
		if tk.FailureDetails == nil || !strings.Contains(tk.FailureDetails.Message, tc.want) {
			t.Errorf("%s: FailureDetails %+v, want %q", tc.path, tk.FailureDetails, tc.want)
		}
		if tot, _, _ := counts(tk); tot != 0 {
			t.Errorf("%s: an invalid path must fail the task before any file: total %d", tc.path, tot)
		}
	}
	if _, ok := e.object(prefix + "a.txt"); ok {
		t.Fatal("a.txt exported by a task that failed on an invalid path")
	}
}

// longName is a path component of n bytes.
func longName(c byte, n int) string { return strings.Repeat(string(c), n) }

func TestExportTaskReport(t *testing.T) {
	// The association's directory starts with "=", so the failed file's
	// path (relative to the file system root) does too.
	e := newEnvAt(t, "=x,\"y")
	e.write("=x,\"y/ok.txt", "fine")
	// A key over 1024 bytes fails with PathSizeTooLong.
	// (Components of 200 bytes: MinIO stores a "dir/" object under the
	// name plus a 9-byte suffix, so it refuses directory names over 246.)
	dir := "=x,\"y"
	for _, c := range "ABCDE" {
		dir += "/" + longName(byte(c), 200)
	}
	bad := dir + "/" + longName('f', 20)
	e.write(bad, "too long a key")
	e.start()

	id := e.create(api.CreateDataRepositoryTaskRequest{
		Type:   api.TaskExportToRepository,
		Report: &api.CompletionReport{Enabled: true, Path: "s3://" + e.bucket + "/reports"},
	})
	tk := e.wait(id, api.TaskFailed)
	tot, ok, failed := counts(tk)
	if failed != 1 || ok != tot-1 {
		t.Fatalf("counts: total %d ok %d failed %d", tot, ok, failed)
	}
	key := "reports/" + id + "/failures.csv"
	if tk.FailureDetails == nil || !strings.Contains(tk.FailureDetails.Message, "1 of") || !strings.Contains(tk.FailureDetails.Message, key) {
		t.Fatalf("FailureDetails: %+v", tk.FailureDetails)
	}
	body, found := e.object(key)
	if !found {
		t.Fatalf("no report at %s", key)
	}
	// FSx's encoding: "=…" is wrapped in quotation marks, then RFC 4180
	// doubles them.
	if body != reportLine(bad, "PathSizeTooLong") {
		t.Fatalf("report:\n%q\nwant\n%q", body, reportLine(bad, "PathSizeTooLong"))
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	must(t, err)
	if len(recs) != 1 || recs[0][0] != `"`+bad+`"` || recs[0][1] != "failed" || recs[0][2] != "PathSizeTooLong" {
		t.Fatalf("parsed report: %q", recs)
	}
	if _, err := os.Stat(e.r.spillPath(id)); !os.IsNotExist(err) {
		t.Errorf("spill file left behind: %v", err)
	}

	// A file system path as Report.Path (ferry only): the report lands in
	// the store.
	id2 := e.create(api.CreateDataRepositoryTaskRequest{
		Type: api.TaskExportToRepository, Paths: []string{dir},
		Report: &api.CompletionReport{Enabled: true, Path: "/reports"},
	})
	e.wait(id2, api.TaskFailed)
	got, err := os.ReadFile(filepath.Join(e.st.Root(), "reports", id2, "failures.csv"))
	must(t, err)
	if string(got) != reportLine(bad, "PathSizeTooLong") {
		t.Fatalf("store report: %q", got)
	}
}

// reportLine is the line the report has for a failed path that starts
// with "=" and holds a comma and a quotation mark.
func reportLine(path, code string) string {
	inner := `"` + path + `"`
	return `"` + strings.ReplaceAll(inner, `"`, `""`) + `",failed,` + code + "\r\n"
}

func TestSafeField(t *testing.T) {
	var buf bytes.Buffer
	for _, tc := range []struct{ in, want string }{
		{"@filename.txt", `"""@filename.txt"""`},
		{"+filename.txt", `"""+filename.txt"""`},
		{"-x", `"""-x"""`},
		{"=1+2", `"""=1+2"""`},
		{"file,name.txt", `"file,name.txt"`},
		{`file"name.txt`, `"file""name.txt"`},
		{"plain/a.txt", `plain/a.txt`},
		{"a\nb", "\"a\nb\""},
	} {
		buf.Reset()
		w := csv.NewWriter(&buf)
		must(t, w.Write([]string{safeField(tc.in)}))
		w.Flush()
		if got := strings.TrimSuffix(buf.String(), "\n"); got != tc.want {
			t.Errorf("%q: got %s, want %s", tc.in, got, tc.want)
		}
	}
}

// gate wraps the real exporter: calls after the first free ones block until
// the gate opens (the fault a real exporter cannot produce on demand: a file
// whose export is in flight at a chosen moment).
type gate struct {
	Exporter
	free    atomic.Int64
	entered atomic.Int64
	open    chan struct{}
	once    sync.Once
}

func newGate(ex Exporter, free int64) *gate {
	g := &gate{Exporter: ex, open: make(chan struct{})}
	g.free.Store(free)
	return g
}

func (g *gate) Export(ctx context.Context, rel string) (bool, error) {
	if g.free.Add(-1) < 0 {
		g.entered.Add(1)
		select {
		case <-g.open:
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return g.Exporter.Export(ctx, rel)
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func TestCancelExportTask(t *testing.T) {
	var g *gate
	e := newEnv(t, func(c *Config) { c.Workers = 2 })
	g = newGate(e.ex, 3)
	e.cfg.Exporter = g
	for i := range 40 {
		e.write("ExtData/f"+string(rune('a'+i%26))+string(rune('a'+i/26))+".txt", "data")
	}
	e.start()
	t.Cleanup(g.release)
	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
	// The counters are current while the task runs: 3 exports done, 2 in
	// flight behind the gate.
	testutil.Eventually(t, 10*time.Second, "counters while executing", func() bool {
		tk := e.task(id)
		_, ok, _ := counts(tk)
		return tk.Lifecycle == api.TaskExecuting && ok == 3 && g.entered.Load() == 2 && tk.Status.LastUpdatedTime != nil
	})
	tk, err := e.r.Cancel(ctx, id)
	must(t, err)
	if tk.Lifecycle != api.TaskCanceling {
		t.Fatalf("cancel answered %s", tk.Lifecycle)
	}
	// In-flight files finish: the task stays CANCELING until they do.
	time.Sleep(100 * time.Millisecond) // not a wait for a condition: gives a wrong implementation time to end early
	if l := e.task(id).Lifecycle; l != api.TaskCanceling {
		t.Fatalf("task %s while files are in flight", l)
	}
	g.release()
	tk = e.wait(id, api.TaskCanceled)
	if tot, ok, _ := counts(tk); tot != 5 || ok != 5 {
		t.Fatalf("canceled task: total %d ok %d, want 5 5 (3 done + 2 in flight finished)", tot, ok)
	}
	if tk.EndTime == nil || tk.FailureDetails != nil {
		t.Fatalf("canceled task: %+v", tk)
	}
	n := 0
	must(t, e.s3.List(ctx, e.bucket, s3x.ListOptions{Prefix: prefix}, func(o s3x.Object) error { n++; return nil }))
	if n != 5 {
		t.Fatalf("%d objects exported, want 5", n)
	}
	// Cancel again: ended.
	if _, err := e.r.Cancel(ctx, id); !api.IsCode(err, api.CodeDataRepositoryTaskEnded) {
		t.Fatalf("cancel of an ended task: %v", err)
	}
	if _, err := e.r.Cancel(ctx, "task-0123456789abcdef0"); !api.IsCode(err, api.CodeDataRepositoryTaskNotFound) {
		t.Fatalf("cancel of an unknown task: %v", err)
	}
	// A PENDING task canceled before it runs ends CANCELED without starting.
	e.stop()
	id2 := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
	r, err := New(e.cfg)
	must(t, err)
	_, err = r.Cancel(ctx, id2)
	must(t, err)
	e.start()
	if tk := e.wait(id2, api.TaskCanceled); tk.StartTime != nil {
		t.Fatalf("canceled pending task started: %+v", tk)
	}
}

func TestRestartExecutingTask(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Workers = 2 })
	g := newGate(e.ex, 4)
	e.cfg.Exporter = g
	for i := range 12 {
		e.write("ExtData/f"+string(rune('a'+i))+".txt", "data")
	}
	e.start()
	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
	testutil.Eventually(t, 10*time.Second, "4 exported, 2 waiting", func() bool {
		_, ok, _ := counts(e.task(id))
		return ok == 4 && g.entered.Load() == 2
	})
	// The daemon stops (or dies) mid-task: the task stays EXECUTING.
	e.stop()
	if tk := e.task(id); tk.Lifecycle != api.TaskExecuting {
		t.Fatalf("after a stop: %s", tk.Lifecycle)
	}
	// Simulate failures recorded before the crash: they are tried again.
	must(t, e.cat.AddTaskCounts(ctx, id, catalog.TaskCounts{Total: 1, Failed: 1}))
	// A CANCELING task left by the crash ends CANCELED.
	id2 := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
	_, err := e.cat.UpdateTask(ctx, id2, func(t *api.DataRepositoryTask) error { t.Lifecycle = api.TaskCanceling; return nil })
	must(t, err)

	e.cfg.Exporter = e.ex
	e.start()
	tk := e.wait(id, api.TaskSucceeded)
	tot, ok, failed := counts(tk)
	if ok != 12 || failed != 0 || tot != 12 {
		t.Fatalf("resumed task: total %d ok %d failed %d, want 12 12 0", tot, ok, failed)
	}
	e.wait(id2, api.TaskCanceled)
	for i := range 12 {
		if _, found := e.object(prefix + "f" + string(rune('a'+i)) + ".txt"); !found {
			t.Errorf("f%c.txt not exported", 'a'+i)
		}
	}
}

// exportAll exports the association's files with a task.
func (e *env) exportAll() {
	e.t.Helper()
	e.wait(e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository}), api.TaskSucceeded)
}

func blocks(t *testing.T, e *env, rel string) int64 {
	st, err := e.st.Lstat(rel)
	must(t, err)
	return st.Blocks * 512
}

func TestReleaseTask(t *testing.T) {
	var now atomic.Pointer[time.Time]
	e := newEnv(t, func(c *Config) {
		c.Now = func() time.Time {
			if p := now.Load(); p != nil {
				return *p
			}
			return time.Now()
		}
	})
	big := strings.Repeat("x", 256<<10)
	e.write("ExtData/a.bin", big)
	e.write("ExtData/d/b.bin", big)
	e.write("ExtData/d/c.bin", big)
	e.start()
	e.exportAll()
	e.write("ExtData/new.bin", big) // never exported: never released
	_, err := e.st.UpdateState("ExtData/d/c.bin", func(s *store.State) error {
		f, err := hsm.LocalWrite("ExtData/d/c.bin", s.Flags)
		s.Flags = f
		return err
	})
	must(t, err)

	// Files were used just now: a 2-day age releases nothing.
	rc := func(days int64) *api.ReleaseConfiguration {
		return &api.ReleaseConfiguration{DurationSinceLastAccess: &api.DurationSinceLastAccess{Unit: api.UnitDays, Value: days}}
	}
	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskReleaseDataFromFilesystem, ReleaseConfiguration: rc(2)})
	tk := e.wait(id, api.TaskSucceeded)
	if tot, _, _ := counts(tk); tot != 0 || tk.Status.ReleasedCapacity == nil || *tk.Status.ReleasedCapacity != 0 {
		t.Fatalf("2 days: %+v", tk.Status)
	}

	// Three days later, under ExtData/d only: b.bin goes, c.bin (dirty) stays.
	later := time.Now().Add(72 * time.Hour)
	now.Store(&later)
	want := blocks(t, e, "ExtData/d/b.bin")
	id = e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskReleaseDataFromFilesystem, Paths: []string{"ExtData/d"}, ReleaseConfiguration: rc(2)})
	tk = e.wait(id, api.TaskSucceeded)
	if tot, ok, _ := counts(tk); tot != 1 || ok != 1 || *tk.Status.ReleasedCapacity != want || want == 0 {
		t.Fatalf("release d: %+v (want %d bytes)", tk.Status, want)
	}
	if f := e.flags("ExtData/d/b.bin"); !f.Has(hsm.Released) {
		t.Fatalf("b.bin: %v", f)
	}
	if f := e.flags("ExtData/d/c.bin"); f.Has(hsm.Released) {
		t.Fatalf("dirty c.bin released: %v", f)
	}
	if f := e.flags("ExtData/a.bin"); f.Has(hsm.Released) {
		t.Fatalf("a.bin outside the task's path released: %v", f)
	}
	if n := blocks(t, e, "ExtData/d/b.bin"); n != 0 {
		t.Fatalf("b.bin still holds %d bytes", n)
	}

	// Value 0: every archived file, whatever its age (now back to the present).
	now.Store(nil)
	id = e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskReleaseDataFromFilesystem, ReleaseConfiguration: rc(0)})
	tk = e.wait(id, api.TaskSucceeded)
	if tot, ok, _ := counts(tk); tot != 1 || ok != 1 { // a.bin
		t.Fatalf("release all: %+v", tk.Status)
	}
	if _, err := e.st.GetState("ExtData/new.bin"); err == nil {
		t.Fatal("never-exported file got a state")
	}
	if n := blocks(t, e, "ExtData/new.bin"); n == 0 {
		t.Fatal("never-exported file released")
	}
}

func TestReleaseTaskInUse(t *testing.T) {
	e := newEnv(t)
	e.write("ExtData/busy.bin", "data")
	e.write("ExtData/free.bin", "data")
	e.start()
	e.exportAll()
	// The mount says busy.bin is open.
	e.im.Close()
	e.im = importer.New(importer.Config{Store: e.st, Catalog: e.cat, S3: e.s3, InUse: func(rel string) bool { return rel == "ExtData/busy.bin" }})
	as, err := e.cat.Associations(ctx)
	must(t, err)
	e.im.SetAssociations(dra.NewTable(as, nil))
	e.stop()
	e.cfg.Importer = e.im
	e.cfg.Applier = e.im.NewApplier(importer.ApplyConfig{AllEvents: true})
	e.start()
	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskReleaseDataFromFilesystem,
		Report: &api.CompletionReport{Enabled: true, Path: "s3://" + e.bucket + "/r/"}})
	tk := e.wait(id, api.TaskFailed)
	if tot, ok, failed := counts(tk); tot != 2 || ok != 1 || failed != 1 {
		t.Fatalf("counts %d %d %d", tot, ok, failed)
	}
	body, _ := e.object("r/" + id + "/failures.csv")
	if body != "ExtData/busy.bin,failed,FileInUse\r\n" {
		t.Fatalf("report %q", body)
	}
}

func TestImportTask(t *testing.T) {
	e := newEnv(t)
	e.m.Put(t, e.bucket, prefix+"one.txt", []byte("1"))
	e.m.Put(t, e.bucket, prefix+"dir/two.txt", []byte("22"))
	// A file key whose headers say it is a directory: S3ObjectTypeMismatch.
	_, err := e.s3.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(prefix + "notadir"),
		Body: strings.NewReader("x"), Metadata: map[string]string{"file-permissions": "0040755"}})
	must(t, err)
	e.start()
	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskImportMetadataFromRepository})
	tk := e.wait(id, api.TaskFailed) // a refused key is a failed file
	tot, ok, failed := counts(tk)
	if ok != 3 || failed != 1 || tot != 4 { // one.txt, dir/, dir/two.txt, refused notadir
		t.Fatalf("import counts: total %d ok %d failed %d", tot, ok, failed)
	}
	if f := e.flags("ExtData/dir/two.txt"); f != hsm.Imported() {
		t.Fatalf("two.txt: %v", f)
	}

	// New objects under a sub-prefix: only those are imported.
	e.m.Put(t, e.bucket, prefix+"dir/three.txt", []byte("333"))
	e.m.Put(t, e.bucket, prefix+"other/four.txt", []byte("4444"))
	id = e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskImportMetadataFromRepository, Paths: []string{"s3://" + e.bucket + "/" + prefix + "dir"}})
	tk = e.wait(id, api.TaskSucceeded)
	if tot, ok, _ := counts(tk); tot != 1 || ok != 1 {
		t.Fatalf("sub-prefix import: %+v", tk.Status)
	}
	st, err := e.st.Lstat("ExtData/dir/three.txt")
	must(t, err)
	if st.Size != 3 {
		t.Fatalf("three.txt size %d", st.Size)
	}
	if _, err := e.st.Lstat("ExtData/other/four.txt"); err == nil {
		t.Fatal("four.txt imported by a task for dir/")
	}

	for _, p := range []string{"s3://" + e.bucket + "/elsewhere/", "s3://" + e.bucket + "/" + prefix + "nothing-here/"} {
		id = e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskImportMetadataFromRepository, Paths: []string{p}})
		if tk := e.wait(id, api.TaskFailed); tk.FailureDetails == nil || !strings.Contains(tk.FailureDetails.Message, p) {
			t.Errorf("%s: %+v", p, tk.FailureDetails)
		}
	}
}

// usage is a Config.Usage for tests: the blocks the association's files
// a.bin … d.bin occupy, of a 10 MiB "disk" (the real statfs of the machine's
// disk moves with everything else running on it).
func (e *env) usage() (uint64, uint64, error) {
	var used int64
	for _, n := range []string{"a", "b", "c", "d"} {
		if st, err := e.st.Lstat("ExtData/" + n + ".bin"); err == nil {
			used += st.Blocks * 512
		}
	}
	return uint64(used), 10 << 20, nil
}

// fourFiles writes and exports a.bin … d.bin, 1 MiB each.
func (e *env) fourFiles() {
	mib := strings.Repeat("y", 1<<20)
	for _, n := range []string{"a", "b", "c", "d"} {
		e.write("ExtData/"+n+".bin", mib)
	}
	e.start()
	e.exportAll()
}

func TestAutoReleaseTask(t *testing.T) {
	var e *env
	e = newEnv(t, func(c *Config) {
		c.Watermark = 0.25
		c.Usage = func() (uint64, uint64, error) { return e.usage() }
	})
	e.fourFiles()
	mib := strings.Repeat("y", 1<<20)
	// 4 MiB of 10 used; the watermark is 2.5 MiB: two files must go, the
	// least recently accessed first (c, then a).
	base := time.Now().Add(-time.Hour)
	must(t, e.cat.RecordAccess(ctx,
		catalog.Access{Path: "ExtData/c.bin", At: base},
		catalog.Access{Path: "ExtData/a.bin", At: base.Add(time.Minute)},
		catalog.Access{Path: "ExtData/gone.bin", At: base.Add(2 * time.Minute)},
		catalog.Access{Path: "ExtData/d.bin", At: base.Add(3 * time.Minute)},
		catalog.Access{Path: "ExtData/b.bin", At: base.Add(4 * time.Minute)},
	))
	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskAutoReleaseData})
	tk := e.wait(id, api.TaskSucceeded)
	if tot, ok, _ := counts(tk); tot != 2 || ok != 2 || *tk.Status.ReleasedCapacity < 2<<20 {
		t.Fatalf("auto release: %+v", tk.Status)
	}
	for n, want := range map[string]bool{"a": true, "b": false, "c": true, "d": false} {
		if got := e.flags("ExtData/" + n + ".bin").Has(hsm.Released); got != want {
			t.Errorf("%s released = %v, want %v", n, got, want)
		}
	}

	// No access records left that help: the walk picks the oldest by
	// their own times. Make d older than b; lower the goal to one file.
	must(t, e.cat.ForgetAccess(ctx, "ExtData/a.bin", "ExtData/b.bin", "ExtData/c.bin", "ExtData/d.bin", "ExtData/gone.bin"))
	old := time.Now().Add(-48 * time.Hour)
	must(t, e.st.Utimes("ExtData/d.bin", store.Timespec(old), store.Timespec(old)))
	e.stop()
	e.cfg.Watermark = 0.15 // 1.5 MiB: one more file
	e.start()
	id = e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskAutoReleaseData})
	tk = e.wait(id, api.TaskSucceeded)
	if tot, ok, _ := counts(tk); tot != 1 || ok != 1 {
		t.Fatalf("walk release: %+v", tk.Status)
	}
	// ctime is now for both, so the newest of the times ties: either may go,
	// but exactly one did.
	if e.flags("ExtData/b.bin").Has(hsm.Released) == e.flags("ExtData/d.bin").Has(hsm.Released) {
		t.Fatal("want exactly one of b, d released")
	}

	// Nothing left to release but still over: FAILED, saying why.
	e.stop()
	e.cfg.Watermark = 0.01
	e.write("ExtData/b.bin", mib) // dirty-ish: a never-exported file now
	e.start()
	id = e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskAutoReleaseData})
	tk = e.wait(id, api.TaskFailed)
	if tk.FailureDetails == nil || !strings.Contains(tk.FailureDetails.Message, "watermark") {
		t.Fatalf("FailureDetails %+v", tk.FailureDetails)
	}
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t)
	r, err := New(e.cfg)
	must(t, err)
	_, err = r.Create(ctx, api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, FileSystemId: "fs-0123456789abcdef0", Report: &api.CompletionReport{}})
	if !api.IsCode(err, api.CodeFileSystemNotFound) {
		t.Fatalf("other file system: %v", err)
	}
	req := api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, FileSystemId: e.fsID, Report: &api.CompletionReport{}, ClientRequestToken: "tok-1"}
	a, err := r.Create(ctx, req)
	must(t, err)
	b, err := r.Create(ctx, req)
	must(t, err)
	if a.DataRepositoryTask.TaskId != b.DataRepositoryTask.TaskId {
		t.Fatal("replayed token made a second task")
	}
	req.Paths = []string{"ExtData"}
	if _, err := r.Create(ctx, req); !api.IsCode(err, api.CodeIncompatibleParameterError) {
		t.Fatalf("token with other parameters: %v", err)
	}
	ids, err := e.cat.TaskAssociations(ctx, a.DataRepositoryTask.TaskId)
	must(t, err)
	if len(ids) != 1 {
		t.Fatalf("task associations %v", ids)
	}
}

func TestAutoReleaseTrigger(t *testing.T) {
	var e *env
	var above atomic.Bool
	e = newEnv(t, func(c *Config) {
		c.Watermark = 0.25
		c.AutoReleaseAbove = 0.35
		c.Usage = func() (uint64, uint64, error) {
			if !above.Load() {
				return 0, 10 << 20, nil
			}
			return e.usage()
		}
	})
	e.fourFiles() // 4 MiB of 10: above 35%, once the check sees it
	above.Store(true)
	e.r.Submit()
	autos := func() []api.DataRepositoryTask {
		var out []api.DataRepositoryTask
		resp, err := e.r.Describe(ctx, api.DescribeDataRepositoryTasksRequest{})
		must(t, err)
		for _, tk := range resp.DataRepositoryTasks {
			if tk.Type == api.TaskAutoReleaseData {
				out = append(out, tk)
			}
		}
		return out
	}
	testutil.Eventually(t, 10*time.Second, "an AUTO_RELEASE_DATA task", func() bool { return len(autos()) == 1 })
	tk := e.wait(autos()[0].TaskId, api.TaskSucceeded)
	if _, ok, _ := counts(tk); ok != 2 {
		t.Fatalf("automatic release: %+v", tk.Status)
	}
	// Under the mark now: another pass of the loop creates none.
	e.exportAll()
	if n := len(autos()); n != 1 {
		t.Fatalf("%d automatic release tasks, want 1", n)
	}

	// Above the mark with nothing releasable (new local content): one
	// task FAILS, and the runner does not retry at once.
	mib := strings.Repeat("y", 1<<20)
	for _, n := range []string{"a", "b", "c", "d"} {
		e.write("ExtData/"+n+".bin", mib)
		must(t, e.st.ClearState("ExtData/"+n+".bin"))
	}
	e.r.Submit()
	testutil.Eventually(t, 10*time.Second, "a second AUTO_RELEASE_DATA task", func() bool { return len(autos()) == 2 })
	for _, tk := range autos() {
		if tk.Lifecycle != api.TaskSucceeded {
			e.wait(tk.TaskId, api.TaskFailed)
		}
	}
	e.wait(e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskImportMetadataFromRepository}), api.TaskSucceeded)
	e.wait(e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskImportMetadataFromRepository}), api.TaskSucceeded)
	if n := len(autos()); n != 2 {
		t.Fatalf("%d automatic release tasks after a failed one, want 2", n)
	}
}

// BenchmarkExportTask measures an EXPORT_TO_REPOSITORY task over 500 files
// of 64 KiB never exported (each iteration clears their state first), with
// the real exporter and MinIO.
func BenchmarkExportTask(b *testing.B) {
	e := newEnv(b, func(c *Config) { c.Logger = nil; c.Workers = benchWorkers })
	const n, size = 500, 64 << 10
	body := strings.Repeat("z", size)
	for i := range n {
		e.write("ExtData/d"+string(rune('a'+i%10))+"/f"+strings.Repeat("x", i/10)+".bin", body)
	}
	e.start()
	b.SetBytes(n * size)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for i := range n {
			if err := e.st.ClearState("ExtData/d" + string(rune('a'+i%10)) + "/f" + strings.Repeat("x", i/10) + ".bin"); err != nil && !errors.Is(err, store.ErrNoState) {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
		if tk := e.wait(id, api.TaskSucceeded); tk.Status.SucceededCount < n {
			b.Fatalf("exported %d", tk.Status.SucceededCount)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "files/s")
}

// benchWorkers is Config.Workers in benchmarks (the default).
var benchWorkers = DefaultWorkers

func TestDefaultUsageIsDfUse(t *testing.T) {
	e := newEnv(t)
	r, err := New(e.cfg)
	must(t, err)
	used, total, err := r.cfg.Usage()
	must(t, err)
	sf, err := e.st.Statfs()
	must(t, err)
	// df: Use% = used / (used + avail), root's reserve in neither.
	if total == 0 || used > total || total > sf.Blocks*uint64(sf.Bsize) {
		t.Fatalf("usage %d of %d (file system %d bytes)", used, total, sf.Blocks*uint64(sf.Bsize))
	}
	if _, err := New(Config{Catalog: e.cat, Store: e.st, Exporter: e.ex, Importer: e.im, Applier: e.cfg.Applier, Watermark: 0.8, AutoReleaseAbove: 0.7}); err == nil {
		t.Fatal("AutoReleaseAbove under the watermark accepted")
	}
}

func TestTasksWaitForSettlingAssociations(t *testing.T) {
	e := newEnv(t)
	as, err := e.cat.Associations(ctx)
	must(t, err)
	two := api.DataRepositoryAssociation{
		AssociationId: dra.NewAssociationID(), FileSystemId: e.fsID, FileSystemPath: "/Two",
		DataRepositoryPath: "s3://" + e.bucket + "/two/", Lifecycle: api.LifecycleAvailable,
		CreationTime: api.NewTime(time.Now()), ImportedFileChunkSize: 1024,
	}
	_, _, err = e.cat.CreateAssociation(ctx, two, nil)
	must(t, err)
	setLife := func(l api.DataRepositoryLifecycle, msg string) {
		_, _, _, err := e.cat.UpdateAssociation(ctx, as[0].AssociationId, nil, func(a *api.DataRepositoryAssociation) error {
			a.Lifecycle = l
			a.FailureDetails = nil
			if msg != "" {
				a.FailureDetails = &api.FailureDetails{Message: msg}
			}
			return nil
		})
		must(t, err)
		all, err := e.cat.Associations(ctx)
		must(t, err)
		e.ex.SetAssociations(dra.NewTable(all, nil))
		e.im.SetAssociations(dra.NewTable(all, nil))
	}
	e.write("ExtData/a.txt", "a")
	e.write("Two/b.txt", "b")
	setLife(api.LifecycleCreating, "")
	e.start()

	first := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, Paths: []string{"ExtData"}})
	second := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository, Paths: []string{"Two"}})
	e.wait(second, api.TaskSucceeded) // passes the waiting one
	if l := e.task(first).Lifecycle; l != api.TaskPending {
		t.Fatalf("task on a CREATING association: %s", l)
	}
	setLife(api.LifecycleAvailable, "")
	e.r.Submit()
	e.wait(first, api.TaskSucceeded)

	setLife(api.LifecycleMisconfigured, "bucket gone")
	e.write("ExtData/c.txt", "c")
	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskExportToRepository})
	tk := e.wait(id, api.TaskFailed)
	if tk.FailureDetails == nil || !strings.Contains(tk.FailureDetails.Message, as[0].AssociationId+" (/ExtData) is MISCONFIGURED: bucket gone") {
		t.Fatalf("FailureDetails %+v", tk.FailureDetails)
	}
	// A release needs no repository: it runs.
	e.wait(e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskReleaseDataFromFilesystem}), api.TaskSucceeded)
}
