package exporter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

func TestMain(m *testing.M) { os.Exit(testutil.RunMain(m)) }

var ctx = context.Background()

// env is a store, a SQLite catalog and a bucket, with journal entries
// appended the way the mount appends them.
type env struct {
	t      testing.TB
	m      *testutil.MinIO
	st     *store.Store
	cat    catalog.Catalog
	s3     *s3x.Client
	bucket string
	ex     *Exporter
	// im restores renamed released files for the exporters' moves
	// (Config.Restore), as the daemon's importer does.
	im *importer.Importer
	// progress is the exporters' Config.Progress (onProgress).
	progress atomic.Pointer[func(rel string, n int64)]

	cancel context.CancelFunc
	done   chan error
}

const prefix = "pre/"

var allEvents = []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}

func newEnv(t testing.TB, m *testutil.MinIO, events ...api.EventType) *env {
	t.Helper()
	if m == nil {
		m = testutil.SharedMinIO(t)
	}
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cat, err := catalog.OpenSQLite(ctx, filepath.Join(st.MetaPath(), catalog.DefaultFile), catalog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, m: m, st: st, cat: cat, s3: m.Client(t), bucket: m.Bucket(t)}
	e.im = importer.New(importer.Config{Store: st, Catalog: cat, S3: e.s3})
	t.Cleanup(func() { e.im.Close() })
	t.Cleanup(func() {
		e.stop()
		cat.Close()
	})
	must(t, st.MkdirAll("ExtData", 0o755))
	e.ex = e.newExporter("A")
	e.setPolicy(events...)
	return e
}

func (e *env) newExporter(owner string) *Exporter { return e.exporterOver(owner, e.cat, 4) }

// exporterOver is an exporter of e named owner over cat (e.cat, or one
// that injects a fault) with workers workers.
func (e *env) exporterOver(owner string, cat catalog.Catalog, workers int) *Exporter {
	ex, err := New(Config{
		Store: e.st, Catalog: cat, S3: e.s3,
		Engine: transfer.New(e.s3, transfer.Options{Concurrency: 4, PartSize: transfer.MinPartSize}),
		Owner:  owner, Workers: workers, Lease: 3 * time.Second,
		RetryBase: 50 * time.Millisecond, RetryMax: 500 * time.Millisecond, Poll: 50 * time.Millisecond,
		Version: "test",
		Restore: func(ctx context.Context, rel string) error { return e.im.Restore(ctx, rel, nil) },
		Progress: func(rel string, n int64) {
			if f := e.progress.Load(); f != nil {
				(*f)(rel, n)
			}
		},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return ex
}

func (e *env) setPolicy(events ...api.EventType) {
	t := dra.NewTable([]api.DataRepositoryAssociation{{
		AssociationId: "dra-00000001", FileSystemPath: "/ExtData", DataRepositoryPath: "s3://" + e.bucket + "/" + prefix,
		Lifecycle: api.LifecycleAvailable,
		S3:        &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: events}},
	}}, nil)
	e.ex.SetAssociations(t)
	e.im.SetAssociations(t)
}

func (e *env) start() {
	e.t.Helper()
	if e.cancel != nil {
		e.t.Fatal("exporter already running")
	}
	c, cancel := context.WithCancel(ctx)
	e.cancel, e.done = cancel, make(chan error, 1)
	go func() { e.done <- e.ex.Run(c) }()
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Error(err)
	}
	e.cancel = nil
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// rename renames in the store as the mount does: the origins of files the
// repository has are recorded first, under the store's MoveLock.
func (e *env) rename(from, to string) {
	e.t.Helper()
	mu := e.st.MoveLock()
	mu.Lock()
	defer mu.Unlock()
	must(e.t, e.st.MarkOrigins(context.Background(), from))
	must(e.t, e.st.Rename(from, to, 0))
}

func (e *env) appendJ(path string, kind catalog.Kind, oldPath string, tree bool) {
	e.t.Helper()
	must(e.t, e.cat.Append(ctx, catalog.JournalAppend{Path: path, Kind: kind, OldPath: oldPath, Tree: tree}))
	e.ex.Notify()
}

// write writes a file as the mount does: bump the version before the
// first write, write, close, then append the entry.
func (e *env) write(rel string, data []byte, kind catalog.Kind) {
	e.t.Helper()
	f, err := e.st.OpenFile(rel, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
	must(e.t, err)
	_, err = e.st.BumpVersion(f)
	must(e.t, err)
	_, err = f.Write(data)
	must(e.t, err)
	must(e.t, f.Close())
	e.appendJ(rel, kind, "", false)
}

// drain waits until nothing is pending (parked entries excepted).
func (e *env) drain() {
	e.t.Helper()
	testutil.Eventually(e.t, 30*time.Second, "export journal drained", func() bool {
		n, err := e.cat.PendingCount(ctx, "", 0)
		// and every handle done (its counters recorded after Complete)
		idle := true
		e.ex.busy.Range(func(any, any) bool { idle = false; return false })
		return err == nil && n == 0 && idle
	})
}

type object struct {
	body  []byte
	meta  map[string]string
	ctype string
	etag  string
}

func (e *env) get(key string) (object, bool) {
	e.t.Helper()
	out, err := e.s3.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.bucket), Key: aws.String(key)})
	if err != nil {
		if notFound(err) || strings.Contains(err.Error(), "NoSuchKey") {
			return object{}, false
		}
		e.t.Fatal(err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	must(e.t, err)
	return object{body: b, meta: out.Metadata, ctype: aws.ToString(out.ContentType), etag: aws.ToString(out.ETag)}, true
}

func (e *env) mustGet(key string) object {
	e.t.Helper()
	o, ok := e.get(key)
	if !ok {
		e.t.Fatalf("object %s missing", key)
	}
	return o
}

func (e *env) mustMissing(key string) {
	e.t.Helper()
	if _, ok := e.get(key); ok {
		e.t.Fatalf("object %s exists", key)
	}
}

func (e *env) state(rel string) store.State {
	e.t.Helper()
	st, err := e.st.GetState(rel)
	must(e.t, err)
	return st
}

// e.run(t, name, f) runs f as subtest name of t with e's helpers
// reporting to the subtest, so a failed step does not hide the next ones.
// The subtests of one env run one after the other, never in parallel.
func (e *env) run(t *testing.T, name string, f func(t *testing.T)) bool {
	return t.Run(name, func(sub *testing.T) {
		parent := e.t
		e.t = sub
		defer func() { e.t = parent }()
		f(sub)
	})
}

// TestExportKinds: one file's life through the journal kinds, one step per
// subtest on one exporter: NEW of each file type, a symlink renamed,
// CHANGED content, CHANGED metadata, DELETED (only with the policy's
// event), and what is skipped.
func TestExportKinds(t *testing.T) {
	e := newEnv(t, nil, api.EventNew, api.EventChanged)
	var reads sync.Map // inode → calls
	e.ex.cfg.VersionRead = func(dev, ino uint64) {
		v, _ := reads.LoadOrStore(ino, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
	}
	e.start()
	must(t, e.st.Mkdir("ExtData/d", 0o750))
	e.appendJ("ExtData/d", catalog.KindNew, "", false)
	e.write("ExtData/d/f", []byte("hello"), catalog.KindNew)
	must(t, e.st.Symlink("f", "ExtData/d/l"))
	e.appendJ("ExtData/d/l", catalog.KindNew, "", false)
	e.write("ExtData/top", nil, catalog.KindNew) // empty file
	e.drain()

	e.run(t, "new of each type", func(t *testing.T) {
		d := e.mustGet(prefix + "d/")
		if d.meta[posixmeta.KeyPermissions] != "0040750" || len(d.body) != 0 {
			t.Fatalf("directory object: %+v", d)
		}
		f := e.mustGet(prefix + "d/f")
		var sta unix.Stat_t
		must(t, unix.Lstat(filepath.Join(e.st.Root(), "ExtData/d/f"), &sta))
		want := map[string]string{
			posixmeta.KeyPermissions: "0100644", posixmeta.KeyOwner: "0", posixmeta.KeyGroup: "0",
			posixmeta.KeyMtime: fmt.Sprintf("%dns", sta.Mtim.Nano()), posixmeta.KeyUserAgent: posixmeta.UserAgent("test"),
		}
		for k, v := range want {
			if f.meta[k] != v {
				t.Errorf("file header %s = %q, want %q", k, f.meta[k], v)
			}
		}
		if string(f.body) != "hello" {
			t.Fatalf("file body %q", f.body)
		}
		l := e.mustGet(prefix + "d/l")
		if string(l.body) != "f" || l.meta[posixmeta.KeyPermissions] != "0120777" {
			t.Fatalf("symlink object: %q %v", l.body, l.meta)
		}
		if o := e.mustGet(prefix + "top"); len(o.body) != 0 {
			t.Fatalf("empty file: %q", o.body)
		}
		if v, ok := reads.Load(sta.Ino); !ok || v.(*atomic.Int64).Load() != 1 {
			t.Fatal("the mount was not told before the version of d/f was read")
		}
		st := e.state("ExtData/d/f")
		if st.Flags != hsm.Exists|hsm.Archived || st.ETag != f.etag || st.Size != 5 {
			t.Fatalf("state after export: %v etag %q (object %q) size %d", st.Flags, st.ETag, f.etag, st.Size)
		}
	})
	e.run(t, "symlink renamed", func(t *testing.T) {
		// Its object moves.
		e.rename("ExtData/d/l", "ExtData/d/l2")
		e.appendJ("ExtData/d/l2", catalog.KindRename, "ExtData/d/l", false)
		e.drain()
		e.mustMissing(prefix + "d/l")
		l := e.mustGet(prefix + "d/l2")
		if string(l.body) != "f" || l.meta[posixmeta.KeyPermissions] != "0120777" {
			t.Fatalf("renamed symlink object: %q %v", l.body, l.meta)
		}
	})
	e.run(t, "changed content", func(t *testing.T) {
		// Uploaded again.
		e.write("ExtData/d/f", []byte("hello, again"), catalog.KindChanged)
		if st := e.state("ExtData/d/f"); st.Flags != hsm.Exists|hsm.Archived|hsm.Dirty {
			t.Fatalf("written file: %v", st.Flags)
		}
		e.drain()
		if f := e.mustGet(prefix + "d/f"); string(f.body) != "hello, again" {
			t.Fatalf("changed body %q", f.body)
		}
		if st := e.state("ExtData/d/f"); st.Flags != hsm.Exists|hsm.Archived {
			t.Fatalf("re-exported file: %v", st.Flags)
		}
	})
	e.run(t, "changed metadata only", func(t *testing.T) {
		// A chmod: no bytes move.
		before := e.ex.Stats().BytesExported
		must(t, e.st.Chmod("ExtData/d/f", 0o600))
		e.appendJ("ExtData/d/f", catalog.KindChanged, "", false)
		e.drain()
		f := e.mustGet(prefix + "d/f")
		if f.meta[posixmeta.KeyPermissions] != "0100600" || string(f.body) != "hello, again" {
			t.Fatalf("after chmod: %v %q", f.meta, f.body)
		}
		if after := e.ex.Stats().BytesExported; after != before {
			t.Fatalf("a metadata change uploaded %d bytes", after-before)
		}
		if st := e.state("ExtData/d/f"); st.ETag != f.etag {
			t.Fatalf("state ETag %q, object %q", st.ETag, f.etag)
		}
	})
	e.run(t, "deleted", func(t *testing.T) {
		// Invariant 5: without DELETED, an unlink keeps the object.
		must(t, e.st.Unlink("ExtData/d/f"))
		e.appendJ("ExtData/d/f", catalog.KindDeleted, "", false)
		e.drain()
		e.mustGet(prefix + "d/f")
		// With DELETED it goes, directories too.
		e.setPolicy(allEvents...)
		e.appendJ("ExtData/d/f", catalog.KindDeleted, "", false)
		must(t, e.st.Unlink("ExtData/d/l2"))
		e.appendJ("ExtData/d/l2", catalog.KindDeleted, "", false)
		must(t, e.st.Rmdir("ExtData/d"))
		e.appendJ("ExtData/d", catalog.KindDeleted, "", false)
		e.drain()
		e.mustMissing(prefix + "d/f")
		e.mustMissing(prefix + "d/l2")
		e.mustMissing(prefix + "d/")
	})
	e.run(t, "skipped", func(t *testing.T) {
		// Outside every association, or an event not in the policy.
		must(t, e.st.MkdirAll("Other", 0o755))
		skipped := e.ex.Stats().Skipped
		e.write("Other/x", []byte("x"), catalog.KindNew)
		e.setPolicy(api.EventChanged)
		e.write("ExtData/new", []byte("x"), catalog.KindNew)
		e.drain()
		e.mustMissing(prefix + "new")
		if s := e.ex.Stats(); s.Skipped != skipped+2 {
			t.Fatalf("skipped %d, want %d", s.Skipped, skipped+2)
		}
	})
	if s := e.ex.Stats(); s.ObjectsExported < 6 || s.ObjectsDeleted < 3 || s.Lag.Count < 6 || s.Lag.Quantile(0.99) <= 0 {
		t.Fatalf("stats: %+v", s)
	}
}

func TestForeignMetadataKept(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	e.start()
	put := func(key, body string) string {
		out, err := e.s3.S3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(e.bucket), Key: aws.String(key), Body: strings.NewReader(body),
			ContentType: aws.String("text/csv"),
			Metadata:    map[string]string{"project": "alpha", posixmeta.KeyPermissions: "0100644"},
		})
		must(t, err)
		return aws.ToString(out.ETag)
	}
	// A file imported and read in full, then written.
	etag := put(prefix+"data.csv", "a,b\n")
	must(t, os.WriteFile(filepath.Join(e.st.Root(), "ExtData/data.csv"), []byte("a,b\n"), 0o644))
	must(t, e.st.SetState("ExtData/data.csv", store.State{Flags: hsm.Exists | hsm.Archived, ETag: etag, Size: 4}))
	e.write("ExtData/data.csv", []byte("a,b\n1,2\n"), catalog.KindChanged)
	// A released stub whose mode changes: a metadata-only copy.
	etag2 := put(prefix+"stub.csv", "x,y\n")
	must(t, e.st.CreateStub("ExtData/stub.csv", store.Stub{Size: 4, Mode: 0o644, UID: 0, GID: 0, ETag: etag2, Flags: hsm.Imported(), ChunkSize: 1 << 20}))
	must(t, e.st.Chmod("ExtData/stub.csv", 0o600))
	e.appendJ("ExtData/stub.csv", catalog.KindChanged, "", false)
	e.drain()

	for _, tc := range []struct{ key, body, perm string }{{"data.csv", "a,b\n1,2\n", "0100644"}, {"stub.csv", "x,y\n", "0100600"}} {
		o := e.mustGet(prefix + tc.key)
		if string(o.body) != tc.body || o.ctype != "text/csv" || o.meta["project"] != "alpha" || o.meta[posixmeta.KeyPermissions] != tc.perm || o.meta[posixmeta.KeyUserAgent] != "ferry/test" {
			t.Fatalf("%s: body %q type %q meta %v", tc.key, o.body, o.ctype, o.meta)
		}
	}
	st := e.state("ExtData/stub.csv")
	if !st.Flags.Has(hsm.Released) || st.ETag != e.mustGet(prefix+"stub.csv").etag {
		t.Fatalf("stub state after metadata export: %v etag %q", st.Flags, st.ETag)
	}
}

// Invariant 2: a file changed during its upload is not marked clean by
// that upload, and its new content is exported after.
func TestChangedDuringUpload(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	big := bytes.Repeat([]byte("0123456789abcdef"), (12<<20)/16) // 12 MiB: multipart
	e.write("ExtData/big", big, catalog.KindNew)
	e.write("ExtData/small", []byte("v1"), catalog.KindNew)
	final := bytes.Repeat([]byte("fedcba9876543210"), (12<<20)/16)
	var once, onceSmall sync.Once
	e.onProgress(func(rel string, n int64) {
		switch rel {
		case "ExtData/big":
			once.Do(func() {
				// The mount writes while the upload runs, then closes.
				f, err := e.st.OpenFile(rel, unix.O_WRONLY, 0)
				must(t, err)
				_, err = e.st.BumpVersion(f)
				must(t, err)
				_, err = f.WriteAt(final, 0)
				must(t, err)
				must(t, f.Close())
				e.appendJ(rel, catalog.KindChanged, "", false)
			})
		case "ExtData/small":
			// Only the version moves (a write not yet in the file).
			onceSmall.Do(func() {
				f, err := e.st.OpenFile(rel, unix.O_WRONLY, 0)
				must(t, err)
				_, err = e.st.BumpVersion(f)
				must(t, err)
				must(t, f.Close())
			})
		}
	})
	t.Cleanup(func() {
		e.stop() // before the hook goes: the exporter's uploads read it
		e.onProgress(nil)
	})
	e.start()
	e.drain()
	if o := e.mustGet(prefix + "big"); !bytes.Equal(o.body, final) {
		t.Fatalf("big: object is not the final content (%d bytes, starts %q)", len(o.body), o.body[:16])
	}
	if st := e.state("ExtData/big"); st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("big after the second export: %v", st.Flags)
	}
	if st := e.state("ExtData/small"); st.Flags != hsm.Exists|hsm.Archived|hsm.Dirty {
		t.Fatalf("small: the version moved during its upload, yet it is %v", st.Flags)
	}
	// Its close appends again: then it is clean.
	e.appendJ("ExtData/small", catalog.KindChanged, "", false)
	e.drain()
	if st := e.state("ExtData/small"); st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("small after its close was exported: %v", st.Flags)
	}
}

// Invariant 1 across a repository outage: nothing lost, backlog visible.
func TestOutage(t *testing.T) {
	m := testutil.StartMinIO(t)
	e := newEnv(t, m, allEvents...)
	const n = 20
	m.Stop()
	e.start()
	for i := range n {
		e.write("ExtData/f"+string(rune('a'+i)), []byte{byte(i)}, catalog.KindNew)
	}
	testutil.Eventually(t, 30*time.Second, "failed attempts during the outage", func() bool {
		return e.ex.Stats().Failures[s3x.CodeUnreachable] >= n
	})
	if d, _ := e.cat.Depth(ctx); d != n {
		t.Fatalf("depth %d during the outage, want %d", d, n)
	}
	if age, _ := e.cat.OldestAge(ctx); age <= 0 {
		t.Fatalf("oldest age %v during the outage", age)
	}
	m.Restart(t)
	e.drain()
	for i := range n {
		if o := e.mustGet(prefix + "f" + string(rune('a'+i))); !bytes.Equal(o.body, []byte{byte(i)}) {
			t.Fatalf("f%c: %q", 'a'+i, o.body)
		}
	}
}

func TestRenameBeforeExport(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	// Exporter not running yet: the file is renamed twice before export.
	e.write("ExtData/a", []byte("A"), catalog.KindNew)
	e.rename("ExtData/a", "ExtData/b")
	e.appendJ("ExtData/b", catalog.KindRename, "ExtData/a", false)
	e.rename("ExtData/b", "ExtData/c")
	e.appendJ("ExtData/c", catalog.KindRename, "ExtData/b", false)
	e.start()
	e.drain()
	if o := e.mustGet(prefix + "c"); string(o.body) != "A" {
		t.Fatalf("c: %q", o.body)
	}
	e.mustMissing(prefix + "a")
	e.mustMissing(prefix + "b")
	if s := e.ex.Stats(); s.ObjectsExported != 1 {
		t.Fatalf("exported %d objects, want 1 (once, under the final name)", s.ObjectsExported)
	}
	// An exported file renamed: the object moves (copied, not uploaded).
	bytesBefore := e.ex.Stats().BytesExported
	e.rename("ExtData/c", "ExtData/d")
	e.appendJ("ExtData/d", catalog.KindRename, "ExtData/c", false)
	e.drain()
	if o := e.mustGet(prefix + "d"); string(o.body) != "A" {
		t.Fatalf("d: %q", o.body)
	}
	e.mustMissing(prefix + "c")
	if b := e.ex.Stats().BytesExported; b != bytesBefore {
		t.Fatalf("a rename of a clean file uploaded %d bytes", b-bytesBefore)
	}
	// A dirty exported file renamed: uploaded under the new name.
	e.stop()
	e.write("ExtData/d", []byte("A2"), catalog.KindChanged)
	e.rename("ExtData/d", "ExtData/e")
	e.appendJ("ExtData/e", catalog.KindRename, "ExtData/d", false)
	e.start()
	e.drain()
	if o := e.mustGet(prefix + "e"); string(o.body) != "A2" {
		t.Fatalf("e: %q", o.body)
	}
	e.mustMissing(prefix + "d")
}

func TestDirectoryRename(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	e.start()
	must(t, e.st.MkdirAll("ExtData/d/sub", 0o755))
	e.appendJ("ExtData/d", catalog.KindNew, "", false)
	e.appendJ("ExtData/d/sub", catalog.KindNew, "", false)
	e.write("ExtData/d/x", []byte("x1"), catalog.KindNew)
	e.write("ExtData/d/sub/y", []byte("y"), catalog.KindNew)
	e.write("ExtData/d/z", []byte("z"), catalog.KindNew)
	e.drain()
	e.stop()
	// Before the next export: x changes, the directory moves, a file is
	// created in it, and z is deleted (no DELETED in the policy: kept).
	e.setPolicy(api.EventNew, api.EventChanged)
	e.write("ExtData/d/x", []byte("x2"), catalog.KindChanged)
	e.rename("ExtData/d", "ExtData/e")
	e.appendJ("ExtData/e", catalog.KindRename, "ExtData/d", true)
	e.write("ExtData/e/n", []byte("n"), catalog.KindNew)
	must(t, e.st.Unlink("ExtData/e/z"))
	e.appendJ("ExtData/e/z", catalog.KindDeleted, "", false)
	e.start()
	e.drain()
	for key, body := range map[string]string{"e/": "", "e/x": "x2", "e/sub/": "", "e/sub/y": "y", "e/n": "n"} {
		if o := e.mustGet(prefix + key); string(o.body) != body {
			t.Fatalf("%s: %q, want %q", key, o.body, body)
		}
	}
	for _, key := range []string{"d/", "d/x", "d/sub/", "d/sub/y"} {
		e.mustMissing(prefix + key)
	}
	e.mustGet(prefix + "d/z") // its file was deleted, not moved: the object stays
	if st := e.state("ExtData/e/sub/y"); st.ETag != e.mustGet(prefix+"e/sub/y").etag {
		t.Fatalf("moved file's state ETag %q", st.ETag)
	}
}

// TestDirectoryRenameAfterNewerExport: a file rewritten under its
// directory's new name and exported before the directory's RENAME ran
// keeps its newer object — the move does not copy the older object of the
// old name over it (found by the crash test's directory renames).
func TestDirectoryRenameAfterNewerExport(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	e.start()
	must(t, e.st.MkdirAll("ExtData/d", 0o755))
	e.write("ExtData/d/f", []byte("v1"), catalog.KindNew)
	e.drain()
	e.rename("ExtData/d", "ExtData/e")
	e.write("ExtData/e/f", []byte("v2"), catalog.KindChanged)
	e.drain()
	if o := e.mustGet(prefix + "e/f"); string(o.body) != "v2" {
		t.Fatalf("e/f: %q before the RENAME ran, want v2", o.body)
	}
	e.appendJ("ExtData/e", catalog.KindRename, "ExtData/d", true)
	e.drain()
	if o := e.mustGet(prefix + "e/f"); string(o.body) != "v2" {
		t.Fatalf("e/f: %q after the directory's RENAME, want v2 (the older object was copied over it)", o.body)
	}
	if st := e.state("ExtData/e/f"); st.Flags.Has(hsm.Dirty) {
		t.Fatalf("e/f state %v after export", st.Flags)
	}
}

// A claim whose exporter died is taken over once its lease ends; an
// exporter stopped mid-upload leaves nothing half done.
func TestLeaseExpiry(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	e.write("ExtData/f", []byte("f"), catalog.KindNew)
	claimed, err := e.cat.Claim(ctx, "dead", 1, 2*time.Second)
	must(t, err)
	if len(claimed) != 1 {
		t.Fatal(claimed)
	}
	t0 := time.Now()
	e.start()
	e.drain()
	if d := time.Since(t0); d < 1500*time.Millisecond {
		t.Fatalf("exported %v after a dead exporter claimed it for 2s", d)
	}
	e.mustGet(prefix + "f")
	e.stop()

	// Stopped mid-upload.
	big := bytes.Repeat([]byte{7}, 12<<20)
	e.write("ExtData/big", big, catalog.KindNew)
	started := make(chan struct{})
	var once sync.Once
	var block atomic.Bool
	block.Store(true)
	e.onProgress(func(rel string, n int64) {
		if rel == "ExtData/big" && block.Load() {
			once.Do(func() { close(started) })
			time.Sleep(10 * time.Millisecond) // slow: the stop comes mid-upload
		}
	})
	t.Cleanup(func() {
		e.stop() // before the hook goes: the exporter's uploads read it
		e.onProgress(nil)
	})
	e.start()
	<-started
	e.stop()
	e.mustMissing(prefix + "big")
	if n, _ := e.cat.PendingCount(ctx, "ExtData/big", 0); n != 1 {
		t.Fatalf("entry of the interrupted upload: %d pending", n)
	}
	block.Store(false)
	e.ex = e.newExporter("B")
	e.setPolicy(allEvents...)
	e.start()
	e.drain()
	if o := e.mustGet(prefix + "big"); !bytes.Equal(o.body, big) {
		t.Fatal("big after takeover")
	}
}

func TestPermanentFailures(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	e.start()
	// A key over 1024 bytes.
	long := "ExtData"
	for i := range 5 {
		long += "/" + strings.Repeat(string(rune('a'+i)), 250)
	}
	must(t, e.st.MkdirAll(long, 0o755))
	e.write(long+"/f", []byte("x"), catalog.KindNew)
	// A file over 5 TiB (sparse).
	f, err := e.st.OpenFile("ExtData/huge", unix.O_WRONLY|unix.O_CREAT, 0o644)
	must(t, err)
	must(t, f.Truncate(MaxObjectSize+1))
	f.Close()
	e.appendJ("ExtData/huge", catalog.KindNew, "", false)
	e.write("ExtData/ok", []byte("ok"), catalog.KindNew)
	// hsm wait does not hang on them: it reports them.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err := e.ex.Wait(wctx, "ExtData")
	must(t, err)
	e.mustGet(prefix + "ok")
	codes := map[string]string{}
	for _, p := range r.Parked {
		codes[p.Path] = strings.SplitN(p.LastError, ":", 2)[0]
	}
	if codes[long+"/f"] != "PathSizeTooLong" || codes["ExtData/huge"] != CodeFileSizeTooLarge || len(codes) != 2 {
		t.Fatalf("parked: %v", codes)
	}
	s := e.ex.Stats()
	if s.Failures["PathSizeTooLong"] != 1 || s.Failures[CodeFileSizeTooLarge] != 1 || s.Parked != 2 {
		t.Fatalf("stats: %+v", s)
	}
	// Written again (truncated to fit): tried again, exported.
	must(t, e.st.Truncate("ExtData/huge", 3))
	e.appendJ("ExtData/huge", catalog.KindChanged, "", false)
	e.drain()
	if o := e.mustGet(prefix + "huge"); len(o.body) != 3 {
		t.Fatalf("huge after truncation: %d bytes", len(o.body))
	}
}

// An association that does not export now (MISCONFIGURED) holds its
// entries back; they go out once it is AVAILABLE again.
func TestAssociationNotReady(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	set := func(life api.DataRepositoryLifecycle, events ...api.EventType) {
		e.ex.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{
			{AssociationId: "dra-00000001", FileSystemPath: "/ExtData", DataRepositoryPath: "s3://" + e.bucket + "/" + prefix, Lifecycle: life,
				S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: events}}},
			{AssociationId: "dra-00000002", FileSystemPath: "/Other", DataRepositoryPath: "s3://" + e.bucket + "/other", Lifecycle: api.LifecycleAvailable,
				S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: []api.EventType{api.EventNew}}}},
		}, nil))
	}
	set(api.LifecycleMisconfigured, allEvents...)
	e.start()
	e.write("ExtData/f", []byte("f"), catalog.KindNew)
	testutil.Eventually(t, 10*time.Second, "a failed attempt while misconfigured", func() bool {
		p, _ := e.cat.Pending(ctx, "ExtData/f", "", 1)
		return len(p) == 1 && p[0].Attempts > 0
	})
	e.mustMissing(prefix + "f")
	set(api.LifecycleAvailable, allEvents...)
	e.drain()
	e.mustGet(prefix + "f")

	// A rename into another association: a NEW there; the old object
	// goes only because this association's policy has DELETED.
	must(t, e.st.MkdirAll("Other", 0o755))
	e.rename("ExtData/f", "Other/f")
	e.appendJ("Other/f", catalog.KindRename, "ExtData/f", false)
	e.drain()
	e.mustGet("other/f")
	e.mustMissing(prefix + "f")
	// And back out, into an association without DELETED: the object stays.
	e.rename("Other/f", "ExtData/g")
	e.appendJ("ExtData/g", catalog.KindRename, "Other/f", false)
	e.drain()
	e.mustGet(prefix + "g")
	e.mustGet("other/f")

	// Export (tasks, hsm archive) ignores the policy.
	set(api.LifecycleAvailable)
	e.write("ExtData/t", []byte("t"), catalog.KindNew)
	e.drain()
	e.mustMissing(prefix + "t")
	ok, err := e.ex.Export(ctx, "ExtData/t")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	e.mustGet(prefix + "t")
	if st := e.state("ExtData/t"); st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("after Export: %v", st.Flags)
	}
	if ok, err := e.ex.Export(ctx, "Nowhere/x"); err == nil || ok {
		t.Fatal("export outside every association", ok, err)
	}
}

// An exporter whose claim was taken over stops its upload: only the
// claim's holder makes an object visible.
func TestLeaseLost(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	big := bytes.Repeat([]byte{9}, 12<<20)
	e.write("ExtData/big", big, catalog.KindNew)
	started := make(chan struct{})
	var once sync.Once
	var slow atomic.Bool
	slow.Store(true)
	e.onProgress(func(rel string, n int64) {
		once.Do(func() { close(started) })
		if slow.Load() {
			time.Sleep(10 * time.Millisecond)
		}
	})
	t.Cleanup(func() {
		e.stop() // before the hook goes: the exporter's uploads read it
		e.onProgress(nil)
	})
	e.start()
	<-started
	// Another exporter takes the entry over (as after an expired lease).
	// A, still polling, may claim it back (and defer it: its upload still
	// runs) between the release and the thief's claim: tried until the
	// thief holds it.
	testutil.Eventually(t, 20*time.Second, "the thief holds the claim", func() bool {
		_, err := e.cat.ReleaseClaims(ctx, "A")
		must(t, err)
		stolen, err := e.cat.Claim(ctx, "thief", 1, time.Hour)
		must(t, err)
		return len(stolen) == 1
	})
	testutil.Eventually(t, 20*time.Second, "the upload stopped after its lease was lost", func() bool {
		return e.ex.Stats().InFlight == 0
	})
	slow.Store(false)
	e.mustMissing(prefix + "big")
	p, _ := e.cat.Pending(ctx, "ExtData/big", "", 1)
	if len(p) != 1 || p[0].Owner != "thief" || p[0].Attempts != 0 {
		t.Fatalf("entry after the takeover: %+v", p)
	}
}

// Wait is a barrier for what was closed before it, and says what is still
// pending when it gives up.
func TestWait(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	e.write("ExtData/w1", []byte("1"), catalog.KindNew)
	e.write("ExtData/w2", []byte("2"), catalog.KindNew)
	e.write("ExtData/z", []byte("z"), catalog.KindNew)
	// No exporter runs: the wait times out and lists what is pending.
	wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	r, err := e.ex.Wait(wctx, "ExtData/w1")
	cancel()
	if err == nil || len(r.Pending) != 1 || r.Pending[0].Path != "ExtData/w1" {
		t.Fatalf("wait without an exporter: %v %+v", err, r)
	}
	e.start()
	wctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	r, err = e.ex.Wait(wctx, "")
	must(t, err)
	if len(r.Parked) != 0 || len(r.Pending) != 0 || r.Barrier < 3 {
		t.Fatalf("wait: %+v", r)
	}
	for _, k := range []string{"w1", "w2", "z"} {
		e.mustGet(prefix + k)
	}
}

// An association that exports again resumes its waiting entries at once,
// not after their backoff: with a one-hour backoff the export must still
// land within seconds of MISCONFIGURED → AVAILABLE.
func TestResumeAtOnce(t *testing.T) {
	e := newEnv(t, nil, allEvents...)
	ex, err := New(Config{
		Store: e.st, Catalog: e.cat, S3: e.s3,
		Engine: transfer.New(e.s3, transfer.Options{Concurrency: 4, PartSize: transfer.MinPartSize}),
		Owner:  "slow", Workers: 2, Lease: 3 * time.Second,
		RetryBase: time.Hour, RetryMax: time.Hour, Poll: 50 * time.Millisecond,
		Version: "test",
	})
	must(t, err)
	e.ex = ex
	a := api.DataRepositoryAssociation{AssociationId: "dra-00000001", FileSystemPath: "/ExtData",
		DataRepositoryPath: "s3://" + e.bucket + "/" + prefix, Lifecycle: api.LifecycleMisconfigured,
		S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{Events: allEvents}}}
	ex.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{a}, nil))
	e.start()
	e.write("ExtData/f", []byte("f"), catalog.KindNew)
	testutil.Eventually(t, 10*time.Second, "a failed attempt while misconfigured", func() bool {
		p, _ := e.cat.Pending(ctx, "ExtData/f", "", 1)
		return len(p) == 1 && p[0].Attempts > 0 && p[0].Owner == ""
	})
	if got := ex.Stats().Failures[CodeNotReady]; got == 0 {
		t.Fatalf("failures by code %v: the wait is not counted as %s", ex.Stats().Failures, CodeNotReady)
	}
	a.Lifecycle = api.LifecycleAvailable
	ex.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{a}, nil))
	testutil.Eventually(t, 10*time.Second, "export right after the association is AVAILABLE again", func() bool {
		n, _ := e.cat.PendingCount(ctx, "", 0)
		return n == 0
	})
	e.mustGet(prefix + "f")
}

// onProgress makes f see the upload progress of every exporter of e
// (Config.Progress); nil removes it.
func (e *env) onProgress(f func(rel string, n int64)) {
	if f == nil {
		e.progress.Store(nil)
		return
	}
	e.progress.Store(&f)
}
