package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func mustWrite(t testing.TB, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestOpenat2Available(t *testing.T) {
	if err := CheckOpenat2(); err != nil {
		t.Fatalf("kernel %s: %v", kernel(), err)
	}
}

func kernel() string {
	var u unix.Utsname
	unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

// Invariant 4: no path, and no symlink in the store, takes the daemon
// outside the store root.
func TestEscapesRefused(t *testing.T) {
	s, root := newStore(t)
	mustWrite(t, root+"/sub/f", "inside")
	if err := os.Symlink("/", root+"/escape"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..", root+"/sub/up"); err != nil {
		t.Fatal(err)
	}
	// A symlink to a directory inside the store is refused too:
	// RESOLVE_NO_SYMLINKS refuses every symlink during resolution, so the
	// daemon never has to decide whether a target stays inside.
	if err := os.Symlink("sub", root+"/inlink"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/f", root+"/flink"); err != nil {
		t.Fatal(err)
	}

	invalid := []string{"", "/", "/etc/passwd", "../x", "a/../../x", "sub/..", "./sub", "sub/./f", "sub//f", "sub/", "a\x00b"}
	for _, rel := range invalid {
		_, err := s.Lstat(rel)
		if !errors.Is(err, ErrInvalidPath) || !errors.Is(err, unix.EINVAL) {
			t.Errorf("Lstat(%q) = %v; want ErrInvalidPath/EINVAL", rel, err)
		}
		if _, err := s.OpenFile(rel, unix.O_RDONLY, 0); !errors.Is(err, unix.EINVAL) {
			t.Errorf("OpenFile(%q) = %v; want EINVAL", rel, err)
		}
		if err := s.Mkdir(rel, 0o755); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Mkdir(%q) = %v; want EINVAL", rel, err)
		}
	}

	viaLink := []string{"escape/etc/passwd", "escape/etc", "escape/tmp/x", "sub/up/sub/f", "inlink/f"}
	for _, rel := range viaLink {
		if f, err := s.OpenFile(rel, unix.O_RDONLY, 0); err == nil {
			f.Close()
			t.Errorf("OpenFile(%q) succeeded through a symlink", rel)
		} else if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.EXDEV) {
			t.Errorf("OpenFile(%q) = %v; want ELOOP", rel, err)
		}
		if _, err := s.Lstat(rel); err == nil {
			t.Errorf("Lstat(%q) succeeded through a symlink", rel)
		}
		if err := s.Mkdir(rel+"x", 0o755); err == nil {
			t.Errorf("Mkdir(%q) succeeded through a symlink", rel+"x")
		}
		if err := s.CreateStub(rel+"x", Stub{Size: 1, Mode: 0o644, UID: -1, GID: -1, Flags: importedFlags, ChunkSize: 1}); err == nil {
			t.Errorf("CreateStub(%q) succeeded through a symlink", rel+"x")
		}
		if err := s.Unlink(rel); err == nil {
			t.Errorf("Unlink(%q) succeeded through a symlink", rel)
		}
	}
	if _, err := os.Stat("/tmp/x"); err == nil {
		t.Log("note: /tmp/x exists independently of this test")
	}
	// The final component: opening a symlink is refused, even one to a
	// file inside; the symlink itself is visible as a symlink.
	for _, rel := range []string{"escape", "inlink", "flink"} {
		if f, err := s.OpenFile(rel, unix.O_RDONLY, 0); err == nil {
			f.Close()
			t.Errorf("OpenFile(%q) followed a final symlink", rel)
		} else if !errors.Is(err, unix.ELOOP) {
			t.Errorf("OpenFile(%q) = %v; want ELOOP", rel, err)
		}
		st, err := s.Lstat(rel)
		if err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("Lstat(%q) = %o, %v; want a symlink", rel, st.Mode, err)
		}
		if _, err := s.Readdir(rel); err == nil {
			t.Errorf("Readdir(%q) followed a symlink", rel)
		}
		if err := s.Truncate(rel, 0); err == nil {
			t.Errorf("Truncate(%q) followed a symlink", rel)
		}
		if err := s.Chmod(rel, 0o600); !errors.Is(err, unix.EOPNOTSUPP) {
			t.Errorf("Chmod(%q) = %v; want EOPNOTSUPP", rel, err)
		}
	}
	if got, _ := os.ReadFile(root + "/sub/f"); string(got) != "inside" {
		t.Fatalf("sub/f changed: %q", got)
	}
	// The real path works.
	f, err := s.OpenFile("sub/f", unix.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	f.Close()
	if string(b) != "inside" {
		t.Fatalf("read %q", b)
	}
	// Errors name the relative path.
	_, err = s.OpenFile("escape/etc/passwd", unix.O_RDONLY, 0)
	if err == nil || !strings.Contains(err.Error(), "escape/etc/passwd") {
		t.Errorf("error %v does not name the path", err)
	}
}

func TestHiddenMetaDir(t *testing.T) {
	s, root := newStore(t)
	if st, err := os.Stat(root + "/" + MetaDir); err != nil || !st.IsDir() {
		t.Fatalf("Open did not create %s: %v", MetaDir, err)
	}
	mustWrite(t, root+"/"+MetaDir+"/catalog.db", "x")
	mustWrite(t, root+"/d/"+TempPrefix+"0123", "tmp")
	mustWrite(t, root+"/d/"+MetaDir, "an ordinary name below the root")
	for _, rel := range []string{MetaDir, MetaDir + "/catalog.db", "d/" + TempPrefix + "0123", TempPrefix + "x"} {
		if _, err := s.Lstat(rel); !errors.Is(err, ErrReserved) || !errors.Is(err, unix.ENOENT) {
			t.Errorf("Lstat(%q) = %v; want ErrReserved/ENOENT", rel, err)
		}
		if _, err := s.OpenFile(rel, unix.O_RDONLY, 0); !errors.Is(err, unix.ENOENT) {
			t.Errorf("OpenFile(%q) = %v; want ENOENT", rel, err)
		}
		if err := s.Unlink(rel); !errors.Is(err, unix.ENOENT) {
			t.Errorf("Unlink(%q) = %v; want ENOENT", rel, err)
		}
		if err := s.Rename("d/"+MetaDir, rel, 0); !errors.Is(err, ErrReserved) || !errors.Is(err, unix.EPERM) {
			t.Errorf("Rename(to %q) = %v; want ErrReserved/EPERM", rel, err)
		}
	}
	if err := s.Mkdir(MetaDir, 0o755); !errors.Is(err, unix.EPERM) {
		t.Errorf("Mkdir(%s) = %v; want EPERM", MetaDir, err)
	}
	if _, err := s.OpenFile(MetaDir+"/new", unix.O_CREAT|unix.O_WRONLY, 0o644); !errors.Is(err, unix.EPERM) {
		t.Errorf("create in %s = %v; want EPERM", MetaDir, err)
	}
	if err := s.Symlink("x", "d/"+TempPrefix+"1"); !errors.Is(err, unix.EPERM) {
		t.Errorf("Symlink to a temp name = %v; want EPERM", err)
	}
	if _, err := s.Lstat("d/" + MetaDir); err != nil {
		t.Errorf("%s below the root must be an ordinary name: %v", MetaDir, err)
	}
	names := readAll(t, s, ".")
	if strings.Join(names, ",") != "d" {
		t.Errorf("root lists %v; want [d]", names)
	}
	names = readAll(t, s, "d")
	if strings.Join(names, ",") != MetaDir {
		t.Errorf("d lists %v; want [%s]", names, MetaDir)
	}
}

func readAll(t testing.TB, s *Store, rel string) []string {
	t.Helper()
	d, err := s.Readdir(rel)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var names []string
	for {
		es, err := d.Next(0)
		for _, e := range es {
			names = append(names, e.Name)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(names)
	return names
}

func TestReaddirBatches(t *testing.T) {
	s, root := newStore(t)
	const n = 1000
	for i := range n {
		name := root + "/d/f" + strconv.Itoa(i)
		if i%100 == 0 {
			if err := os.MkdirAll(name, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		mustWrite(t, name, "")
	}
	if err := os.Symlink("/etc", root+"/d/link"); err != nil {
		t.Fatal(err)
	}
	d, err := s.Readdir("d")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	seen := map[string]uint32{}
	for {
		es, err := d.Next(7)
		if len(es) > 7 {
			t.Fatalf("batch of %d > 7", len(es))
		}
		for _, e := range es {
			if _, dup := seen[e.Name]; dup {
				t.Fatalf("%s twice", e.Name)
			}
			seen[e.Name] = e.Type
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != n+1 {
		t.Fatalf("saw %d entries; want %d", len(seen), n+1)
	}
	if seen["f0"] != unix.S_IFDIR || seen["f1"] != unix.S_IFREG || seen["link"] != unix.S_IFLNK {
		t.Errorf("types: f0 %o f1 %o link %o", seen["f0"], seen["f1"], seen["link"])
	}
	if _, err := d.Next(1); err != io.EOF {
		t.Errorf("after the end: %v; want EOF", err)
	}
}

func TestOps(t *testing.T) {
	s, root := newStore(t)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.MkdirAll("a/b/c", 0o750))
	must(s.MkdirAll("a/b/c", 0o750))
	if st, err := os.Stat(root + "/a/b/c"); err != nil || st.Mode().Perm() != 0o750 {
		t.Fatalf("MkdirAll: %v %v", st, err)
	}
	if err := s.Mkdir("a", 0o755); !errors.Is(err, unix.EEXIST) {
		t.Errorf("Mkdir existing = %v", err)
	}
	if err := s.Mkdir("nope/x", 0o755); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Mkdir without parent = %v", err)
	}
	must(os.Symlink("/tmp", root+"/a/tl"))
	if err := s.MkdirAll("a/tl/x", 0o755); err == nil {
		t.Errorf("MkdirAll through a symlink succeeded")
	}

	// Symlink targets are stored verbatim, never resolved.
	for i, target := range []string{"../../../etc/passwd", "/absolute/x", "plain", "with space/and\nnewline"} {
		name := "a/l" + strconv.Itoa(i)
		must(s.Symlink(target, name))
		got, err := s.Readlink(name)
		if err != nil || got != target {
			t.Errorf("Readlink(%s) = %q, %v; want %q", name, got, err, target)
		}
	}
	if _, err := s.Readlink("a"); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Readlink of a directory = %v; want EINVAL", err)
	}

	f, err := s.OpenFile("a/f", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o640)
	must(err)
	f.WriteString("hello")
	f.Close()
	if _, err := s.OpenFile("a/f", unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o640); !errors.Is(err, unix.EEXIST) {
		t.Errorf("O_EXCL on existing = %v", err)
	}
	mustWrite(t, root+"/a/g", "world")

	if err := s.Rename("a/f", "a/g", RenameNoReplace); !errors.Is(err, unix.EEXIST) {
		t.Errorf("Rename NOREPLACE = %v; want EEXIST", err)
	}
	must(s.Rename("a/f", "a/g", RenameExchange))
	if b, _ := os.ReadFile(root + "/a/g"); string(b) != "hello" {
		t.Errorf("after exchange a/g = %q", b)
	}
	must(s.Rename("a/g", "a/b/moved", 0))
	must(s.Link("a/b/moved", "a/hard"))
	st, err := s.Lstat("a/hard")
	must(err)
	if st.Nlink != 2 {
		t.Errorf("nlink %d", st.Nlink)
	}
	must(s.Link("a/l0", "a/l0hard")) // links the symlink itself
	if st, _ := s.Lstat("a/l0hard"); st.Mode&unix.S_IFMT != unix.S_IFLNK {
		t.Errorf("Link followed a symlink")
	}

	must(s.Chmod("a/hard", 0o600))
	must(s.Chown("a/hard", 1234, 5678))
	must(s.Chown("a/l1", 42, 43)) // lchown
	mt := time.Date(2020, 7, 17, 16, 22, 0, 123456789, time.UTC)
	must(s.Utimes("a/hard", UtimeOmit, Timespec(mt)))
	must(s.Utimes("a/l1", Timespec(mt), Timespec(mt)))
	st, _ = s.Lstat("a/hard")
	if st.Mode&0o7777 != 0o600 || st.Uid != 1234 || st.Gid != 5678 || st.Mtim.Nano() != mt.UnixNano() {
		t.Errorf("attrs: mode %o uid %d gid %d mtime %v", st.Mode, st.Uid, st.Gid, time.Unix(st.Mtim.Unix()))
	}
	lst, _ := s.Lstat("a/l1")
	if lst.Uid != 42 || lst.Mtim.Nano() != mt.UnixNano() {
		t.Errorf("symlink attrs: uid %d mtime %d", lst.Uid, lst.Mtim.Nano())
	}
	must(s.Chown(".", 7, 8))
	must(s.Utimes(".", Timespec(mt), Timespec(mt)))
	if st, _ := s.Lstat("."); st.Uid != 7 || st.Gid != 8 || st.Mtim.Nano() != mt.UnixNano() {
		t.Errorf("root attrs: uid %d gid %d mtime %d", st.Uid, st.Gid, st.Mtim.Nano())
	}
	must(s.Chmod(".", 0o711))
	if st, _ := s.Lstat("."); st.Mode&0o777 != 0o711 {
		t.Errorf("root mode %o", st.Mode)
	}
	must(s.Truncate("a/hard", 2))
	if b, _ := os.ReadFile(root + "/a/b/moved"); string(b) != "he" {
		t.Errorf("after truncate %q", b)
	}
	if err := s.Truncate("a", 0); !errors.Is(err, unix.EISDIR) {
		t.Errorf("Truncate dir = %v", err)
	}
	sf, err := s.Statfs()
	must(err)
	if sf.Bsize == 0 || sf.Blocks == 0 {
		t.Errorf("statfs %+v", sf)
	}
	must(s.SyncDir("a"))

	if err := s.Rmdir("a"); !errors.Is(err, unix.ENOTEMPTY) {
		t.Errorf("Rmdir non-empty = %v", err)
	}
	if err := s.Unlink("a/b"); !errors.Is(err, unix.EISDIR) {
		t.Errorf("Unlink dir = %v", err)
	}
	must(s.Unlink("a/hard"))
	must(s.Rmdir("a/b/c"))
	if _, err := s.Lstat("a/b/c"); !errors.Is(err, unix.ENOENT) || Errno(err) != unix.ENOENT {
		t.Errorf("after rmdir: %v (errno %v)", err, Errno(err))
	}
	if err := s.Unlink("."); !errors.Is(err, unix.EINVAL) {
		t.Errorf("Unlink(.) = %v", err)
	}
}

func TestErrno(t *testing.T) {
	if Errno(nil) != 0 || Errno(errors.New("x")) != unix.EIO {
		t.Fatal("Errno of nil / plain error")
	}
	s, _ := newStore(t)
	_, err := s.Lstat("missing")
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Path != "missing" || Errno(err) != unix.ENOENT || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%#v", err)
	}
	if _, err := s.Lstat(MetaDir); Errno(err) != unix.ENOENT {
		t.Fatalf("reserved errno %v", Errno(err))
	}
}

// Every path validate accepts is a plain relative path: joined onto a root
// it cannot leave it.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{".", "a", "a/b", "../x", "/a", "a//b", ".ferry/x", "a/.ferry-tmp.1", "a/./b", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rel string) {
		dir, base, err := validate(rel, false)
		if err != nil {
			return
		}
		if rel == "." {
			return
		}
		clean := filepath.Clean("/root/" + rel)
		if clean != "/root/"+rel || strings.HasPrefix(rel, "/") || strings.Contains(rel, "\x00") {
			t.Fatalf("accepted %q (clean %q)", rel, clean)
		}
		if base == "" || strings.Contains(base, "/") || (dir != "." && dir+"/"+base != rel) {
			t.Fatalf("split %q into %q %q", rel, dir, base)
		}
		if Reserved(".", strings.SplitN(rel, "/", 2)[0]) {
			t.Fatalf("accepted reserved %q", rel)
		}
	})
}

func TestOpenRefusesSymlinkedMetaDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/tmp", dir+"/"+MetaDir); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir); err == nil {
		s.Close()
		t.Fatal("opened a store whose metadata folder is a symlink")
	} else if !errors.Is(err, unix.ENOTDIR) {
		t.Fatalf("error %v; want ENOTDIR", err)
	}
	if _, err := Open(dir + "/missing"); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("missing root: %v", err)
	}
}
