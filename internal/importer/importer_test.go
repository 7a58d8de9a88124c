package importer

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.RunMain(m)) }

// env is a store, a catalog and an importer serving one association
// "/ExtData" ↔ s3://<bucket>/data/ on a MinIO.
type env struct {
	t      testing.TB
	mc     *testutil.MinIO
	bucket string
	dir    string
	st     *store.Store
	cat    catalog.Catalog
	im     *Importer
	a      api.DataRepositoryAssociation
	cfg    Config
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	return newEnvOn(t, testutil.SharedMinIO(t), cfg)
}

// newEnvOn is newEnv on MinIO server mc.
func newEnvOn(t testing.TB, mc *testutil.MinIO, cfg Config) *env {
	t.Helper()
	e := &env{t: t, mc: mc, bucket: mc.Bucket(t), dir: t.TempDir()}
	var err error
	if e.st, err = store.Open(e.dir); err != nil {
		t.Fatal(err)
	}
	if e.cat, err = catalog.OpenSQLite(context.Background(), e.st.MetaPath()+"/catalog.db", catalog.Options{}); err != nil {
		t.Fatal(err)
	}
	e.st.SetMapStore(e.cat)
	t.Cleanup(func() { e.cat.Close(); e.st.Close() })
	e.a = api.DataRepositoryAssociation{
		AssociationId:         "dra-0123456789abcdef0",
		FileSystemPath:        "/ExtData",
		DataRepositoryPath:    "s3://" + e.bucket + "/data/",
		ImportedFileChunkSize: 1024,
		Lifecycle:             api.LifecycleAvailable,
	}
	if err := e.st.MkdirAll("ExtData", 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.Store, cfg.Catalog, cfg.S3 = e.st, e.cat, mc.Client(t)
	e.cfg = cfg
	e.im = e.start()
	return e
}

// start makes a new importer over the env's store and catalog.
func (e *env) start() *Importer {
	im := New(e.cfg)
	im.SetAssociations(dra.NewTable([]api.DataRepositoryAssociation{e.a}, nil))
	e.t.Cleanup(func() { im.Close() })
	return im
}

func (e *env) put(key string, body []byte, meta map[string]string) string {
	e.t.Helper()
	out, err := e.cfg.S3.S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(e.bucket), Key: aws.String(key), Body: bytes.NewReader(body), Metadata: meta,
	})
	if err != nil {
		e.t.Fatalf("put %s: %v", key, err)
	}
	return aws.ToString(out.ETag)
}

func (e *env) lstat(rel string) unix.Stat_t {
	e.t.Helper()
	st, err := e.st.Lstat(rel)
	if err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *env) listed(dir string) {
	e.t.Helper()
	if err := e.im.EnsureListed(context.Background(), dir); err != nil {
		e.t.Fatalf("EnsureListed(%s): %v", dir, err)
	}
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// TestEnsureListedTree lists a tree twice: with the objects' metadata
// from the listing (MinIO's extension, no HEAD per file) and with a HEAD
// per file; both make the same entries.
func TestEnsureListedTree(t *testing.T) {
	heads := map[bool]int64{}
	for _, headEach := range []bool{false, true} {
		t.Run(map[bool]string{false: "listed-metadata", true: "head-each"}[headEach], func(t *testing.T) {
			heads[headEach] = ensureListedTree(t, headEach)
		})
	}
	if d := heads[true] - heads[false]; d != 3 {
		t.Errorf("HEADs with a HEAD per file %d, with listed metadata %d: want 3 more (a.txt, b.bin, link)", heads[true], heads[false])
	}
}

// ensureListedTree is TestEnsureListedTree with HEADs of every file
// (headEach) or not; it returns the HEADs the listing of d sent.
func ensureListedTree(t *testing.T, headEach bool) int64 {
	e := newEnv(t, Config{HeadEach: headEach})
	mtime := time.Date(2020, 7, 17, 16, 22, 0, 123456789, time.UTC)
	e.put("data/d/a.txt", []byte("hello"), map[string]string{
		"file-permissions": "0100640", "file-owner": "1000", "file-group": "1001",
		"file-mtime": strconv.FormatInt(mtime.UnixNano(), 10) + "ns",
	})
	e.put("data/d/b.bin", []byte("no headers"), nil)
	e.put("data/d/sub/", nil, map[string]string{"file-permissions": "0040700", "file-owner": "5", "file-group": "6"})
	e.put("data/d/sub/c", []byte("c"), nil)
	e.put("data/d/implicit/x", []byte("x"), nil)
	e.put("data/d/link", []byte("a.txt"), map[string]string{"file-permissions": "0120777"})
	e.put("data/top", []byte("top"), nil)
	e.put("elsewhere/no", []byte("outside the prefix"), nil)

	e.listed("ExtData")
	if st := e.lstat("ExtData/d"); st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o7777 != 0o755 || st.Uid != 0 {
		t.Errorf("implicit directory d: mode %o uid %d", st.Mode, st.Uid)
	}
	if _, err := e.st.Lstat("ExtData/d/a.txt"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("d was listed before anyone looked into it: %v", err)
	}
	before := e.im.Stats()
	e.listed("ExtData/d")
	after := e.im.Stats()

	a := e.lstat("ExtData/d/a.txt")
	if a.Mode != unix.S_IFREG|0o640 || a.Uid != 1000 || a.Gid != 1001 || a.Size != 5 {
		t.Errorf("a.txt: mode %o owner %d:%d size %d", a.Mode, a.Uid, a.Gid, a.Size)
	}
	if got := time.Unix(a.Mtim.Sec, a.Mtim.Nsec); !got.Equal(mtime) {
		t.Errorf("a.txt mtime %v, want %v", got, mtime)
	}
	if a.Blocks != 0 {
		t.Errorf("a stub uses %d blocks", a.Blocks)
	}
	st, err := e.st.GetState("ExtData/d/a.txt")
	if err != nil || st.Flags != hsm.Imported() || st.Size != 5 || st.Chunks == nil || st.Chunks.Count() != 0 {
		t.Errorf("a.txt state %+v, %v", st, err)
	}
	b := e.lstat("ExtData/d/b.bin")
	if b.Mode != unix.S_IFREG|0o644 || b.Uid != 0 || b.Gid != 0 {
		t.Errorf("b.bin without headers: mode %o owner %d:%d", b.Mode, b.Uid, b.Gid)
	}
	if time.Since(time.Unix(b.Mtim.Sec, 0)) > time.Hour {
		t.Errorf("b.bin mtime %v is not the object's LastModified", time.Unix(b.Mtim.Sec, 0))
	}
	if s := e.lstat("ExtData/d/sub"); s.Mode != unix.S_IFDIR|0o700 || s.Uid != 5 || s.Gid != 6 {
		t.Errorf("sub from its dir object: mode %o owner %d:%d", s.Mode, s.Uid, s.Gid)
	}
	if s := e.lstat("ExtData/d/implicit"); s.Mode != unix.S_IFDIR|0o755 || time.Since(time.Unix(s.Mtim.Sec, 0)) > time.Hour {
		t.Errorf("implicit: mode %o mtime %v", s.Mode, time.Unix(s.Mtim.Sec, 0))
	}
	if tgt, err := e.st.Readlink("ExtData/d/link"); err != nil || tgt != "a.txt" {
		t.Errorf("symlink: %q, %v", tgt, err)
	}
	if d := after.StubsCreated - before.StubsCreated; d != 2 {
		t.Errorf("%d stubs created in d, want 2", d)
	}
	if d := after.SymlinksCreated - before.SymlinksCreated; d != 1 {
		t.Errorf("%d symlinks", d)
	}
	if d, want := after.ListedMetadata-before.ListedMetadata, map[bool]int64{false: 3, true: 0}[headEach]; d != want {
		t.Errorf("%d files imported from the listing's metadata, want %d", d, want)
	}
	heads := after.HeadRequests - before.HeadRequests
	if _, ok, err := e.cat.Listed(context.Background(), "ExtData/d"); !ok || err != nil {
		t.Errorf("d not marked listed in the catalog: %v", err)
	}

	// Listed: no more requests, here or after a restart.
	e.listed("ExtData/d")
	e.im = e.start()
	e.listed("ExtData/d")
	e.listed("ExtData")
	if s := e.im.Stats(); s.ListRequests != 0 || s.HeadRequests != 0 {
		t.Errorf("listing again after a restart sent %d lists, %d heads", s.ListRequests, s.HeadRequests)
	}
	// Outside every association: nothing.
	e.listed(".")
	if err := e.st.Mkdir("local", 0o755); err != nil {
		t.Fatal(err)
	}
	e.listed("local")
	if s := e.im.Stats(); s.ListRequests != 0 {
		t.Errorf("a directory outside the association was listed")
	}
	return heads
}

func TestLocalEntryWins(t *testing.T) {
	e := newEnv(t, Config{})
	e.put("data/f", []byte("remote"), nil)
	e.put("data/dir/x", []byte("x"), nil)
	if err := os.WriteFile(e.dir+"/ExtData/f", []byte("local"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.dir+"/ExtData/dir", []byte("local file named like a prefix"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.listed("ExtData")
	if b, _ := os.ReadFile(e.dir + "/ExtData/f"); string(b) != "local" {
		t.Errorf("local file overwritten: %q", b)
	}
	if st := e.lstat("ExtData/dir"); st.Mode&unix.S_IFMT != unix.S_IFREG {
		t.Errorf("local file replaced by a directory")
	}
	if s := e.im.Stats(); s.LocalConflicts != 2 {
		t.Errorf("%d local conflicts counted, want 2", s.LocalConflicts)
	}
}

// A key "a" next to keys "a/…" cannot be stored in MinIO (its objects are
// files); TestRefusedKeysCountedNeverFollowed covers that clash with a fake
// listing. Here: a file key whose headers say it is a directory.
func TestTypeMismatchByHeaders(t *testing.T) {
	e := newEnv(t, Config{})
	e.put("data/notadir", []byte("x"), map[string]string{"file-permissions": "0040755"})
	e.listed("ExtData")
	if _, err := e.st.Lstat("ExtData/notadir"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("a file key with a directory mode was imported: %v", err)
	}
	if s := e.im.Stats(); s.RefusedByCode[CodeTypeMismatch] != 1 {
		t.Errorf("refused %v, want one %s", s.RefusedByCode, CodeTypeMismatch)
	}
}

func TestConcurrentEnsureListedListsOnce(t *testing.T) {
	e := newEnv(t, Config{})
	for i := range 50 {
		e.put("data/many/f"+strconv.Itoa(i), []byte("x"), nil)
	}
	e.listed("ExtData")
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- e.im.EnsureListed(context.Background(), "ExtData/many") }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s := e.im.Stats()
	if s.DirsListed != 2 || s.StubsCreated != 50 || s.LocalConflicts != 0 {
		t.Errorf("listed %d dirs, %d stubs, %d conflicts: want 2, 50, 0", s.DirsListed, s.StubsCreated, s.LocalConflicts)
	}
}

func TestImportAll(t *testing.T) {
	e := newEnv(t, Config{})
	n := 0
	for _, d := range []string{"", "a/", "a/b/", "a/b/c/", "z/"} {
		for i := range 5 {
			e.put("data/"+d+"f"+strconv.Itoa(i), []byte("x"), nil)
			n++
		}
	}
	e.put("data/a/l", []byte("f0"), map[string]string{"file-permissions": "0120777"})
	var calls int
	c, err := e.im.ImportAll(context.Background(), e.a, func(ImportCounts) { calls++ })
	if err != nil {
		t.Fatal(err)
	}
	if c.Files != int64(n) || c.Dirs != 4 || c.Symlinks != 1 || c.Refused != 0 || calls != 5 {
		t.Errorf("counts %+v after %d progress calls", c, calls)
	}
	for _, d := range []string{"ExtData", "ExtData/a", "ExtData/a/b", "ExtData/a/b/c", "ExtData/z"} {
		if _, ok, _ := e.cat.Listed(context.Background(), d); !ok {
			t.Errorf("%s not marked listed", d)
		}
	}
	lists := e.im.Stats().ListRequests
	e.listed("ExtData/a/b/c")
	if e.im.Stats().ListRequests != lists {
		t.Error("a directory ImportAll listed was listed again")
	}
	// Again: nothing new, nothing overwritten.
	c, err = e.im.ImportAll(context.Background(), e.a, nil)
	if err != nil || c.Files != 0 {
		t.Errorf("second ImportAll: %+v, %v", c, err)
	}
}
