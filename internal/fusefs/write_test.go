package fusefs

// Tests of the write path through a mount: the wiring of the nodes to the
// write path with a real exporter over MinIO, and what only the kernel
// shows (passthrough writers). The protocol itself (journal entries,
// versions, commits) is tested without a mount in internal/writepath.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
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

// TestNodesCallWritePath: each node operation that changes the store
// reaches the write path (its entries in the catalog); which entry each
// change journals is internal/writepath's TestJournalEntries and
// TestRenameJournal, without a mount.
func TestNodesCallWritePath(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	m := func(p string) string { return je.m(filepath.Join("ExtData", p)) }
	steps := []struct {
		name string
		op   func() error
		want []entry
	}{
		{"create, write, close", func() error { return os.WriteFile(m("f"), []byte("x"), 0o644) },
			[]entry{{"ExtData/f", "NEW", ""}}},
		{"mkdir", func() error { return os.Mkdir(m("d"), 0o755) }, []entry{{"ExtData/d", "NEW", ""}}},
		{"symlink", func() error { return os.Symlink("f", m("sl")) }, []entry{{"ExtData/sl", "NEW", ""}}},
		{"mknod", func() error { return unix.Mkfifo(m("fifo"), 0o644) }, []entry{{"ExtData/fifo", "NEW", ""}}},
		{"link", func() error { return os.Link(m("f"), m("hl")) }, []entry{{"ExtData/hl", "NEW", ""}}},
		{"chmod of a linked file", func() error { return os.Chmod(m("hl"), 0o600) },
			[]entry{{"ExtData/f", "CHANGED", ""}, {"ExtData/hl", "CHANGED", ""}}},
		{"truncate", func() error { return os.Truncate(m("f"), 0) },
			[]entry{{"ExtData/f", "CHANGED", ""}, {"ExtData/hl", "CHANGED", ""}}},
		{"unlink", func() error { return os.Remove(m("hl")) }, []entry{{"ExtData/hl", "DELETED", ""}}},
		{"rename", func() error { return os.Rename(m("f"), m("d/g")) }, []entry{{"ExtData/d/g", "RENAME", "ExtData/f"}}},
		{"rmdir", func() error { must(t, os.Remove(m("d/g"))); je.drainJournal(t); return os.Remove(m("d")) },
			[]entry{{"ExtData/d", "DELETED", ""}}},
	}
	for _, s := range steps {
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := entriesOf(je.pending(t, "")); !slices.Equal(got, s.want) {
			t.Errorf("%s: journal %v, want %v", s.name, got, s.want)
		}
		je.drainJournal(t)
	}
	if je.notify.Load() == 0 {
		t.Error("the exporter was never notified")
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
