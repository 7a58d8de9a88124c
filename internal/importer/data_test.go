package importer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

const mib = 1 << 20

// open opens rel read-only in the store, as the mount does for a reader.
func (e *env) open(rel string) *os.File {
	e.t.Helper()
	f, err := e.st.OpenFile(rel, unix.O_RDONLY, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { f.Close() })
	return f
}

// read is what the mount does for a read: EnsureData, then pread.
func (e *env) read(im *Importer, rel string, f *os.File, off, n int64) ([]byte, error) {
	if err := im.EnsureData(context.Background(), rel, f, off, n); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	k, err := f.ReadAt(b, off)
	if err == io.EOF {
		err = nil
	}
	return b[:k], err
}

// bigFile puts an object of size bytes and lists it as ExtData/big.
func (e *env) bigFile(size int) []byte {
	e.t.Helper()
	body := randBytes(size, uint64(size))
	e.put("data/big", body, nil)
	e.listed("ExtData")
	return body
}

func TestPartialReadFetchesOnlyItsChunks(t *testing.T) {
	e := newEnv(t, Config{Readahead: -1})
	body := e.bigFile(64 * mib)
	f := e.open("ExtData/big")
	got, err := e.read(e.im, "ExtData/big", f, 40*mib+100, mib)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body[40*mib+100:41*mib+100]) {
		t.Fatal("wrong bytes")
	}
	s := e.im.Stats()
	// [40 MiB+100, 41 MiB+100) touches 17 chunks of 64 KiB (a 64 MiB
	// file's unit: chunkFor).
	if s.GetRequests != 1 || s.BytesFetched != 17*MinChunkSize {
		t.Errorf("%d GETs, %d bytes fetched; want 1 GET of 17 chunks of 64 KiB", s.GetRequests, s.BytesFetched)
	}
	// Readers go on once bytes land; the commit (fdatasync, mark) follows.
	testutil.Eventually(t, 5*time.Second, "the chunks committed", func() bool {
		st, err := e.st.GetState("ExtData/big")
		return err == nil && st.Chunks.Count() == 17 && st.Flags.Has(hsm.Released)
	})
	// A read across a chunk boundary fetches the two chunks, one GET.
	if _, err := e.read(e.im, "ExtData/big", f, 4*mib-10, 20); err != nil {
		t.Fatal(err)
	}
	if s := e.im.Stats(); s.GetRequests != 2 || s.BytesFetched != 19*MinChunkSize {
		t.Errorf("%d GETs, %d bytes after the boundary read", s.GetRequests, s.BytesFetched)
	}
	// Bytes never fetched are still holes in the store file: the read of
	// them fetches, never returns zeros.
	got, err = e.read(e.im, "ExtData/big", f, 60*mib, 16)
	if err != nil || !bytes.Equal(got, body[60*mib:60*mib+16]) {
		t.Fatalf("read of an unfetched region: %v", err)
	}
}

func TestConcurrentReadersOneGET(t *testing.T) {
	e := newEnv(t, Config{Readahead: -1})
	body := e.bigFile(8 * mib)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f, err := e.st.OpenFile("ExtData/big", unix.O_RDONLY, 0)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			off := int64(i) * 4096
			got, err := e.read(e.im, "ExtData/big", f, off, 4096)
			if err == nil && !bytes.Equal(got, body[off:off+4096]) {
				err = errors.New("wrong bytes")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := e.im.Stats(); s.GetRequests != 1 {
		t.Errorf("16 concurrent readers of one chunk sent %d GETs (%d waited)", s.GetRequests, s.DedupWaits)
	}
}

func TestSequentialReadaheadAndFetched(t *testing.T) {
	e := newEnv(t, Config{})
	body := e.bigFile(40*mib + 123)
	f := e.open("ExtData/big")
	var got []byte
	for off := int64(0); off < int64(len(body)); off += 128 << 10 {
		b, err := e.read(e.im, "ExtData/big", f, off, 128<<10)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, b...)
	}
	if !bytes.Equal(got, body) {
		t.Fatal("sequential read returned wrong bytes")
	}
	s := e.im.Stats()
	if s.Readahead == 0 {
		t.Error("a sequential read started no readahead")
	}
	if s.BytesFetched != int64(len(body)) {
		t.Errorf("fetched %d bytes of %d", s.BytesFetched, len(body))
	}
	// Readahead fetches many chunks in one GET: about 2 MiB on average
	// (the window starts at 1 MiB and grows with the run, GETs are half of
	// it), not one GET per 128 KiB read.
	t.Logf("%d GETs for 40 MiB (%d bytes ahead)", s.GetRequests, s.ReadaheadBytes)
	if s.GetRequests > 24 {
		t.Errorf("a sequential read of 40 MiB sent %d GETs; readahead should coalesce them", s.GetRequests)
	}
	testutil.Eventually(t, 5*time.Second, "the fully read file exists archived, no map", func() bool {
		st, err := e.st.GetState("ExtData/big")
		return err == nil && st.Flags == hsm.Exists|hsm.Archived && st.Chunks == nil
	})
}

func TestObjectChangedDuringRead(t *testing.T) {
	e := newEnv(t, Config{Readahead: -1})
	e.bigFile(16 * mib)
	f := e.open("ExtData/big")
	if _, err := e.read(e.im, "ExtData/big", f, 0, 10); err != nil {
		t.Fatal(err)
	}
	newBody := bytes.Repeat([]byte("new version "), mib)
	newETag := e.put("data/big", newBody, map[string]string{"file-permissions": "0100600"})
	_, err := e.read(e.im, "ExtData/big", f, 8*mib, 10)
	var re *ReadError
	if !errors.As(err, &re) || re.Code != CodeChanged || store.Errno(err) != unix.EIO {
		t.Fatalf("read after the object changed: %v (errno %v), want %s and EIO", err, store.Errno(err), CodeChanged)
	}
	// Chunk 0, fetched before the change, is still the old version on the
	// old inode; the next read of the old handle fails too, it never mixes.
	if _, err := e.read(e.im, "ExtData/big", f, 12*mib, 10); !errors.As(err, &re) {
		t.Fatalf("second read of the changed file: %v", err)
	}
	// The re-import replaces the stub, then counts itself: wait for both.
	testutil.Eventually(t, 10*time.Second, "the stub re-imported", func() bool {
		st, err := e.st.GetState("ExtData/big")
		return err == nil && st.ETag == newETag && e.im.Stats().Reimports > 0
	})
	if s := e.im.Stats(); s.Reimports != 1 || s.Changed == 0 {
		t.Errorf("reimports %d changed %d", s.Reimports, s.Changed)
	}
	st := e.lstat("ExtData/big")
	if st.Size != int64(len(newBody)) || st.Mode&0o777 != 0o600 {
		t.Errorf("re-imported stub: size %d mode %o", st.Size, st.Mode)
	}
	f2 := e.open("ExtData/big")
	got, err := e.read(e.im, "ExtData/big", f2, 0, int64(len(newBody)))
	if err != nil || !bytes.Equal(got, newBody) {
		t.Fatalf("reading the re-imported file: %v", err)
	}
}

func TestRestartKeepsChunkMap(t *testing.T) {
	e := newEnv(t, Config{Readahead: -1})
	body := e.bigFile(32 * mib)
	f := e.open("ExtData/big")
	if _, err := e.read(e.im, "ExtData/big", f, 0, 8*mib); err != nil {
		t.Fatal(err)
	}
	e.im.Close()
	im := e.start()
	f2 := e.open("ExtData/big")
	got, err := e.read(im, "ExtData/big", f2, 0, int64(len(body)))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read after restart: %v", err)
	}
	if s := im.Stats(); s.BytesFetched != 24*mib {
		t.Errorf("after a restart %d bytes were fetched, want the 24 MiB not fetched before", s.BytesFetched)
	}
}

func TestLargeMapInCatalog(t *testing.T) {
	// A map over store.MaxInlineChunks goes to the catalog: 16,385 chunks
	// of 1 KiB.
	e := newEnv(t, Config{ChunkSize: 1024, Readahead: -1})
	size := (store.MaxInlineChunks + 1) * 1024
	body := e.bigFile(size)
	f := e.open("ExtData/big")
	got, err := e.read(e.im, "ExtData/big", f, int64(size-2000), 2000)
	if err != nil || !bytes.Equal(got, body[size-2000:]) {
		t.Fatalf("read: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, "a catalog map with 2 chunks", func() bool {
		st, err := e.st.GetState("ExtData/big")
		return err == nil && st.MapID != nil && st.Chunks.Count() == 2
	})
	// A new importer (a restart) reads the map back from the catalog.
	e.im.Close()
	im := e.start()
	f2 := e.open("ExtData/big")
	if _, err := e.read(im, "ExtData/big", f2, int64(size-2000), 2000); err != nil || im.Stats().GetRequests != 0 {
		t.Fatalf("after restart: %v, %d GETs", err, im.Stats().GetRequests)
	}
}

func TestReleaseAndRefetch(t *testing.T) {
	e := newEnv(t, Config{})
	body := e.bigFile(10 * mib)
	if err := e.im.Restore(context.Background(), "ExtData/big", nil); err != nil {
		t.Fatal(err)
	}
	st, _ := e.st.GetState("ExtData/big")
	if st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("after restore: %v", st.Flags)
	}
	if e.lstat("ExtData/big").Blocks == 0 {
		t.Fatal("restored file has no blocks")
	}
	// Open: refused with a clear reason.
	inUse := true
	e.cfg.InUse = func(string) bool { return inUse }
	e.im = e.start()
	err := e.im.Release(context.Background(), "ExtData/big")
	if !errors.Is(err, hsm.ErrBusy) {
		t.Fatalf("release of an open file: %v", err)
	}
	t.Logf("open: %v", err)
	inUse = false
	if err := e.im.Release(context.Background(), "ExtData/big"); err != nil {
		t.Fatal(err)
	}
	st, _ = e.st.GetState("ExtData/big")
	if st.Flags != hsm.Imported() || st.Chunks == nil || st.Chunks.Count() != 0 {
		t.Fatalf("after release: %v %v", st.Flags, st.Chunks)
	}
	if b := e.lstat("ExtData/big").Blocks; b != 0 {
		t.Errorf("released file still uses %d blocks", b)
	}
	before := e.im.Stats().BytesFetched
	f := e.open("ExtData/big")
	got, err := e.read(e.im, "ExtData/big", f, 0, int64(len(body)))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("read after release: %v", err)
	}
	if d := e.im.Stats().BytesFetched - before; d != int64(len(body)) {
		t.Errorf("read after release fetched %d bytes", d)
	}

	// Dirty: refused.
	if _, err := e.st.UpdateState("ExtData/big", func(s *store.State) error { s.Flags |= hsm.Dirty; return nil }); err != nil {
		t.Fatal(err)
	}
	err = e.im.Release(context.Background(), "ExtData/big")
	if !errors.Is(err, hsm.ErrDirty) {
		t.Fatalf("release of a dirty file: %v", err)
	}
	t.Logf("dirty: %v", err)
	// Local only: refused.
	if err := os.WriteFile(e.dir+"/ExtData/local", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.im.Release(context.Background(), "ExtData/local"); !errors.Is(err, hsm.ErrNotArchived) {
		t.Fatalf("release of a local file: %v", err)
	}
}

func TestRestoreProgressAndAction(t *testing.T) {
	e := newEnv(t, Config{})
	e.bigFile(20 * mib)
	var moved int64
	var sawRunning bool
	err := e.im.Restore(context.Background(), "ExtData/big", func(n int64) {
		moved += n
		if a := e.im.Action("ExtData/big"); a.Action == hsm.ActionRestore {
			sawRunning = true
		}
	})
	if err != nil || moved != 20*mib || !sawRunning {
		t.Fatalf("restore: %v, moved %d, running seen %v", err, moved, sawRunning)
	}
	if a := e.im.Action("ExtData/big"); a != hsm.Noop {
		t.Errorf("action after restore: %+v", a)
	}
}

// TestExclusiveTruncateStopsFetches empties a released file while
// readahead is running, as the mount does for an O_TRUNC open: no fetch may
// write object bytes into it afterwards (they would extend the emptied file
// with data of the object, over what the writer then writes).
func TestExclusiveTruncateStopsFetches(t *testing.T) {
	e := newEnv(t, Config{})
	e.bigFile(64 * mib)
	f := e.open("ExtData/big")
	for off := int64(0); off < 10*mib; off += 128 << 10 {
		if _, err := e.read(e.im, "ExtData/big", f, off, 128<<10); err != nil {
			t.Fatal(err)
		}
	}
	if e.im.Stats().Readahead == 0 {
		t.Fatal("no readahead started")
	}
	w, err := e.st.OpenFile("ExtData/big", unix.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	err = e.im.Exclusive(context.Background(), "ExtData/big", w, func() error {
		if err := w.Truncate(0); err != nil {
			return err
		}
		_, err := e.st.UpdateFileState(w, func(s *store.State) error {
			s.Flags, s.Chunks = hsm.Truncated(s.Flags), nil
			return nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("local"), 0); err != nil {
		t.Fatal(err)
	}
	// Every fetch started finishes (none is cancelled: Close would).
	testutil.Eventually(t, 30*time.Second, "the fetches done and committed", func() bool {
		e.im.imu.Lock()
		defer e.im.imu.Unlock()
		for _, it := range e.im.items {
			if it.users > 0 {
				return false
			}
		}
		return true
	})
	b, err := os.ReadFile(e.dir + "/ExtData/big")
	if err != nil || string(b) != "local" {
		t.Fatalf("after an exclusive truncate and a write: %d bytes (%v), want just the write", len(b), err)
	}
}

// TestShortRunNoReadahead: a 1 MiB read arrives from the kernel as eight
// sequential 128 KiB requests; it starts little readahead (a NetCDF header
// read, a `dd count=1`: at most the smallest window, 1 MiB), while a
// longer run fetches further ahead.
func TestShortRunNoReadahead(t *testing.T) {
	e := newEnv(t, Config{})
	e.bigFile(64 * mib)
	f := e.open("ExtData/big")
	for off := int64(20 * mib); off < 21*mib; off += 128 << 10 {
		if _, err := e.read(e.im, "ExtData/big", f, off, 128<<10); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "no fetch in flight", func() bool { return e.im.Stats().FetchesInFlight == 0 })
	if s := e.im.Stats(); s.GetRequests > 4 || s.BytesFetched > 2*mib {
		t.Errorf("a 1 MiB read: %d GETs, %d bytes fetched; want at most 4 GETs and 2 MiB", s.GetRequests, s.BytesFetched)
	}
	for off := int64(21 * mib); off < 30*mib; off += 128 << 10 {
		if _, err := e.read(e.im, "ExtData/big", f, off, 128<<10); err != nil {
			t.Fatal(err)
		}
	}
	if s := e.im.Stats(); s.ReadaheadBytes < 4*mib {
		t.Errorf("a 10 MiB sequential run fetched %d bytes ahead; want its window, half the run", s.ReadaheadBytes)
	}
}

// TestHydrationKeepsMtime: fetching a released file's bytes does not
// change its mtime (the mount shows the store file's; a moving mtime is
// also what makes the kernel drop a FUSE file's cached pages).
func TestHydrationKeepsMtime(t *testing.T) {
	e := newEnv(t, Config{})
	body := e.bigFile(40 * mib)
	before, err := e.st.Lstat("ExtData/big")
	if err != nil {
		t.Fatal(err)
	}
	f := e.open("ExtData/big")
	for off := int64(0); off < int64(len(body)); off += mib {
		got, err := e.read(e.im, "ExtData/big", f, off, mib)
		if err != nil || !bytes.Equal(got, body[off:off+mib]) {
			t.Fatalf("read at %d: %v", off, err)
		}
	}
	testutil.Eventually(t, 10*time.Second, "the file fetched", func() bool {
		st, err := e.st.GetState("ExtData/big")
		return err == nil && !st.Flags.Has(hsm.Released)
	})
	after, err := e.st.Lstat("ExtData/big")
	if err != nil {
		t.Fatal(err)
	}
	if after.Mtim != before.Mtim {
		t.Errorf("mtime %v after hydration, %v before", time.Unix(after.Mtim.Unix()), time.Unix(before.Mtim.Unix()))
	}
}

// TestRestoreAfterRename: a released file read once under its first name
// (the importer keeps an item for its inode), then renamed, its object
// moved to the new name's key and the old key deleted (what the exporter
// does), is restored under the new name from the new key (TestModel: the
// restore of a truncate read the deleted old key, EIO).
func TestRestoreAfterRename(t *testing.T) {
	e := newEnv(t, Config{Readahead: -1})
	body := e.bigFile(12 * mib)
	f := e.open("ExtData/big")
	if _, err := e.read(e.im, "ExtData/big", f, 0, 4096); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Rename("ExtData/big", "ExtData/moved", 0); err != nil {
		t.Fatal(err)
	}
	c := e.cfg.S3.S3
	if _, err := c.CopyObject(context.Background(), &s3.CopyObjectInput{
		Bucket: aws.String(e.bucket), Key: aws.String("data/moved"), CopySource: aws.String(e.bucket + "/data/big"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(e.bucket), Key: aws.String("data/big")}); err != nil {
		t.Fatal(err)
	}
	if err := e.im.Restore(context.Background(), "ExtData/moved", nil); err != nil {
		t.Fatalf("restore under the new name: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(e.dir, "ExtData/moved"))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("restored content: %d bytes, %v", len(got), err)
	}
}
