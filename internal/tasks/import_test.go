package tasks

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/xml"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// importTask runs an IMPORT_METADATA_FROM_REPOSITORY task to lifecycle l.
func (e *env) importTask(l api.DataRepositoryTaskLifecycle, report *api.CompletionReport, paths ...string) api.DataRepositoryTask {
	e.t.Helper()
	return e.wait(e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskImportMetadataFromRepository, Paths: paths, Report: report}), l)
}

func (e *env) del(key string) {
	e.t.Helper()
	_, err := e.s3.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	must(e.t, err)
}

// restore makes rel's data local, as a read through the mount does.
func (e *env) restore(rel string) {
	e.t.Helper()
	must(e.t, e.im.Restore(ctx, rel, nil))
	if f := e.flags(rel); f.Has(hsm.Released) {
		e.t.Fatalf("%s still released after restore: %v", rel, f)
	}
}

// dirty writes body into rel (local data) and marks it dirty, as a write
// through the mount does.
func (e *env) dirty(rel, body string) {
	e.t.Helper()
	e.restore(rel)
	must(e.t, os.WriteFile(filepath.Join(e.st.Root(), rel), []byte(body), 0o644))
	_, err := e.st.UpdateState(rel, func(s *store.State) error {
		f, err := hsm.LocalWrite(rel, s.Flags)
		s.Flags = f
		s.Version++
		return err
	})
	must(e.t, err)
}

func (e *env) read(rel string) string {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.st.Root(), rel))
	must(e.t, err)
	return string(b)
}

func (e *env) exists(rel string) bool {
	e.t.Helper()
	_, err := e.st.Lstat(rel)
	return err == nil
}

// conflictCopies returns the conflict copies of rel in its directory.
func (e *env) conflictCopies(rel string) []string {
	e.t.Helper()
	des, err := os.ReadDir(filepath.Join(e.st.Root(), filepath.Dir(rel)))
	must(e.t, err)
	var out []string
	for _, d := range des {
		if strings.HasPrefix(d.Name(), filepath.Base(rel)+".ferry-conflict-") {
			out = append(out, filepath.Join(filepath.Dir(rel), d.Name()))
		}
	}
	return out
}

// TestImportTaskChanges: an import task imports new, changed and deleted
// objects under the conflict rule of auto-import, although the
// association has no AutoImportPolicy at all (FSx runs import tasks
// whatever the policy).
func TestImportTaskChanges(t *testing.T) {
	e := newEnv(t)
	put := func(k, body string) { e.m.Put(t, e.bucket, prefix+k, []byte(body)) }
	for k, body := range map[string]string{
		"keep.txt": "k", "a.txt": "old-a", "dirty.txt": "old-d", "gone.txt": "g", "dirtygone.txt": "dg",
		"dir/b.txt": "b", "dir/c.txt": "c", "dir2/y.txt": "y",
	} {
		put(k, body)
	}
	e.start()
	tk := e.importTask(api.TaskSucceeded, nil)
	if tot, ok, failed := counts(tk); tot != 10 || ok != 10 || failed != 0 { // 8 files, dir, dir2
		t.Fatalf("first import: total %d ok %d failed %d", tot, ok, failed)
	}
	e.restore("ExtData/a.txt") // read before: its data is local
	e.dirty("ExtData/dirty.txt", "local-d")
	e.dirty("ExtData/dirtygone.txt", "local-dg")
	e.write("ExtData/dir2/mine.txt", "local only") // keeps dir2

	put("a.txt", "new-a-longer")
	put("dirty.txt", "repo-d")
	put("new.txt", "n")
	put("fresh/f.txt", "f") // a directory never seen
	for _, k := range []string{"gone.txt", "dirtygone.txt", "dir/b.txt", "dir/c.txt", "dir2/y.txt"} {
		e.del(prefix + k)
	}
	tk = e.importTask(api.TaskSucceeded, nil)
	// a changed, dirty conflict, gone and dir/b, dir/c, dir2/y deleted,
	// dirtygone kept (conflict), new.txt, fresh/ and fresh/f.txt new.
	if tot, ok, failed := counts(tk); tot != 10 || ok != 10 || failed != 0 {
		t.Fatalf("second import: total %d ok %d failed %d", tot, ok, failed)
	}

	// CHANGED, clean: new metadata, local data dropped, next read new.
	if f := e.flags("ExtData/a.txt"); f != hsm.Imported() {
		t.Errorf("a.txt after change: %v, want released exists archived", f)
	}
	if st, err := e.st.Lstat("ExtData/a.txt"); err != nil || st.Size != int64(len("new-a-longer")) || st.Blocks != 0 {
		t.Errorf("a.txt after change: size %d blocks %d err %v", st.Size, st.Blocks, err)
	}
	e.restore("ExtData/a.txt")
	if got := e.read("ExtData/a.txt"); got != "new-a-longer" {
		t.Errorf("a.txt read %q after the change", got)
	}
	// CHANGED, dirty: both kept.
	cps := e.conflictCopies("ExtData/dirty.txt")
	if len(cps) != 1 {
		t.Fatalf("conflict copies of dirty.txt: %v", cps)
	}
	if got := e.read(cps[0]); got != "local-d" {
		t.Errorf("conflict copy %s holds %q", cps[0], got)
	}
	if f := e.flags(cps[0]); f.Has(hsm.Exists) {
		t.Errorf("conflict copy flags %v: it is local-only", f)
	}
	e.restore("ExtData/dirty.txt")
	if got := e.read("ExtData/dirty.txt"); got != "repo-d" {
		t.Errorf("dirty.txt holds %q, want the repository's version", got)
	}
	// DELETED: clean files go, a dirty one stays; a directory once empty.
	for _, rel := range []string{"ExtData/gone.txt", "ExtData/dir/b.txt", "ExtData/dir", "ExtData/dir2/y.txt"} {
		if e.exists(rel) {
			t.Errorf("%s still there after its object was deleted", rel)
		}
	}
	if got := e.read("ExtData/dirtygone.txt"); got != "local-dg" {
		t.Errorf("dirtygone.txt holds %q", got)
	}
	if got := e.read("ExtData/dir2/mine.txt"); got != "local only" {
		t.Errorf("dir2/mine.txt holds %q", got)
	}
	if got := e.read("ExtData/keep.txt"); len(got) != 1 || e.flags("ExtData/keep.txt") != hsm.Imported() {
		t.Errorf("keep.txt changed: %q %v", got, e.flags("ExtData/keep.txt"))
	}
	// NEW, in a listed directory and in one never seen.
	for _, rel := range []string{"ExtData/new.txt", "ExtData/fresh/f.txt"} {
		if f := e.flags(rel); f != hsm.Imported() {
			t.Errorf("%s: %v", rel, f)
		}
	}

	// Again: nothing left to do, nothing counted.
	tk = e.importTask(api.TaskSucceeded, nil)
	if tot, _, _ := counts(tk); tot != 0 {
		t.Errorf("third import counted %d", tot)
	}
	if cps := e.conflictCopies("ExtData/dirty.txt"); len(cps) != 1 {
		t.Errorf("conflict copies after a third import: %v", cps)
	}
}

// TestImportTaskSubPath: a task for a sub-prefix changes nothing outside
// it.
func TestImportTaskSubPath(t *testing.T) {
	e := newEnv(t)
	for _, k := range []string{"in/a.txt", "in/b.txt", "out/a.txt"} {
		e.m.Put(t, e.bucket, prefix+k, []byte("1"))
	}
	e.start()
	e.importTask(api.TaskSucceeded, nil)
	e.m.Put(t, e.bucket, prefix+"in/a.txt", []byte("22"))
	e.m.Put(t, e.bucket, prefix+"out/a.txt", []byte("22"))
	e.del(prefix + "in/b.txt")
	e.del(prefix + "out/a.txt")
	e.m.Put(t, e.bucket, prefix+"out/keep", []byte("x")) // out/ stays listed in the repository
	tk := e.importTask(api.TaskSucceeded, nil, "s3://"+e.bucket+"/"+prefix+"in/")
	if tot, ok, _ := counts(tk); tot != 2 || ok != 2 {
		t.Fatalf("counts %+v", tk.Status)
	}
	if st, err := e.st.Lstat("ExtData/in/a.txt"); err != nil || st.Size != 2 {
		t.Errorf("in/a.txt: size %d err %v", st.Size, err)
	}
	if e.exists("ExtData/in/b.txt") {
		t.Error("in/b.txt not removed")
	}
	if st, err := e.st.Lstat("ExtData/out/a.txt"); err != nil || st.Size != 1 {
		t.Errorf("out/a.txt changed by a task for in/: size %d err %v", st.Size, err)
	}
}

// TestImportTaskReport: a file the task must change while it is open
// (its data local) fails FileInUse after Config.BusyWait, and the report
// names it; the other files are imported.
func TestImportTaskReport(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.BusyWait = 300 * time.Millisecond })
	e.m.Put(t, e.bucket, prefix+"busy.txt", []byte("old"))
	e.m.Put(t, e.bucket, prefix+"free.txt", []byte("old"))
	e.start()
	e.importTask(api.TaskSucceeded, nil)
	e.restore("ExtData/busy.txt")
	e.restore("ExtData/free.txt")
	// The mount says busy.txt is open.
	e.stop()
	e.im.Close()
	e.im = importer.New(importer.Config{Store: e.st, Catalog: e.cat, S3: e.s3, InUse: func(rel string) bool { return rel == "ExtData/busy.txt" }})
	as, err := e.cat.Associations(ctx)
	must(t, err)
	e.im.SetAssociations(dra.NewTable(as, nil))
	e.cfg.Importer = e.im
	e.cfg.Applier = e.im.NewApplier(importer.ApplyConfig{AllEvents: true})
	e.start()
	e.m.Put(t, e.bucket, prefix+"busy.txt", []byte("new!"))
	e.m.Put(t, e.bucket, prefix+"free.txt", []byte("new!"))
	tk := e.importTask(api.TaskFailed, &api.CompletionReport{Enabled: true, Path: "s3://" + e.bucket + "/r/",
		Format: "REPORT_CSV_20191124", Scope: "FAILED_FILES_ONLY"})
	if tot, ok, failed := counts(tk); tot != 2 || ok != 1 || failed != 1 {
		t.Fatalf("counts: total %d ok %d failed %d", tot, ok, failed)
	}
	if tk.FailureDetails == nil || !strings.Contains(tk.FailureDetails.Message, "1 of 2 files failed") {
		t.Errorf("FailureDetails %+v", tk.FailureDetails)
	}
	body, ok := e.object("r/" + tk.TaskId + "/" + ReportName(api.TaskImportMetadataFromRepository))
	if !ok || body != "ExtData/busy.txt,failed,FileInUse\r\n" {
		t.Fatalf("report %q (found %v)", body, ok)
	}
	if got := e.read("ExtData/busy.txt"); got != "old" {
		t.Errorf("busy.txt changed while open: %q", got)
	}
	if st, _ := e.st.Lstat("ExtData/free.txt"); st.Size != 4 {
		t.Errorf("free.txt size %d after the change", st.Size)
	}
	lines := slices.Collect(strings.Lines(body))
	if len(lines) != 1 {
		t.Errorf("report lines %q", lines)
	}
}

// fakeBucket serves ListObjectsV2 (prefix, delimiter; one page) and HEAD
// over a set of keys, for what MinIO cannot do: hold keys keypath refuses
// ("../x", "a//b", names over 255 bytes), which AWS S3 stores, and fail a
// flat listing (listFails: 500) while it answers the rest.
type fakeBucket struct {
	mu        sync.Mutex
	objs      map[string]string
	listFails bool
}

func (fb *fakeBucket) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	etag := func(body string) string { s := md5.Sum([]byte(body)); return `"` + hex.EncodeToString(s[:]) + `"` }
	if key != "" {
		body, ok := fb.objs[key]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("ETag", etag(body))
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		if r.Method == http.MethodGet {
			w.Write([]byte(body))
		}
		return
	}
	q := r.URL.Query()
	if fb.listFails && q.Get("delimiter") == "" {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	type content struct {
		Key, LastModified, ETag string
		Size                    int
	}
	type commonPrefix struct{ Prefix string }
	var res struct {
		XMLName        xml.Name `xml:"ListBucketResult"`
		Name, Prefix   string
		KeyCount       int
		MaxKeys        int
		IsTruncated    bool
		Contents       []content
		CommonPrefixes []commonPrefix
	}
	res.Name, res.Prefix, res.MaxKeys = bucket, q.Get("prefix"), 1000
	for _, k := range slices.Sorted(maps.Keys(fb.objs)) {
		rest, ok := strings.CutPrefix(k, res.Prefix)
		if !ok {
			continue
		}
		if d := q.Get("delimiter"); d != "" {
			if i := strings.Index(rest, d); i >= 0 {
				p := k[:len(k)-len(rest)+i+1]
				if n := len(res.CommonPrefixes); n == 0 || res.CommonPrefixes[n-1].Prefix != p {
					res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{p})
				}
				continue
			}
		}
		res.Contents = append(res.Contents, content{k, "2006-01-02T15:04:05.000Z", etag(fb.objs[k]), len(fb.objs[k])})
	}
	res.KeyCount = len(res.Contents) + len(res.CommonPrefixes)
	w.Header().Set("Content-Type", "application/xml")
	xml.NewEncoder(w).Encode(&res)
}

// newFakeEnv is newEnv on fb (s3://bucket/pre/ ↔ /ExtData), without
// MinIO.
func newFakeEnv(t *testing.T, fb *fakeBucket) *env {
	srv := httptest.NewServer(fb)
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "fake")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake")
	c, err := s3x.New(ctx, s3x.Config{EndpointURL: srv.URL, Region: "us-east-1", MaxAttempts: 1})
	must(t, err)
	root := t.TempDir()
	st, err := store.Open(root)
	must(t, err)
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.OpenSQLite(ctx, filepath.Join(st.MetaPath(), catalog.DefaultFile), catalog.Options{})
	must(t, err)
	e := &env{t: t, st: st, cat: cat, s3: c, bucket: "bucket", fsID: dra.NewFileSystemID()}
	_, err = cat.InitFileSystem(ctx, catalog.FileSystemInfo{FileSystemId: e.fsID, CreationTime: time.Now(), StorePath: root})
	must(t, err)
	a := api.DataRepositoryAssociation{
		AssociationId: dra.NewAssociationID(), FileSystemId: e.fsID, FileSystemPath: "/ExtData",
		DataRepositoryPath: "s3://bucket/pre/", Lifecycle: api.LifecycleAvailable,
		CreationTime: api.NewTime(time.Now()), ImportedFileChunkSize: 1024,
	}
	_, _, err = cat.CreateAssociation(ctx, a, nil)
	must(t, err)
	must(t, st.MkdirAll("ExtData", 0o755))
	e.ex, err = exporter.New(exporter.Config{Store: st, Catalog: cat, S3: c, Engine: transfer.New(c, transfer.Options{}), Version: "test"})
	must(t, err)
	e.im = importer.New(importer.Config{Store: st, Catalog: cat, S3: c})
	e.im.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{a}, nil))
	t.Cleanup(func() {
		e.stop()
		e.im.Close()
		cat.Close()
	})
	e.cfg = Config{Catalog: cat, Store: st, Exporter: e.ex, Importer: e.im, S3: c,
		Applier: e.im.NewApplier(importer.ApplyConfig{AllEvents: true}), Workers: 2, FlushInterval: 50 * time.Millisecond}
	return e
}

// TestImportTaskRefusedKeysReported: keys that cannot be paths are failed
// objects, each named in the report by its s3:// address with
// S3ObjectPathNotPosixCompliant, and counted once (not again by the
// listing of new objects).
func TestImportTaskRefusedKeysReported(t *testing.T) {
	long := strings.Repeat("L", 300)
	e := newFakeEnv(t, &fakeBucket{objs: map[string]string{
		"pre/ok.txt": "ok", "pre/../x": "escape", "pre/a//b": "empty component", "pre/" + long: "too long"}})
	e.start()
	tk := e.importTask(api.TaskFailed, &api.CompletionReport{Enabled: true, Path: "/reports"})
	// ok.txt and the directory a (of the prefix "pre/a/") are made.
	if tot, ok, failed := counts(tk); tot != 5 || ok != 2 || failed != 3 {
		t.Fatalf("counts: total %d ok %d failed %d", tot, ok, failed)
	}
	b, err := os.ReadFile(filepath.Join(e.st.Root(), "reports", tk.TaskId, "report.csv"))
	must(t, err)
	lines := slices.Sorted(strings.Lines(string(b)))
	want := []string{
		"s3://bucket/pre/../x,failed,S3ObjectPathNotPosixCompliant\r\n",
		"s3://bucket/pre/" + long + ",failed,S3ObjectPathNotPosixCompliant\r\n",
		"s3://bucket/pre/a//b,failed,S3ObjectPathNotPosixCompliant\r\n",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("report:\n%q\nwant\n%q", lines, want)
	}
	if e.flags("ExtData/ok.txt") != hsm.Imported() {
		t.Error("ok.txt not imported")
	}
}

// TestImportTaskListingFails: a listing that fails fails the task and
// takes no file for deleted.
func TestImportTaskListingFails(t *testing.T) {
	fb := &fakeBucket{objs: map[string]string{"pre/ok.txt": "ok", "pre/d/two.txt": "2"}}
	e := newFakeEnv(t, fb)
	e.start()
	e.importTask(api.TaskSucceeded, nil)
	fb.mu.Lock()
	delete(fb.objs, "pre/ok.txt") // a HEAD would find it gone
	fb.listFails = true
	fb.mu.Unlock()
	tk := e.importTask(api.TaskFailed, nil)
	if tk.FailureDetails == nil || !strings.Contains(tk.FailureDetails.Message, "s3://bucket/pre/") {
		t.Errorf("FailureDetails %+v", tk.FailureDetails)
	}
	if !e.exists("ExtData/ok.txt") || !e.exists("ExtData/d/two.txt") {
		t.Error("a file was removed by a task whose listing failed")
	}
}

// TestImportTaskAfterExport: files the file system exported agree with
// their objects: an import task leaves them (their data stays local) and
// counts nothing.
func TestImportTaskAfterExport(t *testing.T) {
	e := newEnv(t)
	e.write("ExtData/mine.txt", "mine")
	e.write("ExtData/sub/big.bin", strings.Repeat("x", 6<<20)) // multipart
	e.start()
	e.exportAll()
	before := e.flags("ExtData/sub/big.bin")
	tk := e.importTask(api.TaskSucceeded, nil)
	if tot, _, _ := counts(tk); tot != 0 {
		t.Errorf("import after export counted %d", tot)
	}
	for _, rel := range []string{"ExtData/mine.txt", "ExtData/sub/big.bin"} {
		if f := e.flags(rel); f.Has(hsm.Released) || !f.Has(hsm.Exists) || f != before {
			t.Errorf("%s after an import task: %v", rel, f)
		}
	}
}
