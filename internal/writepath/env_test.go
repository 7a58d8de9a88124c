package writepath

// The tests drive the write path as the FUSE nodes do — plain calls on a
// store and a real SQLite catalog, without a mount — and read the journal
// back from the catalog.

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.RunMain(m)) }

var ctx = context.Background()

// env is a store whose "ExtData" is an association exporting NEW, CHANGED
// and DELETED to s3://<bucket>/data/, a SQLite catalog holding the
// journal, and the Writer over both.
type env struct {
	t      testing.TB
	dir    string
	st     *store.Store
	cat    catalog.Catalog
	jnl    *CatalogJournal
	w      *Writer
	notify atomic.Int64
	bucket string
	assocs []api.DataRepositoryAssociation
	// notifyMore is called by the journal's Notify after counting.
	notifyMore func()
}

func newEnv(t testing.TB) *env { return newEnvBucket(t, "nobucket", nil) }

// newEnvBucket is newEnv for an association in bucket, with wrap (nil:
// none) around the Writer's journal.
func newEnvBucket(t testing.TB, bucket string, wrap func(Journal) Journal) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), bucket: bucket}
	var err error
	if e.st, err = store.Open(e.dir); err != nil {
		t.Fatal(err)
	}
	if e.cat, err = catalog.OpenSQLite(ctx, filepath.Join(e.st.MetaPath(), catalog.DefaultFile), catalog.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.cat.Close()
		e.st.Close()
	})
	must(t, e.st.MkdirAll("ExtData", 0o755))
	e.assocs = []api.DataRepositoryAssociation{{
		AssociationId: "dra-0123456789abcdef0", FileSystemPath: "/ExtData",
		DataRepositoryPath: "s3://" + bucket + "/data/", Lifecycle: api.LifecycleAvailable,
		S3: &api.S3DataRepositoryConfiguration{AutoExportPolicy: &api.AutoExportPolicy{
			Events: []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}}},
	}}
	e.jnl = NewCatalogJournal(e.cat, func() {
		e.notify.Add(1)
		if e.notifyMore != nil {
			e.notifyMore()
		}
	})
	e.jnl.SetAssociations(dra.NewTable(e.assocs, nil))
	var j Journal = e.jnl
	if wrap != nil {
		j = wrap(j)
	}
	e.w = New(Config{Store: e.st, Journal: j})
	return e
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// pending returns the journal's pending entries under prefix (catalog form).
func (e *env) pending(prefix string) []catalog.JournalEntry {
	e.t.Helper()
	es, err := e.cat.Pending(ctx, prefix, "", 1000)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}

// drain completes every pending entry (no exporter), so the next
// operation's entries stand alone.
func (e *env) drain() {
	e.t.Helper()
	for {
		es, err := e.cat.Claim(ctx, "drain", 100, time.Minute)
		if err != nil {
			e.t.Fatal(err)
		}
		if len(es) == 0 {
			return
		}
		for _, x := range es {
			if _, err := e.cat.Complete(ctx, x); err != nil {
				e.t.Fatal(err)
			}
		}
	}
}

// moves fails the test when move records are left.
func (e *env) noMoves(what string) {
	e.t.Helper()
	if ms, err := e.cat.Moves(ctx); err != nil || len(ms) != 0 {
		e.t.Errorf("%s: move records left: %+v %v", what, ms, err)
	}
}

type entry struct {
	path, kind, old string
}

func entriesOf(es []catalog.JournalEntry) []entry {
	out := make([]entry, 0, len(es))
	for _, x := range es {
		out = append(out, entry{x.Path, string(x.Kind), x.OldPath})
	}
	return out
}

// write writes data to store file rel (created if absent, emptied first)
// and closes it, as a process writing through the mount does.
func (e *env) write(rel, data string) {
	e.t.Helper()
	fl, err := e.st.OpenFile(rel, unix.O_WRONLY|unix.O_CREAT|unix.O_TRUNC, 0o644)
	must(e.t, err)
	defer fl.Close()
	_, err = fl.WriteString(data)
	must(e.t, err)
	must(e.t, e.w.JournalContent(ctx, rel, fl, int(fl.Fd()), true))
}
