package writepath

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
)

// recJournal records every append the catalog acknowledged.
type recJournal struct {
	Journal
	mu       sync.Mutex
	appended []catalog.JournalAppend
}

func (r *recJournal) Append(c context.Context, entries ...catalog.JournalAppend) error {
	err := r.Journal.Append(c, entries...)
	if err == nil {
		r.mu.Lock()
		r.appended = append(r.appended, entries...)
		r.mu.Unlock()
	}
	return err
}

// take returns the appends since the last take.
func (r *recJournal) take() []catalog.JournalAppend {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.appended
	r.appended = nil
	return a
}

// TestJournalEntries checks the entry every operation appends (read back
// from the catalog), and that nothing is journaled outside the
// association or for a file only read or opened. Renames: TestRenameJournal.
func TestJournalEntries(t *testing.T) {
	e := newEnv(t)
	x := func(p string) string { return "ExtData/" + p }
	e.write(x("keep"), "k")
	must(t, e.st.Mkdir(x("emptydir"), 0o755))
	e.drain()

	steps := []struct {
		name string
		op   func() error
		want []entry
	}{
		{"create+write+close", func() error { e.write(x("new"), "x"); return nil },
			[]entry{{"ExtData/new", "NEW", ""}}},
		{"create empty", func() error { return e.create(x("empty")).close() },
			[]entry{{"ExtData/empty", "NEW", ""}}},
		{"read only", func() error { return e.open(x("keep"), unix.O_RDONLY).close() }, nil},
		{"open for write without writing", func() error { return e.open(x("keep"), unix.O_WRONLY).close() }, nil},
		{"append", func() error {
			h := e.open(x("keep"), unix.O_WRONLY)
			must(t, h.writeAt("more", 1))
			return h.close()
		}, []entry{{"ExtData/keep", "NEW", ""}}}, // never exported: still NEW
		{"O_TRUNC open", func() error { return e.open(x("keep"), unix.O_WRONLY|unix.O_TRUNC).close() },
			[]entry{{"ExtData/keep", "NEW", ""}}},
		{"mkdir", func() error {
			must(t, e.st.Mkdir(x("d2"), 0o700))
			return e.w.Made(ctx, x("d2"))
		}, []entry{{"ExtData/d2", "NEW", ""}}},
		{"symlink", func() error {
			must(t, e.st.Symlink("keep", x("sl")))
			return e.w.Made(ctx, x("sl"))
		}, []entry{{"ExtData/sl", "NEW", ""}}},
		{"link", func() error { _, err := e.w.Link(ctx, x("keep"), x("hl")); return err },
			[]entry{{"ExtData/hl", "NEW", ""}}},
		{"unlink", func() error { return e.w.Unlink(ctx, x("hl")) }, []entry{{"ExtData/hl", "DELETED", ""}}},
		{"chmod", func() error {
			must(t, e.st.Chmod(x("keep"), 0o600))
			return e.w.MetaChanged(ctx, x("keep"))
		}, []entry{{"ExtData/keep", "CHANGED", ""}}},
		{"chown", func() error {
			must(t, e.st.Chown(x("keep"), 1, 1))
			return e.w.MetaChanged(ctx, x("keep"))
		}, []entry{{"ExtData/keep", "CHANGED", ""}}},
		{"utimes", func() error {
			must(t, e.st.Utimes(x("keep"), unix.Timespec{Sec: 1}, unix.Timespec{Sec: 2}))
			return e.w.MetaChanged(ctx, x("keep"))
		}, []entry{{"ExtData/keep", "CHANGED", ""}}},
		{"truncate", func() error { // Node.setSize without an open handle
			fl, err := e.st.OpenFile(x("keep"), unix.O_WRONLY, 0)
			must(t, err)
			err = e.w.Resize(&e.node(fl).in, fl, func() error { return fl.Truncate(3) })
			fl.Close()
			must(t, err)
			return e.w.MetaChanged(ctx, x("keep"))
		}, []entry{{"ExtData/keep", "CHANGED", ""}}},
		{"rmdir", func() error { return e.w.Rmdir(ctx, x("emptydir")) }, []entry{{"ExtData/emptydir", "DELETED", ""}}},
		{"outside the association", func() error {
			e.write("out", "o")
			must(t, e.st.Mkdir("outdir", 0o755))
			if err := e.w.Made(ctx, "outdir"); err != nil {
				return err
			}
			return e.w.Unlink(ctx, "out")
		}, nil},
	}
	for _, s := range steps {
		if err := s.op(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := entriesOf(e.pending(""))
		if !slices.Equal(got, s.want) && !(len(got) == 0 && len(s.want) == 0) {
			t.Errorf("%s: journal %v, want %v", s.name, got, s.want)
		}
		e.drain()
	}
	if e.notify.Load() == 0 {
		t.Error("the exporter was never notified")
	}
}

// TestFsyncJournalsDurably: an fsync of a written file returns only after
// its entry is in the catalog, durably (not Relaxed), while the file stays
// open; a second fsync with nothing new appends nothing; a close appends
// relaxed, and an fsync after it appends again, durably, with nothing new
// written.
func TestFsyncJournalsDurably(t *testing.T) {
	var rec *recJournal
	e := newEnvBucket(t, "nobucket", func(j Journal) Journal { rec = &recJournal{Journal: j}; return rec })
	rel := "ExtData/f"
	h := e.create(rel)
	must(t, h.writeAt("data", 0))
	must(t, h.fsync())
	if got := entriesOf(e.pending("")); !slices.Equal(got, []entry{{rel, "NEW", ""}}) {
		t.Fatalf("after fsync: %v", got)
	}
	if a := rec.take(); len(a) != 1 || a[0].Relaxed {
		t.Fatalf("fsync appended %+v, want one durable entry", a)
	}
	e.drain()
	must(t, h.fsync())
	if got := e.pending(""); len(got) != 0 {
		t.Fatalf("fsync without a write appended %v", entriesOf(got))
	}
	must(t, h.writeAt("more", 4))
	must(t, h.fsync())
	if got := e.pending(""); len(got) != 1 {
		t.Fatalf("fsync after a write: %v", entriesOf(got))
	}
	e.drain()
	rec.take()

	// A close appends relaxed; an fsync of another handle afterwards
	// asks for durability of that entry.
	g := e.open(rel, unix.O_RDWR)
	must(t, h.writeAt("x", 0))
	must(t, h.close())
	if a := rec.take(); len(a) != 1 || !a[0].Relaxed {
		t.Fatalf("close appended %+v, want one relaxed entry", a)
	}
	must(t, g.fsync())
	if a := rec.take(); len(a) != 1 || a[0].Relaxed || a[0].Path != rel {
		t.Fatalf("fsync after a relaxed close appended %+v, want one durable entry", a)
	}
	must(t, g.fsync())
	if a := rec.take(); len(a) != 0 {
		t.Fatalf("a second fsync appended %+v", a)
	}
	must(t, g.close())
}

// TestWriteBumpsVersionAndDirties: a write to an exported (clean) file
// makes it dirty and moves its content version before close returns; a
// file only opened is left alone.
func TestWriteBumpsVersionAndDirties(t *testing.T) {
	e := newEnv(t)
	rel := "ExtData/f"
	e.write(rel, "exported")
	e.drain()
	must(t, e.st.SetState(rel, store.State{Flags: hsm.Exists | hsm.Archived, Version: 7}))
	must(t, e.open(rel, unix.O_RDWR).close())
	if st := e.state(rel); st.Version != 7 || st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("open without a write changed the state: %+v", st)
	}
	h := e.open(rel, unix.O_RDWR)
	must(t, h.writeAt("E", 0))
	if st := e.state(rel); st.Version <= 7 || !st.Flags.Has(hsm.Dirty) {
		t.Fatalf("after a write (file still open): %+v, want dirty and a version above 7", st)
	}
	must(t, h.close())
	if got := entriesOf(e.pending("")); !slices.Equal(got, []entry{{rel, "CHANGED", ""}}) {
		t.Fatalf("journal %v", got)
	}
}

// TestVersionReadProtocol: after VersionRead, the next write moves the
// version past what the exporter read, also when writes run concurrently
// with VersionRead (store.BumpVersion's protocol; invariant 2).
func TestVersionReadProtocol(t *testing.T) {
	e := newEnv(t)
	rel := "ExtData/f"
	f := e.create(rel)
	must(t, f.writeAt("0", 0))
	sf, err := e.st.OpenFile(rel, unix.O_RDONLY, 0)
	must(t, err)
	defer sf.Close()
	var sta unix.Stat_t
	must(t, unix.Fstat(int(sf.Fd()), &sta))
	version := func() hsm.Version {
		st, err := e.st.FileState(sf)
		must(t, err)
		return st.Version
	}
	for i := range 50 {
		e.w.VersionRead(sta.Dev, sta.Ino)
		before := version()
		must(t, f.writeAt(string(rune('a'+i%26)), int64(i)))
		if after := version(); after <= before {
			t.Fatalf("round %d: version %d after a write that followed VersionRead (read %d)", i, after, before)
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
				if err := f.writeAt("c", int64(w*4096+i%4096)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	fail := ""
	for i := range 200 {
		e.w.VersionRead(sta.Dev, sta.Ino)
		before := version()
		must(t, f.writeAt("w", 3*4096))
		if after := version(); after <= before {
			fail = fmt.Sprintf("round %d: a write after the version was read left it at %d (read %d)", i, after, before)
			break
		}
	}
	close(stop)
	wg.Wait()
	if fail != "" {
		t.Fatal(fail)
	}
	must(t, f.close())
	// An inode the exporter read while it was closed, opened afterwards:
	// the open's first write bumps before the exporter reads, the second
	// must bump again.
	e.w.VersionRead(sta.Dev, sta.Ino)
	g := e.open(rel, unix.O_WRONLY)
	must(t, g.writeAt("1", 0))
	before := version()
	must(t, g.writeAt("2", 1))
	if after := version(); after <= before {
		t.Fatalf("second write after a VersionRead before the open: version %d, read %d", after, before)
	}
	must(t, g.close())
}

// TestUnseenWriter: a writer the daemon does not see (passthrough) bumps
// the version and journals at its open (UnseenOpen), with the caller's
// lock let go meanwhile; UnseenWriter says so until its release; its
// close notices writes made behind the daemon's back by the inode's times
// and size, bumps again and journals. (That the kernel really writes in
// passthrough is internal/fusefs TestPassthroughWriterJournaled.)
func TestUnseenWriter(t *testing.T) {
	e := newEnv(t)
	rel := "ExtData/f"
	e.write(rel, "exported content")
	e.drain()
	must(t, e.st.SetState(rel, store.State{Flags: hsm.Exists | hsm.Archived, Version: 3}))
	fl, err := e.st.OpenFile(rel, unix.O_WRONLY, 0)
	must(t, err)
	var sta unix.Stat_t
	must(t, unix.Fstat(int(fl.Fd()), &sta))
	h := e.opened(rel, fl, unix.O_WRONLY, true)
	if !e.w.UnseenWriter(sta.Dev, sta.Ino) {
		t.Fatal("UnseenWriter false with a passthrough writer open")
	}
	var held sync.Mutex
	held.Lock()
	must(t, e.w.UnseenOpen(h.h, func() string {
		if held.TryLock() {
			held.Unlock()
		} else {
			t.Error("the caller's lock was held while the journal appended")
		}
		return rel
	}, &held))
	if held.TryLock() {
		t.Fatal("UnseenOpen returned without the caller's lock")
	}
	held.Unlock()
	if got := entriesOf(e.pending("")); !slices.Equal(got, []entry{{rel, "CHANGED", ""}}) {
		t.Fatalf("the open of a passthrough writer journaled %v", got)
	}
	opened := e.state(rel)
	if opened.Version <= 3 || !opened.Flags.Has(hsm.Dirty) {
		t.Fatalf("after the open: %+v, want dirty and a version above 3", opened)
	}
	e.drain()
	must(t, h.flush()) // nothing written yet
	if got := e.pending(""); len(got) != 0 {
		t.Fatalf("a flush with nothing written appended %v", entriesOf(got))
	}
	// The kernel's write; it grows the file, so a coarse clock that
	// leaves the times alone cannot hide it.
	_, err = unix.Pwrite(int(fl.Fd()), []byte("EXPORTED CONTENT, LONGER"), 0)
	must(t, err)
	must(t, h.close())
	if st := e.state(rel); st.Version <= opened.Version {
		t.Fatalf("after a passthrough write and close: %+v, want a version above the open's %d", st, opened.Version)
	}
	if got := entriesOf(e.pending("")); !slices.Equal(got, []entry{{rel, "CHANGED", ""}}) {
		t.Fatalf("journal %v", got)
	}
	if e.w.UnseenWriter(sta.Dev, sta.Ino) {
		t.Fatal("UnseenWriter true after the release")
	}
}
