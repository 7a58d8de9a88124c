package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// deepPath returns a relative path of at least n bytes made of names of
// NAME_MAX bytes, each directory of it created in s (the last name is not).
func deepPath(t *testing.T, s *Store, n int) string {
	t.Helper()
	var comps []string
	length := -1
	for i := 0; length < n; i++ {
		c := strings.Repeat(string(rune('a'+i%26)), 255)
		comps = append(comps, c)
		length += len(c) + 1
	}
	dir := strings.Join(comps[:len(comps)-1], "/")
	if err := s.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("MkdirAll of %d bytes: %v", len(dir), err)
	}
	return strings.Join(comps, "/")
}

// TestLongPaths: every operation works on a path longer than PATH_MAX
// (resolved in steps, see resolve), names over NAME_MAX are ENAMETOOLONG,
// and a symlink or a file in the middle of a long path is still refused.
// It fails if a path of PATH_MAX bytes or more reaches the kernel whole
// (ENAMETOOLONG) or if validate caps the length.
func TestLongPaths(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, n := range []int{pathMax - 1, pathMax, 3 * pathMax} {
		t.Run(fmt.Sprintf("every operation at %d bytes", n), func(t *testing.T) { longPathOps(t, s, n) })
	}
	t.Run("confinement past PATH_MAX", func(t *testing.T) {
		// Confinement holds past PATH_MAX: a symlink, or a file, on the way
		// is refused in any step, not only in the first.
		p := deepPath(t, s, 2*pathMax)
		dir := p[:strings.LastIndexByte(p, '/')]
		mid := p[:strings.IndexByte(p[pathMax:], '/')+pathMax]
		// (Changed through the store: the absolute paths are too long for
		// the kernel.)
		if err := s.Rename(mid, mid[:strings.LastIndexByte(mid, '/')]+"/moved", 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Symlink("moved", mid); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Lstat(p); !errors.Is(err, unix.ELOOP) {
			t.Errorf("lstat through a symlink past PATH_MAX: %v, want ELOOP", err)
		}
		if _, err := s.OpenFile(dir+"/x", unix.O_CREAT|unix.O_WRONLY, 0o644); !errors.Is(err, unix.ELOOP) {
			t.Errorf("create through a symlink past PATH_MAX: %v, want ELOOP", err)
		}
		if err := s.Unlink(mid); err != nil {
			t.Fatal(err)
		}
		f, err := s.OpenFile(mid, unix.O_CREAT|unix.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if _, err := s.Lstat(p); !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("lstat through a file past PATH_MAX: %v, want ENOTDIR", err)
		}
	})
	t.Run("NAME_MAX", func(t *testing.T) {
		// NAME_MAX: a longer name is ENAMETOOLONG anywhere in the path.
		long := strings.Repeat("n", 256)
		for _, rel := range []string{long, "a/" + long, long + "/a"} {
			if _, err := s.Lstat(rel); !errors.Is(err, unix.ENAMETOOLONG) || !errors.Is(err, ErrNameTooLong) {
				t.Errorf("lstat %d-byte name: %v, want ENAMETOOLONG", len(rel), err)
			}
			if err := s.Mkdir(rel, 0o755); !errors.Is(err, unix.ENAMETOOLONG) {
				t.Errorf("mkdir %d-byte name: %v, want ENAMETOOLONG", len(rel), err)
			}
		}
	})
}

// longPathOps runs every operation of the store on a file at the end of a
// path of at least n bytes, then removes all it made.
func longPathOps(t *testing.T, s *Store, n int) {
	p := deepPath(t, s, n)
	if len(p) < n {
		t.Fatalf("path of %d bytes, want ≥ %d", len(p), n)
	}
	dir := p[:strings.LastIndexByte(p, '/')]
	f, err := s.OpenFile(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, 0o640)
	if err != nil {
		t.Fatalf("create %d bytes: %v", len(p), err)
	}
	if _, err := f.WriteString("deep"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st, err := s.Lstat(p)
	if err != nil || st.Size != 4 || st.Mode&0o777 != 0o640 {
		t.Fatalf("lstat %d bytes: %+v, %v", len(p), st, err)
	}
	if err := s.Chmod(p, 0o600); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if err := s.Chown(p, 1000, 1000); err != nil {
		t.Fatalf("chown: %v", err)
	}
	if err := s.Utimes(p, st.Mtim, UtimeOmit); err != nil {
		t.Fatalf("utimes: %v", err)
	}
	if err := s.Truncate(p, 2); err != nil {
		t.Fatalf("truncate: %v", err)
	}
	if err := s.SetState(p, State{Size: 2}); err != nil {
		t.Fatalf("set state: %v", err)
	}
	if _, err := s.GetState(p); err != nil {
		t.Fatalf("get state: %v", err)
	}
	q := dir + "/" + strings.Repeat("z", 255)
	if err := s.Rename(p, q, RenameNoReplace); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if err := s.Link(q, p); err != nil {
		t.Fatalf("link: %v", err)
	}
	if err := s.Symlink("target", dir+"/l"); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	if got, err := s.Readlink(dir + "/l"); err != nil || got != "target" {
		t.Fatalf("readlink: %q, %v", got, err)
	}
	if err := s.Mknod(dir+"/fifo", unix.S_IFIFO|0o644, 0); err != nil {
		t.Fatalf("mknod: %v", err)
	}
	if err := s.CreateStub(dir+"/stub", testStub(1<<20, 1<<16)); err != nil {
		t.Fatalf("stub: %v", err)
	}
	r, err := s.Readdir(dir)
	if err != nil {
		t.Fatalf("readdir: %v", err)
	}
	ents, err := r.Next(0)
	r.Close()
	if err != nil || len(ents) != 5 {
		t.Fatalf("readdir: %d entries (%v), want 5", len(ents), err)
	}
	if err := s.SyncDir(dir); err != nil {
		t.Fatalf("syncdir: %v", err)
	}
	for _, name := range []string{p, q, dir + "/l", dir + "/fifo", dir + "/stub"} {
		if err := s.Unlink(name); err != nil {
			t.Fatalf("unlink: %v", err)
		}
	}
	if err := s.Rmdir(dir); err != nil {
		t.Fatalf("rmdir: %v", err)
	}
	if _, err := s.Lstat(p); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("lstat below a removed directory: %v, want ENOENT", err)
	}
}

// TestMknod: FIFOs, sockets, devices and empty regular files are made
// with their type, mode and device number; other types are EINVAL, an
// existing name EEXIST, and a special file carries no state.
func TestMknod(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	dev := unix.Mkdev(1, 3)
	for _, c := range []struct {
		name string
		mode uint32
		dev  uint64
	}{
		{"fifo", unix.S_IFIFO | 0o640, 0},
		{"sock", unix.S_IFSOCK | 0o600, 0},
		{"chr", unix.S_IFCHR | 0o644, dev},
		{"blk", unix.S_IFBLK | 0o644, unix.Mkdev(7, 0)},
		{"reg", unix.S_IFREG | 0o604, 0},
	} {
		if err := s.Mknod(c.name, c.mode, c.dev); err != nil {
			t.Fatalf("mknod %s: %v", c.name, err)
		}
		st, err := s.Lstat(c.name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode != c.mode || st.Rdev != c.dev {
			t.Errorf("%s: mode %o rdev %x, want %o %x", c.name, st.Mode, st.Rdev, c.mode, c.dev)
		}
		if got, want := Special(st.Mode), c.name != "reg"; got != want {
			t.Errorf("Special(%s) = %v", c.name, got)
		}
		if err := s.Mknod(c.name, c.mode, c.dev); !errors.Is(err, unix.EEXIST) {
			t.Errorf("mknod over %s: %v, want EEXIST", c.name, err)
		}
	}
	for _, mode := range []uint32{unix.S_IFDIR | 0o755, unix.S_IFLNK | 0o777, 0o644} {
		if err := s.Mknod("bad", mode, 0); !errors.Is(err, unix.EINVAL) {
			t.Errorf("mknod of type %o: %v, want EINVAL", mode&unix.S_IFMT, err)
		}
	}
	if err := s.Mknod(MetaDir, unix.S_IFIFO|0o644, 0); !errors.Is(err, unix.EPERM) {
		t.Errorf("mknod of the metadata folder's name: %v, want EPERM", err)
	}
	if _, err := s.GetState("fifo"); err == nil {
		t.Error("a FIFO has a state")
	}
}
