package fusefs

// Tests of the write path: content versions and the export journal, read
// back from a real SQLite catalog; with a real exporter over MinIO where
// the test is about what reaches the repository.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
	"github.com/ferry-hpc/ferry/internal/transfer"
	"github.com/ferry-hpc/ferry/internal/writepath"
)

type jenv struct {
	*env
	cat     catalog.Catalog
	jnl     *writepath.CatalogJournal
	notify  atomic.Int64
	s3      *s3x.Client
	bucket  string
	ex      *exporter.Exporter
	assocs  []api.DataRepositoryAssociation
	stopExp func()
}

// mountJournal mounts a store whose "ExtData" is an association exporting
// NEW, CHANGED and DELETED to s3://<bucket>/data/, with the journal in a
// real catalog. withExporter adds a real exporter on MinIO, wired as the
// daemon wires it (Notify, VersionRead).
func mountJournal(t testing.TB, opt Options, withExporter bool) *jenv {
	t.Helper()
	return mountJournalAt(t, t.TempDir(), opt, withExporter)
}

// mountJournalAt is mountJournal with the store in directory dir.
func mountJournalAt(t testing.TB, dir string, opt Options, withExporter bool) *jenv {
	t.Helper()
	return mountJournalWith(t, dir, opt, withExporter, nil)
}

// mountJournalWith is mountJournalAt with the mount's journal wrapped by
// wrap (nil: as it is), for tests that delay or watch appends.
func mountJournalWith(t testing.TB, dir string, opt Options, withExporter bool, wrap func(writepath.Journal) writepath.Journal) *jenv {
	t.Helper()
	testutil.NeedFUSE(t)
	je := &jenv{env: &env{dir: dir, mnt: t.TempDir()}, bucket: "nobucket"}
	e := je.env
	var err error
	if e.st, err = store.Open(e.dir); err != nil {
		t.Fatal(err)
	}
	if je.cat, err = catalog.OpenSQLite(context.Background(), filepath.Join(e.st.MetaPath(), catalog.DefaultFile), catalog.Options{}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.MkdirAll("ExtData", 0o755); err != nil {
		t.Fatal(err)
	}
	if withExporter {
		mc := testutil.SharedMinIO(t)
		je.s3, je.bucket = mc.Client(t), mc.Bucket(t)
	}
	je.assocs = []api.DataRepositoryAssociation{{
		AssociationId: "dra-0123456789abcdef0", FileSystemPath: "/ExtData",
		DataRepositoryPath: "s3://" + je.bucket + "/data/", Lifecycle: api.LifecycleAvailable,
		S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{
			Events: []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}}},
	}}
	var fsys atomic.Pointer[FS]
	notify := func() { je.notify.Add(1) }
	if withExporter {
		je.ex, err = exporter.New(exporter.Config{
			Store: e.st, Catalog: je.cat, S3: je.s3,
			Engine: transfer.New(je.s3, transfer.Options{Concurrency: 4, PartSize: transfer.MinPartSize}),
			Owner:  "test", Workers: 4, Lease: 5 * time.Second,
			RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, Poll: 50 * time.Millisecond,
			Version: "test",
			VersionRead: func(dev, ino uint64) {
				if f := fsys.Load(); f != nil {
					f.VersionRead(dev, ino)
				}
			},
			UnseenWriter: func(dev, ino uint64) bool {
				f := fsys.Load()
				return f != nil && f.UnseenWriter(dev, ino)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		je.ex.SetAssociations(dra.NewTable(je.assocs, nil))
		notify = func() { je.notify.Add(1); je.ex.Notify() }
	}
	je.jnl = writepath.NewCatalogJournal(je.cat, notify)
	je.jnl.SetAssociations(dra.NewTable(je.assocs, nil))
	opt.Journal = je.jnl
	if wrap != nil {
		opt.Journal = wrap(je.jnl)
	}
	testutil.DetachOnCleanup(t, e.mnt)
	if e.srv, e.fsys, err = Mount(e.mnt, e.st, opt); err != nil {
		t.Fatal(err)
	}
	fsys.Store(e.fsys)
	if withExporter {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = je.ex.Run(ctx)
		}()
		je.stopExp = func() { cancel(); <-done }
	}
	t.Cleanup(func() {
		if err := e.srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		if je.stopExp != nil {
			je.stopExp()
		}
		je.cat.Close()
		e.st.Close()
	})
	return je
}

// pending returns the journal's pending entries under prefix (catalog form).
func (je *jenv) pending(t testing.TB, prefix string) []catalog.JournalEntry {
	t.Helper()
	es, err := je.cat.Pending(context.Background(), prefix, "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// drainJournal completes every pending entry (no exporter), so the next
// operation's entries stand alone.
func (je *jenv) drainJournal(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	for {
		es, err := je.cat.Claim(ctx, "drain", 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return
		}
		for _, e := range es {
			if _, err := je.cat.Complete(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
	}
}

type entry struct {
	path, kind, old string
}

func entriesOf(es []catalog.JournalEntry) []entry {
	out := make([]entry, 0, len(es))
	for _, e := range es {
		out = append(out, entry{e.Path, string(e.Kind), e.OldPath})
	}
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestJournalEntries checks the entry every operation through the mount
// appends (read back from the catalog), and that nothing is journaled
// outside the association or for a file only read.
func TestJournalEntries(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	m := func(p string) string { return je.m(filepath.Join("ExtData", p)) }
	must(t, os.WriteFile(m("keep"), []byte("k"), 0o644))
	must(t, os.Mkdir(m("dir"), 0o755))
	must(t, os.WriteFile(m("dir/in"), []byte("i"), 0o644))
	must(t, os.Mkdir(m("emptydir"), 0o755))
	je.drainJournal(t)

	steps := []struct {
		name string
		op   func() error
		want []entry
	}{
		{"create+write+close", func() error { return os.WriteFile(m("new"), []byte("x"), 0o644) },
			[]entry{{"ExtData/new", "NEW", ""}}},
		{"create empty", func() error { f, err := os.Create(m("empty")); must(t, err); return f.Close() },
			[]entry{{"ExtData/empty", "NEW", ""}}},
		{"read only", func() error { _, err := os.ReadFile(m("keep")); return err }, nil},
		{"open for write without writing", func() error {
			f, err := os.OpenFile(m("keep"), os.O_WRONLY, 0)
			must(t, err)
			return f.Close()
		}, nil},
		{"append", func() error {
			f, err := os.OpenFile(m("keep"), os.O_WRONLY|os.O_APPEND, 0)
			must(t, err)
			_, err = f.WriteString("more")
			must(t, err)
			return f.Close()
		}, []entry{{"ExtData/keep", "NEW", ""}}}, // never exported: still NEW
		{"O_TRUNC open", func() error {
			f, err := os.OpenFile(m("keep"), os.O_WRONLY|os.O_TRUNC, 0)
			must(t, err)
			return f.Close()
		}, []entry{{"ExtData/keep", "NEW", ""}}},
		{"mkdir", func() error { return os.Mkdir(m("d2"), 0o700) }, []entry{{"ExtData/d2", "NEW", ""}}},
		{"symlink", func() error { return os.Symlink("keep", m("sl")) }, []entry{{"ExtData/sl", "NEW", ""}}},
		{"link", func() error { return os.Link(m("keep"), m("hl")) }, []entry{{"ExtData/hl", "NEW", ""}}},
		{"unlink", func() error { return os.Remove(m("hl")) }, []entry{{"ExtData/hl", "DELETED", ""}}},
		{"chmod", func() error { return os.Chmod(m("keep"), 0o600) }, []entry{{"ExtData/keep", "CHANGED", ""}}},
		{"chown", func() error { return os.Lchown(m("keep"), 1, 1) }, []entry{{"ExtData/keep", "CHANGED", ""}}},
		{"utimes", func() error { return os.Chtimes(m("keep"), time.Unix(1, 0), time.Unix(2, 0)) },
			[]entry{{"ExtData/keep", "CHANGED", ""}}},
		{"truncate", func() error { return os.Truncate(m("keep"), 3) }, []entry{{"ExtData/keep", "CHANGED", ""}}},
		{"rmdir", func() error { return os.Remove(m("emptydir")) }, []entry{{"ExtData/emptydir", "DELETED", ""}}},
		{"rename file", func() error { return os.Rename(m("keep"), m("kept")) },
			[]entry{{"ExtData/kept", "RENAME", "ExtData/keep"}}},
		{"rename directory", func() error { return os.Rename(m("dir"), m("dir2")) },
			[]entry{{"ExtData/dir2", "RENAME", "ExtData/dir"}}},
		{"outside the association", func() error {
			must(t, os.WriteFile(je.m("out"), []byte("o"), 0o644))
			must(t, os.Mkdir(je.m("outdir"), 0o755))
			return os.Rename(je.m("out"), je.m("outdir/out"))
		}, nil},
		{"rename out of the association", func() error { return os.Rename(m("kept"), je.m("kept")) },
			[]entry{{"kept", "RENAME", "ExtData/kept"}}},
		{"tree moved into the association", func() error {
			must(t, os.MkdirAll(je.m("tree/sub"), 0o755))
			must(t, os.WriteFile(je.m("tree/sub/x"), []byte("x"), 0o644))
			must(t, os.Symlink("x", je.m("tree/l")))
			je.drainJournal(t)
			return os.Rename(je.m("tree"), m("tree"))
		}, []entry{{"ExtData/tree", "RENAME", "tree"}, {"ExtData/tree/l", "NEW", ""},
			{"ExtData/tree/sub", "NEW", ""}, {"ExtData/tree/sub/x", "NEW", ""}}},
	}
	for _, s := range steps {
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := entriesOf(je.pending(t, ""))
		if !slices.Equal(got, s.want) && !(len(got) == 0 && len(s.want) == 0) {
			t.Errorf("%s: journal %v, want %v", s.name, got, s.want)
		}
		if ms, err := je.cat.Moves(context.Background()); err != nil || len(ms) != 0 {
			t.Errorf("%s: move records left: %+v %v", s.name, ms, err)
		}
		je.drainJournal(t)
	}
	if je.notify.Load() == 0 {
		t.Error("the exporter was never notified")
	}
}

// TestFsyncJournalsBeforeReturn: an fsync of a written file returns only
// after its entry is in the catalog, while the file stays open; a second
// fsync with nothing new appends nothing.
func TestFsyncJournalsBeforeReturn(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	f, err := os.Create(je.m("ExtData/f"))
	must(t, err)
	defer f.Close()
	_, err = f.WriteString("data")
	must(t, err)
	must(t, f.Sync())
	if got := entriesOf(je.pending(t, "")); !slices.Equal(got, []entry{{"ExtData/f", "NEW", ""}}) {
		t.Fatalf("after fsync: %v", got)
	}
	je.drainJournal(t)
	must(t, f.Sync())
	if got := je.pending(t, ""); len(got) != 0 {
		t.Fatalf("fsync without a write appended %v", entriesOf(got))
	}
	_, err = f.WriteString("more")
	must(t, err)
	must(t, syscall.Fdatasync(int(f.Fd())))
	if got := je.pending(t, ""); len(got) != 1 {
		t.Fatalf("fdatasync after a write: %v", entriesOf(got))
	}
}

// TestWriteBumpsVersionAndDirties: a write to an exported (clean) file
// makes it dirty and moves its content version before close returns; a
// file only opened is left alone.
func TestWriteBumpsVersionAndDirties(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	rel := "ExtData/f"
	must(t, os.WriteFile(je.s(rel), []byte("exported"), 0o644))
	must(t, je.st.SetState(rel, store.State{Flags: hsm.Exists | hsm.Archived, Version: 7}))
	f, err := os.OpenFile(je.m(rel), os.O_RDWR, 0)
	must(t, err)
	must(t, f.Close())
	if st, _ := je.st.GetState(rel); st.Version != 7 || st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("open without a write changed the state: %+v", st)
	}
	f, err = os.OpenFile(je.m(rel), os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("E"), 0)
	must(t, err)
	st, err := je.st.GetState(rel)
	must(t, err)
	if st.Version <= 7 || !st.Flags.Has(hsm.Dirty) {
		t.Fatalf("after a write (file still open): %+v, want dirty and a version above 7", st)
	}
	must(t, f.Close())
	if got := entriesOf(je.pending(t, "")); !slices.Equal(got, []entry{{rel, "CHANGED", ""}}) {
		t.Fatalf("journal %v", got)
	}
}

// TestVersionReadProtocol: after VersionRead, the next write through the
// mount moves the version past what the exporter read, also when writes
// run concurrently with VersionRead (store.BumpVersion's protocol).
func TestVersionReadProtocol(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	rel := "ExtData/f"
	f, err := os.Create(je.m(rel))
	must(t, err)
	defer f.Close()
	_, err = f.WriteAt([]byte("0"), 0)
	must(t, err)
	sf, err := je.st.OpenFile(rel, unix.O_RDONLY, 0)
	must(t, err)
	defer sf.Close()
	var sta unix.Stat_t
	must(t, unix.Fstat(int(sf.Fd()), &sta))
	for i := range 50 {
		je.fsys.VersionRead(sta.Dev, sta.Ino)
		before, err := je.st.FileState(sf)
		must(t, err)
		_, err = f.WriteAt([]byte{byte(i)}, int64(i))
		must(t, err)
		after, err := je.st.FileState(sf)
		must(t, err)
		if after.Version <= before.Version {
			t.Fatalf("round %d: version %d after a write that followed VersionRead (read %d)", i, after.Version, before.Version)
		}
	}
	// Concurrent writers and VersionReads: a write may bump the version
	// between VersionRead and the exporter's read of it; a write that
	// lands after that read must still move the version past it (the bump
	// after the bytes land). Without it, this fails within a few rounds.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := f.WriteAt([]byte{byte(i)}, int64(w*4096+i%4096)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	fail := ""
	for i := range 200 {
		je.fsys.VersionRead(sta.Dev, sta.Ino)
		before, err := je.st.FileState(sf)
		must(t, err)
		_, err = f.WriteAt([]byte("w"), 3*4096)
		must(t, err)
		after, err := je.st.FileState(sf)
		must(t, err)
		if after.Version <= before.Version {
			fail = fmt.Sprintf("round %d: a write after the version was read left it at %d (read %d)", i, after.Version, before.Version)
			break
		}
	}
	close(stop)
	wg.Wait()
	if fail != "" {
		t.Fatal(fail)
	}
	must(t, f.Close())
	// An inode the exporter read while it was closed, opened afterwards:
	// the open's first write bumps before the exporter reads, the second
	// must bump again.
	sf2, err := je.st.OpenFile(rel, unix.O_RDONLY, 0)
	must(t, err)
	defer sf2.Close()
	je.fsys.VersionRead(sta.Dev, sta.Ino)
	g, err := os.OpenFile(je.m(rel), os.O_WRONLY, 0)
	must(t, err)
	defer g.Close()
	_, err = g.WriteAt([]byte("1"), 0)
	must(t, err)
	before, err := je.st.FileState(sf2)
	must(t, err)
	_, err = g.WriteAt([]byte("2"), 1)
	must(t, err)
	if after, _ := je.st.FileState(sf2); after.Version <= before.Version {
		t.Fatalf("second write after a VersionRead before the open: version %d, read %d", after.Version, before.Version)
	}
}

// s3Body returns the object's bytes, or nil when it does not exist.
func (je *jenv) s3Body(t testing.TB, key string) []byte {
	t.Helper()
	out, err := je.s3.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(je.bucket), Key: aws.String(key)})
	if err != nil {
		if s3x.CodeOf(err) == s3x.CodeNoSuchKey {
			return nil
		}
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// wait is the hsm wait barrier over the whole journal.
func (je *jenv) wait(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := je.ex.Wait(ctx, "")
	if err != nil {
		t.Fatalf("hsm wait: %v (pending %v)", err, entriesOf(r.Pending))
	}
	if len(r.Parked) != 0 {
		t.Fatalf("parked: %v", r.Parked)
	}
}

// TestExportThroughMount: a file written through the mount becomes dirty
// on write and, once exported, `exists archived` and clean with the
// object byte-identical; a rename moves the object; an unlink leaves it
// unless DELETED (here it is in the policy).
func TestExportThroughMount(t *testing.T) {
	je := mountJournal(t, Options{}, true)
	body := randBody(3*mib+17, 1)
	must(t, os.WriteFile(je.m("ExtData/f"), body, 0o640))
	je.wait(t)
	if got := je.s3Body(t, "data/f"); !bytes.Equal(got, body) {
		t.Fatalf("object has %d bytes, want the %d written", len(got), len(body))
	}
	st, err := je.st.GetState("ExtData/f")
	must(t, err)
	if st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("after export: %v, want exists archived", st.Flags)
	}
	// Rewrite: dirty, then exported again.
	f, err := os.OpenFile(je.m("ExtData/f"), os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("REWRITTEN"), 0)
	must(t, err)
	if st, _ := je.st.GetState("ExtData/f"); !st.Flags.Has(hsm.Dirty) {
		t.Fatalf("after a write: %v, want dirty", st.Flags)
	}
	must(t, f.Close())
	je.wait(t)
	copy(body, "REWRITTEN")
	if got := je.s3Body(t, "data/f"); !bytes.Equal(got, body) {
		t.Fatal("object does not have the rewritten content")
	}
	must(t, os.Rename(je.m("ExtData/f"), je.m("ExtData/g")))
	je.wait(t)
	if got := je.s3Body(t, "data/g"); !bytes.Equal(got, body) {
		t.Fatal("renamed object missing or different")
	}
	if got := je.s3Body(t, "data/f"); got != nil {
		t.Fatal("old key still there after the rename")
	}
	must(t, os.Remove(je.m("ExtData/g")))
	je.wait(t)
	if got := je.s3Body(t, "data/g"); got != nil {
		t.Fatal("object not deleted with DELETED in the policy")
	}
}

// TestRewriteDuringUploadExportedAgain: a file rewritten, through the mount,
// while its upload runs is exported again, and the object ends as the final
// content — never a mix (invariant 2). The writer keeps writing across many
// uploads; after it stops and closes, the object must equal the file.
func TestRewriteDuringUploadExportedAgain(t *testing.T) {
	je := mountJournal(t, Options{}, true)
	const size = 8 * mib
	f, err := os.Create(je.m("ExtData/hot"))
	must(t, err)
	buf := bytes.Repeat([]byte{'a'}, size)
	_, err = f.WriteAt(buf, 0)
	must(t, err)
	must(t, f.Sync()) // journaled: the exporter starts uploading
	deadline := time.Now().Add(3 * time.Second)
	for round := byte('b'); time.Now().Before(deadline); round++ {
		// Rewrite the whole file with one letter per round, fsync each
		// round: every round is an acknowledged state of the file.
		if round > 'z' {
			round = 'b'
		}
		for off := 0; off < size; off += mib {
			_, err := f.WriteAt(bytes.Repeat([]byte{round}, mib), int64(off))
			must(t, err)
		}
		must(t, f.Sync())
	}
	final := make([]byte, size)
	_, err = f.ReadAt(final, 0)
	must(t, err)
	must(t, f.Close())
	je.wait(t)
	got := je.s3Body(t, "data/hot")
	if !bytes.Equal(got, final) {
		t.Fatalf("object (%d bytes, first %q) is not the file's final content (first %q)", len(got), got[:1], final[:1])
	}
	st, err := je.st.GetState("ExtData/hot")
	must(t, err)
	if st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("after the last export: %v, want exists archived", st.Flags)
	}
	t.Logf("exporter: %+v", je.ex.Stats())
}

// TestPassthroughWriterJournaled: a writer joining an inode already open in
// passthrough mode (a reader first) writes through the kernel, unseen by
// the daemon; its open bumps the version and journals at once
// (TestLatePassthroughWriter), and its close bumps again (dirty) and
// journals the change.
func TestPassthroughWriterJournaled(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	rel := "ExtData/f"
	must(t, os.WriteFile(je.s(rel), []byte("exported content"), 0o644))
	must(t, je.st.SetState(rel, store.State{Flags: hsm.Exists | hsm.Archived, Version: 3}))
	je.openPassthroughReader(t, rel)
	w, err := os.OpenFile(je.m(rel), os.O_WRONLY, 0)
	must(t, err)
	must(t, w.Close())
	if got := entriesOf(je.pending(t, "")); !slices.Equal(got, []entry{{rel, "CHANGED", ""}}) {
		t.Fatalf("a passthrough writer's open journaled %v", got)
	}
	je.drainJournal(t)
	w, err = os.OpenFile(je.m(rel), os.O_WRONLY, 0)
	must(t, err)
	je.drainJournal(t) // the open's entry: the close must append its own
	opened, err := je.st.GetState(rel)
	must(t, err)
	writes := je.fsys.Stats.Writes.Load()
	_, err = w.WriteAt([]byte("EXPORTED"), 0)
	must(t, err)
	must(t, w.Close())
	if je.fsys.Stats.Writes.Load() != writes {
		testutil.Need(t, errors.New("the write went through the daemon, not passthrough"))
	}
	st, err := je.st.GetState(rel)
	must(t, err)
	if st.Version <= opened.Version || !st.Flags.Has(hsm.Dirty) {
		t.Fatalf("after a passthrough write and close: %+v, want dirty and a version above the open's %d", st, opened.Version)
	}
	if got := entriesOf(je.pending(t, "")); !slices.Equal(got, []entry{{rel, "CHANGED", ""}}) {
		t.Fatalf("journal %v", got)
	}
}
