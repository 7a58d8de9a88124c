package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/hsm"
	"golang.org/x/sys/unix"
)

var importedFlags = hsm.Imported()

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

func testStub(size, chunk int64) Stub {
	return Stub{
		Size: size, Mode: 0o640, UID: 1001, GID: 1002,
		Mtime: time.Date(2020, 7, 17, 16, 22, 0, 0, time.UTC), Atime: time.Date(2021, 1, 2, 3, 4, 5, 6, time.UTC),
		ETag: `"9b2cf535f27731c974343645a3985328"`, Flags: importedFlags, ChunkSize: chunk,
	}
}

func TestStubSparseWithState(t *testing.T) {
	s, root := newStore(t)
	if err := s.MkdirAll("data", 0o755); err != nil {
		t.Fatal(err)
	}
	stub := testStub(1*gib, 1*mib)
	if err := s.CreateStub("data/big.nc", stub); err != nil {
		t.Fatal(err)
	}
	st, err := s.Lstat("data/big.nc")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != gib || st.Blocks != 0 {
		t.Errorf("size %d blocks %d; want %d and 0 (sparse, no data)", st.Size, st.Blocks, gib)
	}
	if st.Mode != unix.S_IFREG|0o640 || st.Uid != 1001 || st.Gid != 1002 {
		t.Errorf("mode %o uid %d gid %d", st.Mode, st.Uid, st.Gid)
	}
	if st.Mtim.Nano() != stub.Mtime.UnixNano() || st.Atim.Nano() != stub.Atime.UnixNano() {
		t.Errorf("mtime %d atime %d", st.Mtim.Nano(), st.Atim.Nano())
	}
	// No data extent at all.
	fd, err := unix.Open(root+"/data/big.nc", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if off, err := unix.Seek(fd, 0, unix.SEEK_DATA); err != unix.ENXIO {
		t.Errorf("SEEK_DATA = %d, %v; want ENXIO", off, err)
	}
	unix.Close(fd)

	state, err := s.GetState("data/big.nc")
	if err != nil {
		t.Fatal(err)
	}
	if state.Flags != importedFlags || state.Size != gib || state.ETag != stub.ETag || state.Version != 0 {
		t.Errorf("state %+v", state)
	}
	if state.Chunks == nil || state.Chunks.Len() != 1024 || state.Chunks.Count() != 0 || state.Chunks.ChunkSize() != mib {
		t.Errorf("chunk map %+v", state.Chunks)
	}
	if got := state.Has(Range{0, gib}); len(got) != 1 || got[0] != (Range{0, gib}) {
		t.Errorf("Has(all) = %v", got)
	}
	if err := s.CreateStub("data/big.nc", stub); !errors.Is(err, unix.EEXIST) {
		t.Errorf("second CreateStub = %v; want EEXIST", err)
	}
	// No temporary file is left.
	if n, err := s.RemoveTempStubs("data"); n != 0 || err != nil {
		t.Errorf("temps left: %d %v", n, err)
	}
}

func TestStubRefusesBadInput(t *testing.T) {
	s, _ := newStore(t)
	for name, st := range map[string]Stub{
		"not released": {Size: 1, Mode: 0o644, UID: -1, GID: -1, Flags: hsm.Exists | hsm.Archived, ChunkSize: 1},
		"inconsistent": {Size: 1, Mode: 0o644, UID: -1, GID: -1, Flags: hsm.Released, ChunkSize: 1},
		"no chunk":     {Size: 1, Mode: 0o644, UID: -1, GID: -1, Flags: importedFlags},
		"negative":     {Size: -1, Mode: 0o644, UID: -1, GID: -1, Flags: importedFlags, ChunkSize: 1},
		"directory":    {Size: 1, Mode: unix.S_IFDIR | 0o755, UID: -1, GID: -1, Flags: importedFlags, ChunkSize: 1},
		"too many":     {Size: MaxInlineChunks + 1, Mode: 0o644, UID: -1, GID: -1, Flags: importedFlags, ChunkSize: 1},
	} {
		if err := s.CreateStub("f", st); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := s.Lstat("f"); !errors.Is(err, unix.ENOENT) {
			t.Errorf("%s: left a file: %v", name, err)
		}
	}
	if n, _ := s.RemoveTempStubs("."); n != 0 {
		t.Errorf("%d temporary files left behind", n)
	}
}

func TestStateMovesWithRenameGoneAfterUnlink(t *testing.T) {
	s, _ := newStore(t)
	s.MkdirAll("a", 0o755)
	s.MkdirAll("b", 0o755)
	if err := s.CreateStub("a/f", testStub(10*mib, mib)); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename("a/f", "b/g", 0); err != nil {
		t.Fatal(err)
	}
	st, err := s.GetState("b/g")
	if err != nil || st.Size != 10*mib || st.Flags != importedFlags {
		t.Fatalf("after rename: %+v %v", st, err)
	}
	if err := s.Link("b/g", "a/h"); err != nil {
		t.Fatal(err)
	}
	if st, err := s.GetState("a/h"); err != nil || st.ETag == "" {
		t.Fatalf("hard link shares state: %+v %v", st, err)
	}
	if err := s.Unlink("b/g"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink("a/h"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetState("b/g"); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("state after unlink: %v", err)
	}
	f, err := s.OpenFile("b/g", unix.O_CREAT|unix.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := s.GetState("b/g"); !errors.Is(err, ErrNoState) || !errors.Is(err, unix.ENODATA) {
		t.Fatalf("a new file under the old name has state: %v", err)
	}
}

func TestStateSymlinkRefused(t *testing.T) {
	s, _ := newStore(t)
	if err := s.Symlink("target", "l"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetState("l"); !errors.Is(err, ErrSymlinkState) {
		t.Errorf("GetState(symlink) = %v", err)
	}
	if err := s.SetState("l", State{Flags: hsm.Exists}); !errors.Is(err, ErrSymlinkState) || !errors.Is(err, unix.EPERM) {
		t.Errorf("SetState(symlink) = %v", err)
	}
	// Directories carry state (e.g. for listing marks later).
	if err := s.Mkdir("d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.SetState("d", State{Flags: hsm.Exists, ETag: "x"}); err != nil {
		t.Fatal(err)
	}
	if st, err := s.GetState("d"); err != nil || st.ETag != "x" {
		t.Fatalf("%+v %v", st, err)
	}
	if err := s.ClearState("d"); err != nil {
		t.Fatal(err)
	}
	if err := s.ClearState("d"); !errors.Is(err, ErrNoState) {
		t.Fatalf("second clear: %v", err)
	}
}

func TestStateEncoding(t *testing.T) {
	b, _ := NewBitmap(100*mib+5, mib)
	b.MarkChunks(0, 3)
	b.MarkChunks(50, 51)
	id := MapID{1, 2, 3}
	big, _ := NewBitmap(MaxInlineChunks*2, 1)
	for _, st := range []State{
		{},
		{Flags: importedFlags, Size: 100*mib + 5, ETag: `"abc-12"`, Version: 7, Chunks: b},
		{Flags: hsm.Exists | hsm.Archived | hsm.Dirty, Size: 3, Version: 1 << 40},
		{Flags: importedFlags, Size: MaxInlineChunks * 2, Chunks: big, MapID: &id},
		{Flags: importedFlags, Size: 100*mib + 5, ETag: `"abc-12"`, Chunks: b, Origin: "ExtData/old name"},
		{Flags: hsm.Exists | hsm.Archived, Size: 3, ETag: `"0123456789abcdef0123456789abcdef"`, Stale: "a/f", StaleETag: `"x-2"`},
		{Flags: hsm.Exists | hsm.Archived, Size: 3, ETag: `"e"`, Origin: "b/f", Stale: "a/f"},
	} {
		p, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeState(p)
		if err != nil {
			t.Fatal(err)
		}
		q, _ := got.Encode()
		if !bytes.Equal(p, q) || got.Flags != st.Flags || got.Size != st.Size || got.ETag != st.ETag || got.Version != st.Version || got.Origin != st.Origin ||
			got.Stale != st.Stale || got.StaleETag != st.StaleETag {
			t.Errorf("round trip %+v -> %+v", st, got)
		}
		// Every single-byte corruption is detected.
		for i := range p {
			c := bytes.Clone(p)
			c[i] ^= 0x40
			if _, err := DecodeState(c); !errors.Is(err, ErrCorruptState) {
				t.Fatalf("corruption at byte %d of %d not detected", i, len(p))
			}
		}
		for n := range len(p) {
			if _, err := DecodeState(p[:n]); !errors.Is(err, ErrCorruptState) {
				t.Fatalf("truncation to %d not detected", n)
			}
		}
	}
	md5 := "9b2cf535f27731c974343645a3985328"
	for _, etag := range []string{"", "x", `"` + md5 + `"`, `"` + md5 + `-12"`, `"` + md5 + `-1"`,
		`"` + strings.ToUpper(md5) + `"`, `"` + md5 + `-0"`, `"` + md5 + `-012"`, `"` + md5 + `-"`, `"` + md5 + `-x"`,
		`W/"` + md5 + `"`, md5, `"` + md5 + `-99999999999999999999999"`, `"` + md5[:31] + `"`, `"` + md5 + `0"`} {
		st := State{Flags: importedFlags, Size: 5, ETag: etag, Chunks: mustBitmap(t, 5, 1)}
		p, err := st.Encode()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeState(p)
		if err != nil || got.ETag != etag {
			t.Errorf("ETag %q came back as %q, %v", etag, got.ETag, err)
		}
	}
	if p, _ := (&State{Flags: importedFlags, Size: gib, ETag: `"9b2cf535f27731c974343645a3985328"`, Chunks: mustBitmap(t, gib, mib)}).Encode(); len(p) > 40 {
		t.Errorf("a fresh stub's record is %d bytes; keep it small enough to stay inside the inode", len(p))
	}
}

func mustBitmap(t testing.TB, size, chunk int64) *Bitmap {
	b, err := NewBitmap(size, chunk)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUpdateStateConcurrent(t *testing.T) {
	s, _ := newStore(t)
	f, err := s.OpenFile("f", unix.O_CREAT|unix.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := s.SetFileState(f, State{Flags: hsm.Exists | hsm.Archived}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				var err error
				if i%2 == 0 {
					_, err = s.BumpVersion(f)
				} else {
					_, err = s.UpdateState("f", func(st *State) error { st.Version++; return nil })
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	st, err := s.FileState(f)
	if err != nil || st.Version != 200 || st.Flags != hsm.Exists|hsm.Archived|hsm.Dirty {
		t.Fatalf("%+v %v; want version 200, dirty", st, err)
	}
	// A failing update writes nothing.
	boom := errors.New("boom")
	if _, err := s.UpdateState("f", func(st *State) error { st.Version = 0; return boom }); !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if st, _ := s.GetState("f"); st.Version != 200 {
		t.Fatalf("failed update wrote version %d", st.Version)
	}
}

func TestBumpVersionRefusesReleased(t *testing.T) {
	s, _ := newStore(t)
	s.CreateStub("f", testStub(10, 4))
	f, err := s.OpenFile("f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := s.BumpVersion(f); !errors.Is(err, hsm.ErrReleased) {
		t.Fatalf("BumpVersion of a released file = %v", err)
	}
}

// hydrate writes chunk bytes into f the way the importer will: data first,
// then CommitChunks.
func hydrate(t testing.TB, s *Store, f *os.File, r Range) State {
	t.Helper()
	if _, err := f.WriteAt(bytes.Repeat([]byte{'x'}, int(r.Len)), r.Off); err != nil {
		t.Fatal(err)
	}
	st, err := s.CommitChunks(f, r)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestChunkMapPersistsAndCompletes(t *testing.T) {
	s, root := newStore(t)
	const size, chunk = 10*kib + 100, kib // 11 chunks, the last 100 bytes
	if err := s.CreateStub("f", testStub(size, chunk)); err != nil {
		t.Fatal(err)
	}
	f, err := s.OpenFile("f", unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	hydrate(t, s, f, Range{0, 2 * kib})
	hydrate(t, s, f, Range{5 * kib, kib})
	hydrate(t, s, f, Range{10 * kib, 100}) // the short last chunk
	f.Close()

	// Reload from disk through a new Store.
	s.Close()
	s2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	st, err := s2.GetState("f")
	if err != nil {
		t.Fatal(err)
	}
	want := []Range{{2 * kib, 3 * kib}, {6 * kib, 4 * kib}}
	if got := st.Has(Range{0, size}); !equalRanges(got, want) {
		t.Fatalf("after reload Has = %v; want %v", got, want)
	}
	if st.Flags != importedFlags {
		t.Fatalf("flags %s", st.Flags)
	}
	f, _ = s2.OpenFile("f", unix.O_RDWR, 0)
	defer f.Close()
	hydrate(t, s2, f, Range{2 * kib, 3 * kib})
	st = hydrate(t, s2, f, Range{6 * kib, 4 * kib})
	if st.Flags != hsm.Exists|hsm.Archived || st.Chunks != nil {
		t.Fatalf("complete file: %s %v", st.Flags, st.Chunks)
	}
	if st, _ := s2.GetState("f"); st.Flags.Has(hsm.Released) || st.Has(Range{0, size}) != nil {
		t.Fatalf("persisted complete state: %+v", st)
	}
	// Committing to a file that is no longer released changes nothing.
	if st, err := s2.CommitChunks(f, Range{0, 1}); err != nil || st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("%+v %v", st, err)
	}
}

// Invariant 3: a chunk is marked local only after its data is durable.
func TestCommitChunksOrder(t *testing.T) {
	s, _ := newStore(t)
	s.CreateStub("f", testStub(4*kib, kib))
	f, _ := s.OpenFile("f", unix.O_RDWR, 0)
	defer f.Close()
	f.WriteAt(make([]byte, kib), kib)
	var steps []string
	marked := func() bool {
		st, err := s.GetState("f")
		if err != nil {
			t.Fatal(err)
		}
		return st.Has(Range{kib, kib}) == nil
	}
	s.hooks.syncData = func(fd int) error {
		steps = append(steps, "sync")
		if marked() {
			t.Error("chunk marked before the data sync")
		}
		return unix.Fdatasync(fd)
	}
	s.hooks.afterSync = func() {
		steps = append(steps, "synced")
		if marked() {
			t.Error("chunk marked before the data sync returned")
		}
	}
	s.hooks.afterXattr = func() {
		steps = append(steps, "marked")
		if !marked() {
			t.Error("chunk not marked after the state write")
		}
	}
	if _, err := s.CommitChunks(f, Range{kib, kib}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(steps, ",") != "sync,synced,marked" {
		t.Fatalf("steps %v", steps)
	}
}

func TestCommitChunksSyncFailure(t *testing.T) {
	s, _ := newStore(t)
	s.CreateStub("f", testStub(4*kib, kib))
	f, _ := s.OpenFile("f", unix.O_RDWR, 0)
	defer f.Close()
	s.hooks.syncData = func(int) error { return unix.EIO }
	if _, err := s.CommitChunks(f, Range{0, kib}); !errors.Is(err, unix.EIO) {
		t.Fatalf("CommitChunks with a failing sync = %v; want EIO", err)
	}
	if st, _ := s.GetState("f"); st.Chunks.Count() != 0 {
		t.Fatal("a chunk was marked although its data never became durable")
	}
}

func TestCommitRanges(t *testing.T) {
	s, _ := newStore(t)
	s.CreateStub("f", testStub(4*kib, kib))
	f, _ := s.OpenFile("f", unix.O_RDWR, 0)
	defer f.Close()
	syncs := 0
	s.hooks.syncData = func(fd int) error { syncs++; return unix.Fdatasync(fd) }
	st, err := s.CommitRanges(f, []Range{{0, kib}, {2 * kib, kib}})
	if err != nil || syncs != 1 || st.Chunks.Count() != 2 || len(st.Chunks.Has(Range{0, kib})) != 0 || len(st.Chunks.Has(Range{kib, kib})) != 1 {
		t.Fatalf("CommitRanges: %v, %d syncs, map %v", err, syncs, st.Chunks)
	}
	st, err = s.CommitRanges(f, []Range{{kib, kib}, {3 * kib, kib}})
	if err != nil || st.Chunks != nil || st.Flags.Has(hsm.Released) {
		t.Fatalf("completing CommitRanges: %v, %v", err, st.Flags)
	}
	s.hooks.syncData = func(int) error { return unix.EIO }
	s.CreateStub("g", testStub(4*kib, kib))
	g, _ := s.OpenFile("g", unix.O_RDWR, 0)
	defer g.Close()
	if _, err := s.CommitRanges(g, []Range{{0, kib}, {kib, kib}}); !errors.Is(err, unix.EIO) {
		t.Fatalf("failing sync: %v", err)
	}
	if st, _ := s.GetState("g"); st.Chunks.Count() != 0 {
		t.Fatal("marked without a sync")
	}
}

type memMaps struct {
	mu      sync.Mutex
	m       map[MapID][]byte
	deleted int
}

func (m *memMaps) LoadChunkMap(id MapID) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.m[id]
	if !ok {
		return nil, errors.New("no such map")
	}
	return bytes.Clone(p), nil
}

func (m *memMaps) SaveChunkMap(id MapID, p []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[id] = bytes.Clone(p)
	return nil
}

func (m *memMaps) DeleteChunkMap(id MapID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.m, id)
	m.deleted++
	return nil
}

func TestExternalChunkMap(t *testing.T) {
	s, _ := newStore(t)
	maps := &memMaps{m: map[MapID][]byte{}}
	s.SetMapStore(maps)
	const size, chunk = 4 * MaxInlineChunks * 16, 16 // 4×MaxInlineChunks chunks
	if err := s.CreateStub("f", testStub(size, chunk)); err != nil {
		t.Fatal(err)
	}
	if len(maps.m) != 1 {
		t.Fatalf("%d maps in the store", len(maps.m))
	}
	f, _ := s.OpenFile("f", unix.O_RDWR, 0)
	defer f.Close()
	hydrate(t, s, f, Range{0, size / 2})
	st, err := s.GetState("f")
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Has(Range{0, size}); !equalRanges(got, []Range{{size / 2, size / 2}}) {
		t.Fatalf("Has = %v", got)
	}
	p, _ := unixGetxattr(t, f)
	if len(p) > 128 {
		t.Errorf("record with an external map is %d bytes", len(p))
	}
	hydrate(t, s, f, Range{size / 2, size / 2})
	if len(maps.m) != 0 || maps.deleted != 1 {
		t.Fatalf("the map of a fetched file stays in the catalog: %d maps, %d deleted", len(maps.m), maps.deleted)
	}
	// Without a map store such a file is refused, not silently whole.
	s.SetMapStore(nil)
	if err := s.CreateStub("g", testStub(size, chunk)); !errors.Is(err, ErrMapTooLarge) {
		t.Fatalf("CreateStub without map store = %v", err)
	}
}

func unixGetxattr(t testing.TB, f *os.File) ([]byte, error) {
	buf := make([]byte, 64*kib)
	n, err := unix.Fgetxattr(int(f.Fd()), StateXattr, buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n], nil
}

func TestReplaceStub(t *testing.T) {
	s, root := newStore(t)
	reimport := func(old State) error { _, err := hsm.Reimport("f", old.Flags); return err }
	s.CreateStub("f", testStub(4*kib, kib))
	f, _ := s.OpenFile("f", unix.O_RDWR, 0)
	hydrate(t, s, f, Range{0, 4 * kib})
	f.Close()

	next := testStub(8*kib, kib)
	next.ETag = `"v2"`
	if err := s.ReplaceStub("f", next, reimport); err != nil {
		t.Fatal(err)
	}
	st, err := s.GetState("f")
	if err != nil || st.ETag != `"v2"` || st.Size != 8*kib || st.Version != 1 || st.Flags != importedFlags {
		t.Fatalf("replaced: %+v %v", st, err)
	}
	if lst, _ := s.Lstat("f"); lst.Blocks != 0 || lst.Size != 8*kib {
		t.Fatalf("replaced stub not sparse: %d blocks", lst.Blocks)
	}

	// A dirty file is never replaced (invariant 6).
	mustWrite(t, root+"/d", "local")
	s.SetState("d", State{Flags: hsm.Exists | hsm.Archived | hsm.Dirty})
	if err := s.ReplaceStub("d", next, reimport); !errors.Is(err, hsm.ErrDirty) {
		t.Fatalf("ReplaceStub(dirty) = %v", err)
	}
	// Nor a local file never exported.
	mustWrite(t, root+"/n", "new")
	if err := s.ReplaceStub("n", next, reimport); !errors.Is(err, hsm.ErrLocalOnly) {
		t.Fatalf("ReplaceStub(local) = %v", err)
	}
	// A write between the check and the swap undoes the swap.
	mustWrite(t, root+"/c", "clean")
	s.SetState("c", State{Flags: hsm.Exists | hsm.Archived, Version: 3})
	s.hooks.stubStep = func(step string) error {
		if step == "attrs" {
			g, _ := s.OpenFile("c", unix.O_RDWR, 0)
			s.BumpVersion(g)
			g.WriteAt([]byte("CHANGED"), 0)
			g.Close()
		}
		return nil
	}
	if err := s.ReplaceStub("c", next, reimport); !errors.Is(err, ErrChanged) {
		t.Fatalf("ReplaceStub racing a write = %v", err)
	}
	s.hooks.stubStep = nil
	if b, _ := os.ReadFile(root + "/c"); string(b) != "CHANGED" {
		t.Fatalf("local write lost: %q", b)
	}
	for _, name := range []string{"d", "n", "c"} {
		if lst, _ := s.Lstat(name); lst.Blocks == 0 {
			t.Errorf("%s lost its data", name)
		}
	}
	if n, _ := s.RemoveTempStubs("."); n != 0 {
		t.Errorf("%d temporary files left", n)
	}
	// A missing file is created.
	if err := s.ReplaceStub("new", next, reimport); err != nil {
		t.Fatal(err)
	}
}

func TestCheckStub(t *testing.T) {
	s, root := newStore(t)
	s.CreateStub("f", testStub(8*kib, kib))
	f, _ := s.OpenFile("f", unix.O_RDWR, 0)
	hydrate(t, s, f, Range{0, 2 * kib})
	f.Close()
	if c, err := s.CheckStub("f", false); err != nil || len(c.Problems) != 0 || !c.HasState {
		t.Fatalf("healthy stub: %+v %v", c, err)
	}
	mustWrite(t, root+"/local", "x")
	if c, err := s.CheckStub("local", true); err != nil || c.HasState || c.Repaired {
		t.Fatalf("local file: %+v %v", c, err)
	}
	// Crash between a truncation and its state update: the size no longer
	// matches.
	if err := os.Truncate(root+"/f", 3*kib); err != nil {
		t.Fatal(err)
	}
	c, err := s.CheckStub("f", false)
	if err != nil || len(c.Problems) != 1 || c.Repaired {
		t.Fatalf("size mismatch: %+v %v", c, err)
	}
	c, err = s.CheckStub("f", true)
	if err != nil || !c.Repaired {
		t.Fatalf("repair: %+v %v", c, err)
	}
	st, _ := s.GetState("f")
	lst, _ := s.Lstat("f")
	if lst.Size != 8*kib || lst.Blocks != 0 || st.Chunks.Count() != 0 || !st.Flags.Has(hsm.Released) {
		t.Fatalf("after repair: size %d blocks %d chunks %d flags %s", lst.Size, lst.Blocks, st.Chunks.Count(), st.Flags)
	}
	// A corrupt record is reported as such.
	unix.Setxattr(root+"/f", StateXattr, []byte{1, 2, 3}, 0)
	if _, err := s.CheckStub("f", true); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("corrupt record: %v", err)
	}
	// Inconsistent flags too.
	s.SetState("f", State{Flags: hsm.Released})
	if _, err := s.CheckStub("f", true); !errors.Is(err, ErrCorruptState) {
		t.Fatalf("inconsistent flags: %v", err)
	}
}

func equalRanges(a, b []Range) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestStateOriginCompatible: a record without an origin is format version 1,
// byte for byte as before the origin existed (a record written by an older
// ferry decodes unchanged); one with an origin is version 2 and survives
// an update through the store.
func TestStateOriginCompatible(t *testing.T) {
	// A version 1 record of an older ferry: exists archived, size 3,
	// version 1, raw empty ETag, no map.
	old := []byte{1, 0, 0x09, 3, 1, 0}
	old = binary.LittleEndian.AppendUint32(old, crc32.Checksum(old, castagnoli))
	st, err := DecodeState(old)
	if err != nil || st.Flags != hsm.Exists|hsm.Archived || st.Size != 3 || st.Version != 1 || st.Origin != "" {
		t.Fatalf("version 1 record: %+v, %v", st, err)
	}
	if p, _ := st.Encode(); !bytes.Equal(p, old) {
		t.Fatalf("re-encoded without origin as %v, want %v", p, old)
	}
	st.Origin = "a/b"
	p, err := st.Encode()
	if err != nil || p[0] != 2 {
		t.Fatalf("with an origin: version byte %d, %v", p[0], err)
	}
	if _, err := (&State{Origin: strings.Repeat("x", 4097)}).Encode(); err == nil {
		t.Fatal("an origin over 4096 bytes was encoded")
	}
	s, _ := newStore(t)
	if err := s.CreateStub("f", Stub{Size: 10, Mode: 0o644, UID: -1, GID: -1, ETag: `"e"`, Flags: importedFlags, ChunkSize: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err = s.UpdateState("f", func(st *State) error { st.Origin = "old/f"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename("f", "g", 0); err != nil {
		t.Fatal(err)
	}
	if _, err = s.UpdateState("g", func(st *State) error { st.Version++; return nil }); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetState("g")
	if err != nil || got.Origin != "old/f" || !got.Flags.Has(hsm.Released) || got.Chunks == nil {
		t.Fatalf("after rename and update: %+v, %v", got, err)
	}
}
