package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

func TestMain(m *testing.M) {
	// As the daemon does: modes from the kernel already carry the
	// caller's umask.
	unix.Umask(0)
	os.Exit(testutil.RunMain(m)) // stops the shared MinIO of the lazy-import tests
}

type env struct {
	dir  string // the store directory
	mnt  string // the mountpoint
	st   *store.Store
	fsys *FS
	srv  *fuse.Server
}

func mount(t testing.TB, opt Options) *env {
	t.Helper()
	testutil.NeedFUSE(t)
	e := &env{dir: t.TempDir(), mnt: t.TempDir()}
	var err error
	if e.st, err = store.Open(e.dir); err != nil {
		t.Fatal(err)
	}
	testutil.DetachOnCleanup(t, e.mnt)
	if e.srv, e.fsys, err = Mount(e.mnt, e.st, opt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		e.st.Close()
	})
	return e
}

func (e *env) m(p string) string { return filepath.Join(e.mnt, p) }
func (e *env) s(p string) string { return filepath.Join(e.dir, p) }

func write(t *testing.T, p string, data string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lstat(t *testing.T, p string) *syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return &st
}

func wantErrno(t *testing.T, what string, err error, want ...syscall.Errno) {
	t.Helper()
	for _, w := range want {
		if errors.Is(err, w) {
			return
		}
	}
	t.Errorf("%s: got %v, want one of %v", what, err, want)
}

func TestReadWriteAppendTruncate(t *testing.T) {
	for _, pt := range []bool{true, false} {
		t.Run("passthrough="+strconv.FormatBool(pt), func(t *testing.T) {
			e := mount(t, Options{NoPassthrough: !pt})
			write(t, e.m("a"), "hello")
			if got := read(t, e.m("a")); got != "hello" {
				t.Fatalf("read back %q", got)
			}
			if got := read(t, e.s("a")); got != "hello" {
				t.Fatalf("store has %q", got)
			}
			f, err := os.OpenFile(e.m("a"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString(", world"); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatal(err)
			}
			// ftruncate through the open handle
			if err := f.Truncate(12); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if got := read(t, e.m("a")); got != "hello, world" {
				t.Fatalf("after append+ftruncate: %q", got)
			}
			if err := os.Truncate(e.m("a"), 5); err != nil {
				t.Fatal(err)
			}
			if got := read(t, e.m("a")); got != "hello" {
				t.Fatalf("after truncate: %q", got)
			}
			if st := lstat(t, e.m("a")); st.Size != 5 {
				t.Fatalf("size %d", st.Size)
			}
			// O_TRUNC on open, and a write at an offset.
			f, err = os.OpenFile(e.m("a"), os.O_RDWR|os.O_TRUNC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt([]byte("xyz"), 2); err != nil {
				t.Fatal(err)
			}
			f.Close()
			if got := read(t, e.s("a")); got != "\x00\x00xyz" {
				t.Fatalf("after O_TRUNC and pwrite: %q", got)
			}
			// A large file in 1 MiB requests.
			big := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
			if err := os.WriteFile(e.m("big"), big, 0o600); err != nil {
				t.Fatal(err)
			}
			if got, err := os.ReadFile(e.m("big")); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("big file differs (err %v)", err)
			}
			// O_EXCL on an existing name.
			_, err = os.OpenFile(e.m("a"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			wantErrno(t, "O_EXCL", err, syscall.EEXIST)
		})
	}
}

// TestPassthrough checks that wholly local files bypass the daemon for
// reads and writes where the kernel offers passthrough, and that several
// opens of one inode in different access modes work together.
func TestPassthrough(t *testing.T) {
	e := mount(t, Options{})
	write(t, e.s("local"), "from the store")
	r, err := os.Open(e.m("local"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w, err := os.OpenFile(e.m("local"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("FROM"), 0); err != nil {
		t.Fatal(err)
	}
	w.Close()
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "FROM the store" {
		t.Fatalf("read %q, %v", b, err)
	}
	if e.fsys.Stats.PassthroughOpens.Load() == 0 {
		t.Fatal("no open chose passthrough")
	}
	reads, writes := e.fsys.Stats.Reads.Load(), e.fsys.Stats.Writes.Load()
	t.Logf("daemon served %d reads and %d writes", reads, writes)
	if reads != 0 || writes != 0 {
		testutil.Need(t, fmt.Errorf("the kernel did not take passthrough (daemon served %d reads, %d writes): needs Linux ≥ 6.9 and CAP_SYS_ADMIN", reads, writes))
	}
}

func TestRename(t *testing.T) {
	e := mount(t, Options{})
	write(t, e.m("f"), "data")
	if err := os.Rename(e.m("f"), e.m("g")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.m("f")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old name: %v", err)
	}
	if got := read(t, e.m("g")); got != "data" {
		t.Fatalf("new name: %q", got)
	}
	if err := os.MkdirAll(e.m("d1/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, e.m("d1/sub/x"), "x")
	if err := os.Rename(e.m("d1"), e.m("d2")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, e.m("d2/sub/x")); got != "x" {
		t.Fatalf("after dir rename: %q", got)
	}
	if got := read(t, e.s("d2/sub/x")); got != "x" {
		t.Fatalf("store after dir rename: %q", got)
	}
	// Rename over an existing file replaces it; RENAME_NOREPLACE refuses.
	write(t, e.m("h"), "h")
	if err := os.Rename(e.m("g"), e.m("h")); err != nil {
		t.Fatal(err)
	}
	if got := read(t, e.m("h")); got != "data" {
		t.Fatalf("replaced: %q", got)
	}
	write(t, e.m("i"), "i")
	err := unix.Renameat2(unix.AT_FDCWD, e.m("h"), unix.AT_FDCWD, e.m("i"), unix.RENAME_NOREPLACE)
	wantErrno(t, "RENAME_NOREPLACE", err, syscall.EEXIST)
	if err := unix.Renameat2(unix.AT_FDCWD, e.m("h"), unix.AT_FDCWD, e.m("i"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	if read(t, e.m("h")) != "i" || read(t, e.m("i")) != "data" {
		t.Fatal("RENAME_EXCHANGE did not swap")
	}
}

func TestSymlinkAndHardLink(t *testing.T) {
	e := mount(t, Options{})
	write(t, e.m("target"), "t")
	if err := os.Symlink("target", e.m("link")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(e.m("link")); err != nil || got != "target" {
		t.Fatalf("readlink %q %v", got, err)
	}
	if st := lstat(t, e.m("link")); st.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		t.Fatalf("lstat mode %o", st.Mode)
	}
	if got := read(t, e.m("link")); got != "t" {
		t.Fatalf("through the link: %q", got)
	}
	if got, err := os.Readlink(e.s("link")); err != nil || got != "target" {
		t.Fatalf("store readlink %q %v", got, err)
	}

	if err := os.Link(e.m("target"), e.m("hard")); err != nil {
		t.Fatal(err)
	}
	a, b := lstat(t, e.m("target")), lstat(t, e.m("hard"))
	if a.Nlink != 2 || b.Nlink != 2 || a.Ino != b.Ino {
		t.Fatalf("nlink %d/%d ino %d/%d", a.Nlink, b.Nlink, a.Ino, b.Ino)
	}
	if s := lstat(t, e.s("target")); s.Ino != a.Ino {
		t.Fatalf("mount ino %d, store ino %d", a.Ino, s.Ino)
	}
	write(t, e.m("hard"), "changed")
	if got := read(t, e.m("target")); got != "changed" {
		t.Fatalf("other link: %q", got)
	}
	if err := os.Remove(e.m("target")); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, e.m("hard")); st.Nlink != 1 {
		t.Fatalf("nlink after unlink %d", st.Nlink)
	}
}

func TestAttributes(t *testing.T) {
	e := mount(t, Options{})
	write(t, e.m("f"), "x")
	if err := os.Chmod(e.m("f"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(e.m("f"), 1234, 5678); err != nil {
		t.Fatal(err)
	}
	at, mt := time.Unix(1_000_000_000, 123456789), time.Unix(1_500_000_000, 987654321)
	if err := os.Chtimes(e.m("f"), at, mt); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{e.m("f"), e.s("f")} {
		st := lstat(t, p)
		if st.Mode&0o7777 != 0o640 || st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("%s: mode %o owner %d:%d", p, st.Mode, st.Uid, st.Gid)
		}
		if st.Atim.Sec != at.Unix() || st.Atim.Nsec != 123456789 || st.Mtim.Sec != mt.Unix() || st.Mtim.Nsec != 987654321 {
			t.Errorf("%s: atime %v mtime %v", p, st.Atim, st.Mtim)
		}
	}
	// utimensat with UTIME_NOW for mtime, UTIME_OMIT for atime.
	before := time.Now().Add(-time.Second)
	ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, {Nsec: unix.UTIME_NOW}}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, e.m("f"), ts, 0); err != nil {
		t.Fatal(err)
	}
	st := lstat(t, e.m("f"))
	if st.Atim.Sec != at.Unix() || time.Unix(st.Mtim.Sec, st.Mtim.Nsec).Before(before) {
		t.Errorf("UTIME_NOW/OMIT: atime %v mtime %v", st.Atim, st.Mtim)
	}
	// Modes of new names are exact (the daemon's umask is 0).
	if err := os.Mkdir(e.m("d"), 0o751); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, e.s("d")); st.Mode&0o7777 != 0o751 {
		t.Errorf("mkdir mode %o", st.Mode&0o7777)
	}
	// Symlinks: lchown works, chmod is not a thing.
	if err := os.Symlink("f", e.m("l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(e.m("l"), 42, 43); err != nil {
		t.Fatal(err)
	}
	if st := lstat(t, e.s("l")); st.Uid != 42 || st.Gid != 43 {
		t.Errorf("symlink owner %d:%d", st.Uid, st.Gid)
	}
}

func TestMkdirRmdirUnlink(t *testing.T) {
	e := mount(t, Options{})
	if err := os.Mkdir(e.m("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	wantErrno(t, "mkdir existing", os.Mkdir(e.m("d"), 0o755), syscall.EEXIST)
	write(t, e.m("d/f"), "x")
	wantErrno(t, "rmdir non-empty", syscall.Rmdir(e.m("d")), syscall.ENOTEMPTY)
	wantErrno(t, "unlink a directory", syscall.Unlink(e.m("d")), syscall.EISDIR, syscall.EPERM)
	if err := os.Remove(e.m("d/f")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Rmdir(e.m("d")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(e.s("d")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("store still has d: %v", err)
	}
	wantErrno(t, "rmdir missing", syscall.Rmdir(e.m("d")), syscall.ENOENT)
}

func TestUnlinkOpenFile(t *testing.T) {
	for _, pt := range []bool{true, false} {
		t.Run("passthrough="+strconv.FormatBool(pt), func(t *testing.T) {
			e := mount(t, Options{NoPassthrough: !pt})
			write(t, e.m("f"), "still here")
			f, err := os.OpenFile(e.m("f"), os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := os.Remove(e.m("f")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(e.m("f")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("name still there: %v", err)
			}
			b := make([]byte, 32)
			n, err := f.ReadAt(b, 0)
			if err != nil && err != io.EOF || string(b[:n]) != "still here" {
				t.Fatalf("read %q, %v", b[:n], err)
			}
			if _, err := f.WriteAt([]byte("STILL"), 0); err != nil {
				t.Fatal(err)
			}
			fi, err := f.Stat()
			if err != nil || fi.Size() != 10 {
				t.Fatalf("fstat %v %v", fi, err)
			}
		})
	}
}

func TestReaddirLarge(t *testing.T) {
	e := mount(t, Options{})
	const n = 10000
	want := make([]string, 0, n)
	if err := os.Mkdir(e.s("big"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		name := "Entry-" + strconv.Itoa(i)
		if i%3 == 0 {
			name = strings.ToLower(name)
		}
		want = append(want, name)
		if err := os.WriteFile(e.s("big/"+name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Reserved names in the store are never listed.
	if err := os.WriteFile(e.s("big/"+store.TempPrefix+"leftover"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, plus := range []bool{false, true} {
		f, err := os.Open(e.m("big"))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if plus {
			// ReadDir(-1) = getdents; with lstat of each (ls -l).
			ents, err := f.ReadDir(-1)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range ents {
				if _, err := d.Info(); err != nil {
					t.Fatal(err)
				}
				got = append(got, d.Name())
			}
		} else {
			// Small batches: many READDIR requests with offsets.
			for {
				names, err := f.Readdirnames(100)
				got = append(got, names...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
			}
		}
		f.Close()
		fold := func(s []string) []string {
			s = slices.Clone(s)
			for i := range s {
				s[i] = strings.ToLower(s[i])
			}
			slices.Sort(s)
			return s
		}
		if len(got) != n || !slices.Equal(fold(got), fold(want)) {
			t.Fatalf("listed %d entries, want %d (equal after case folding and sorting: %v)", len(got), n, slices.Equal(fold(got), fold(want)))
		}
	}
	// rewinddir: a second pass on the same descriptor.
	f, err := os.Open(e.m("big"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	first, _ := f.Readdirnames(10)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	again, _ := f.Readdirnames(10)
	if !slices.Equal(first, again) {
		t.Fatalf("after rewind %v, before %v", again, first)
	}
}

func TestMetadataFolderHidden(t *testing.T) {
	e := mount(t, Options{})
	if _, err := os.Stat(e.s(store.MetaDir)); err != nil {
		t.Fatalf("the store has no %s: %v", store.MetaDir, err)
	}
	write(t, e.s(store.MetaDir+"/secret"), "x")
	ents, err := os.ReadDir(e.mnt)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ents {
		if d.Name() == store.MetaDir {
			t.Fatalf("%s listed in the mount root", store.MetaDir)
		}
	}
	_, err = os.Lstat(e.m(store.MetaDir))
	wantErrno(t, "lstat", err, syscall.ENOENT)
	_, err = os.ReadFile(e.m(store.MetaDir + "/secret"))
	wantErrno(t, "read inside", err, syscall.ENOENT)
	wantErrno(t, "mkdir", os.Mkdir(e.m(store.MetaDir), 0o755), syscall.EPERM)
	_, err = os.OpenFile(e.m(store.MetaDir), os.O_CREATE|os.O_WRONLY, 0o644)
	wantErrno(t, "create", err, syscall.EPERM)
	wantErrno(t, "symlink", os.Symlink("x", e.m(store.MetaDir)), syscall.EPERM)
	write(t, e.m("f"), "f")
	wantErrno(t, "rename onto", os.Rename(e.m("f"), e.m(store.MetaDir)), syscall.EPERM)
	wantErrno(t, "link onto", os.Link(e.m("f"), e.m(store.MetaDir)), syscall.EPERM)
	// Only the root's .ferry is reserved; temporary stub names everywhere.
	if err := os.Mkdir(e.m("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(e.m("d/"+store.MetaDir), 0o755); err != nil {
		t.Fatalf("a .ferry below the root is an ordinary name: %v", err)
	}
	wantErrno(t, "create temp name", os.WriteFile(e.m("d/"+store.TempPrefix+"x"), nil, 0o644), syscall.EPERM)
	if got := read(t, e.s(store.MetaDir+"/secret")); got != "x" {
		t.Fatalf("metadata changed: %q", got)
	}
}

// TestSymlinkEscape: a symlink in the store pointing outside it. The daemon
// never follows it (every store path resolves with RESOLVE_NO_SYMLINKS); a
// process reading through it in the mount follows it in its own kernel,
// against its own root, with its own permissions, as it would any symlink.
func TestSymlinkEscape(t *testing.T) {
	e := mount(t, Options{})
	outside := t.TempDir()
	write(t, filepath.Join(outside, "secret"), "outside")
	if err := os.Symlink(filepath.Join(outside, "secret"), e.s("abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, e.s("dirlink")); err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(e.dir, outside)
	if err := os.Symlink(rel, e.s("rellink")); err != nil {
		t.Fatal(err)
	}
	// The mount shows the links verbatim.
	if got, _ := os.Readlink(e.m("abs")); got != filepath.Join(outside, "secret") {
		t.Fatalf("readlink abs %q", got)
	}
	if got, _ := os.Readlink(e.m("rellink")); got != rel {
		t.Fatalf("readlink rel %q", got)
	}
	// The client's kernel resolves an absolute target against its root.
	if got := read(t, e.m("abs")); got != "outside" {
		t.Fatalf("through abs: %q", got)
	}
	// A relative target resolves against the mount, not the store: the
	// mountpoint's parent is not the store's, so "../…" lands elsewhere.
	if _, err := os.ReadFile(e.m("rellink/secret")); err == nil && e.mnt != e.dir {
		// Only right if the relative path happens to exist from the mount.
		if _, serr := os.Stat(filepath.Join(e.mnt, rel, "secret")); serr != nil {
			t.Fatalf("rellink resolved against the store")
		}
	}
	// The daemon itself refuses to follow either link.
	for _, p := range []string{"abs", "dirlink/secret", "rellink/secret"} {
		_, err := e.st.OpenFile(p, unix.O_RDONLY, 0)
		wantErrno(t, "store open "+p, err, syscall.ELOOP)
		_, err = e.st.OpenFile(p+"-new", unix.O_RDWR|unix.O_CREAT, 0o644)
		if p != "abs" {
			wantErrno(t, "store create under "+p, err, syscall.ELOOP)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "secret-new")); err == nil {
		t.Fatal("the daemon created a file outside the store")
	}
}

func TestStatfs(t *testing.T) {
	e := mount(t, Options{})
	var m, s unix.Statfs_t
	if err := unix.Statfs(e.mnt, &m); err != nil {
		t.Fatal(err)
	}
	if err := unix.Statfs(e.dir, &s); err != nil {
		t.Fatal(err)
	}
	if m.Blocks != s.Blocks || m.Bsize != s.Bsize || m.Files != s.Files || m.Namelen != s.Namelen {
		t.Fatalf("mount statfs %+v, store %+v", m, s)
	}
	if m.Type != 0x65735546 { // FUSE_SUPER_MAGIC
		t.Fatalf("f_type %#x", m.Type)
	}
	info, ok := testutil.Mounted(e.mnt)
	if !ok || info.FSType != "fuse."+Name {
		t.Fatalf("mountinfo %+v %v", info, ok)
	}
}

// TestCallerOwnership: with the daemon running as root, names a user
// creates belong to that user (or, in a set-group-ID directory, to the
// directory's group), and the kernel enforces permissions against the
// store's owners and modes (default_permissions).
func TestCallerOwnership(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Need(t, errors.New("needs root: the daemon gives new names to their creator only as root"))
	}
	e := mount(t, Options{})
	// The user must reach the mountpoint (test temporary folders are 0700).
	for _, d := range []string{filepath.Dir(e.mnt), e.mnt} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(e.m("sg"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(e.m("sg"), 0, 555); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(e.m("sg"), 0o2777); err != nil {
		t.Fatal(err)
	}
	write(t, e.m("rootfile"), "root's")
	sh := func(script string) error {
		// cd in the shell, never cmd.Dir: the forked child would touch
		// the mount before exec, while this process (the daemon) is
		// stopped in vfork.
		cmd := exec.Command("/bin/sh", "-c", `cd "$1" && `+script, "sh", e.mnt)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := sh("echo x > f && mkdir d && ln -s f l && echo y > sg/g"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		uid, gid uint32
	}{{"f", 1000, 1000}, {"d", 1000, 1000}, {"l", 1000, 1000}, {"sg/g", 1000, 555}} {
		if st := lstat(t, e.s(c.name)); st.Uid != c.uid || st.Gid != c.gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", c.name, st.Uid, st.Gid, c.uid, c.gid)
		}
	}
	if err := sh("echo z >> rootfile"); err == nil || !strings.Contains(err.Error(), "ermission denied") {
		t.Fatalf("a user wrote root's 0644 file: %v", err)
	}
}
