package writepath

// The tests drive the write path as the FUSE nodes do — plain calls on a
// store and a real SQLite catalog, without a mount — and read the journal
// back from the catalog.

import (
	"context"
	"os"
	"path/filepath"
	"sync"
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

	nmu   sync.Mutex
	nodes map[uint64]*node // by inode number (see node)
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

// node is what a FUSE node keeps of a store inode for the write path:
// its Inode (hard links share it, as go-fuse gives them one node) and
// how many handles are open.
type node struct {
	in    Inode
	opens int
}

// handle is a store file open as the FUSE nodes open one.
type handle struct {
	e   *env
	rel string
	n   *node
	fl  *os.File
	h   *Handle
}

// node returns the node of store file fl (by inode number).
func (e *env) node(fl *os.File) *node {
	e.t.Helper()
	var st unix.Stat_t
	must(e.t, unix.Fstat(int(fl.Fd()), &st))
	e.nmu.Lock()
	defer e.nmu.Unlock()
	if e.nodes == nil {
		e.nodes = map[uint64]*node{}
	}
	n := e.nodes[st.Ino]
	if n == nil {
		n = &node{}
		e.nodes[st.Ino] = n
	}
	return n
}

// opened makes the handle of fl, just opened as rel, as Node.opened does
// (passthrough for a writer the daemon does not see).
func (e *env) opened(rel string, fl *os.File, flags int, passthrough bool) *handle {
	n := e.node(fl)
	e.nmu.Lock()
	if n.opens == 0 {
		e.w.Opened(&n.in, fl)
	}
	n.opens++
	e.nmu.Unlock()
	writable := flags&unix.O_ACCMODE != unix.O_RDONLY
	return &handle{e: e, rel: rel, n: n, fl: fl, h: e.w.NewHandle(&n.in, fl, passthrough, writable)}
}

// create creates rel, as Node.Create does.
func (e *env) create(rel string) *handle {
	e.t.Helper()
	fl, err := e.st.OpenFile(rel, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL, 0o644)
	must(e.t, err)
	h := e.opened(rel, fl, unix.O_RDWR, false)
	h.n.in.Created()
	return h
}

// open opens rel with flags, as Node.Open does for a handle the daemon
// serves (an O_TRUNC open is a content change).
func (e *env) open(rel string, flags int) *handle {
	e.t.Helper()
	fl, err := e.st.OpenFile(rel, flags, 0)
	must(e.t, err)
	h := e.opened(rel, fl, flags, false)
	if flags&unix.O_TRUNC != 0 && flags&unix.O_ACCMODE != unix.O_RDONLY {
		must(e.t, e.w.Changed(&h.n.in, fl))
	}
	return h
}

// writeAt is a write the daemon serves (file.Write).
func (h *handle) writeAt(data string, off int64) error {
	in := &h.n.in
	if err := h.e.w.BeginWrite(in, h.fl); err != nil {
		return err
	}
	n, err := unix.Pwrite(int(h.fl.Fd()), []byte(data), off)
	if berr := h.e.w.EndWrite(in, h.fl, n > 0); err == nil {
		err = berr
	}
	return err
}

func (h *handle) relFn() string { return h.rel }

// fsync is file.Fsync.
func (h *handle) fsync() error {
	return h.e.w.Commit(ctx, h.h, h.relFn, func() error { return unix.Fsync(int(h.fl.Fd())) })
}

// flush is file.Flush (every close(2)).
func (h *handle) flush() error { return h.e.w.Commit(ctx, h.h, h.relFn, nil) }

// release is file.Release (after the last close of the handle).
func (h *handle) release() error {
	err := h.e.w.Commit(ctx, h.h, h.relFn, nil)
	h.e.nmu.Lock()
	h.n.opens--
	h.h.Released()
	if h.n.opens == 0 {
		h.e.w.Closed(&h.n.in)
	}
	h.e.nmu.Unlock()
	if cerr := h.fl.Close(); err == nil {
		err = cerr
	}
	return err
}

// close is close(2) of the handle's only descriptor: flush, then release.
func (h *handle) close() error {
	err := h.flush()
	if rerr := h.release(); err == nil {
		err = rerr
	}
	return err
}

// write writes data to store file rel — created if absent, else opened
// with O_TRUNC — and closes it, as a process writing through the mount.
func (e *env) write(rel, data string) {
	e.t.Helper()
	var h *handle
	if _, err := e.st.Lstat(rel); err == nil {
		h = e.open(rel, unix.O_WRONLY|unix.O_TRUNC)
	} else {
		h = e.create(rel)
	}
	if data != "" {
		must(e.t, h.writeAt(data, 0))
	}
	must(e.t, h.close())
}

// state returns rel's state record.
func (e *env) state(rel string) store.State {
	e.t.Helper()
	st, err := e.st.GetState(rel)
	must(e.t, err)
	return st
}
