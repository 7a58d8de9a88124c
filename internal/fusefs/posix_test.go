package fusefs

// POSIX behaviour through a real mount with the write path on (journal in
// a real catalog), checked the way conformance suites (pjdfstest, xfstests'
// generic tests) check it: the errno of every refused call, link counts,
// and which of atime/mtime/ctime each call moves.

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

func TestPOSIXErrnos(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	m := func(p string) string { return je.m("ExtData/" + p) }
	write(t, m("f"), "data")
	must(t, os.Mkdir(m("d"), 0o755))
	must(t, os.Mkdir(m("full"), 0o755))
	write(t, m("full/x"), "x")
	must(t, os.Symlink("f", m("l")))
	other := t.TempDir()
	write(t, filepath.Join(other, "o"), "o")
	long := strings.Repeat("n", 256)

	openErr := func(p string, flags int) error {
		fd, err := unix.Open(p, flags|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}
	for _, c := range []struct {
		name string
		err  error
		want []syscall.Errno
	}{
		{"open missing", openErr(m("nope"), unix.O_RDONLY), []syscall.Errno{syscall.ENOENT}},
		{"O_CREAT|O_EXCL existing", openErr(m("f"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY), []syscall.Errno{syscall.EEXIST}},
		{"O_CREAT|O_EXCL on a symlink", openErr(m("l"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY), []syscall.Errno{syscall.EEXIST}},
		{"O_NOFOLLOW on a symlink", openErr(m("l"), unix.O_NOFOLLOW|unix.O_RDONLY), []syscall.Errno{syscall.ELOOP}},
		{"open a directory for writing", openErr(m("d"), unix.O_WRONLY), []syscall.Errno{syscall.EISDIR}},
		{"O_DIRECTORY on a file", openErr(m("f"), unix.O_DIRECTORY|unix.O_RDONLY), []syscall.Errno{syscall.ENOTDIR}},
		{"create below a file", openErr(m("f/x"), unix.O_CREAT|unix.O_WRONLY), []syscall.Errno{syscall.ENOTDIR}},
		{"name too long", openErr(m(long), unix.O_CREAT|unix.O_WRONLY), []syscall.Errno{syscall.ENAMETOOLONG}},
		{"mkdir existing", unix.Mkdir(m("d"), 0o755), []syscall.Errno{syscall.EEXIST}},
		{"mkdir over a symlink", unix.Mkdir(m("l"), 0o755), []syscall.Errno{syscall.EEXIST}},
		{"rmdir non-empty", unix.Rmdir(m("full")), []syscall.Errno{syscall.ENOTEMPTY, syscall.EEXIST}},
		{"rmdir a file", unix.Rmdir(m("f")), []syscall.Errno{syscall.ENOTDIR}},
		{"rmdir missing", unix.Rmdir(m("nope")), []syscall.Errno{syscall.ENOENT}},
		{"unlink a directory", unix.Unlink(m("d")), []syscall.Errno{syscall.EISDIR, syscall.EPERM}},
		{"unlink missing", unix.Unlink(m("nope")), []syscall.Errno{syscall.ENOENT}},
		{"symlink over existing", unix.Symlink("x", m("f")), []syscall.Errno{syscall.EEXIST}},
		{"link over existing", unix.Link(m("f"), m("l")), []syscall.Errno{syscall.EEXIST}},
		{"link a directory", unix.Link(m("d"), m("d2")), []syscall.Errno{syscall.EPERM}},
		{"link across mounts", unix.Link(filepath.Join(other, "o"), m("o")), []syscall.Errno{syscall.EXDEV}},
		{"rename across mounts", unix.Rename(filepath.Join(other, "o"), m("o")), []syscall.Errno{syscall.EXDEV}},
		{"rename missing", unix.Rename(m("nope"), m("n2")), []syscall.Errno{syscall.ENOENT}},
		{"rename a file over a directory", unix.Rename(m("f"), m("d")), []syscall.Errno{syscall.EISDIR}},
		{"rename a directory over a file", unix.Rename(m("d"), m("f")), []syscall.Errno{syscall.ENOTDIR}},
		{"rename a directory over a non-empty one", unix.Rename(m("d"), m("full")), []syscall.Errno{syscall.ENOTEMPTY, syscall.EEXIST}},
		{"rename a directory into itself", unix.Rename(m("d"), m("d/sub")), []syscall.Errno{syscall.EINVAL}},
		{"RENAME_NOREPLACE over existing", unix.Renameat2(unix.AT_FDCWD, m("f"), unix.AT_FDCWD, m("l"), unix.RENAME_NOREPLACE), []syscall.Errno{syscall.EEXIST}},
		{"RENAME_EXCHANGE of a directory (exporting association)", unix.Renameat2(unix.AT_FDCWD, m("d"), unix.AT_FDCWD, m("full"), unix.RENAME_EXCHANGE), []syscall.Errno{syscall.EINVAL}},
		{"readlink of a file", func() error { _, err := os.Readlink(m("f")); return err }(), []syscall.Errno{syscall.EINVAL}},
		{"truncate a directory", unix.Truncate(m("d"), 0), []syscall.Errno{syscall.EISDIR}},
		{"truncate negative", unix.Truncate(m("f"), -1), []syscall.Errno{syscall.EINVAL}},
		{"chmod missing", unix.Chmod(m("nope"), 0o644), []syscall.Errno{syscall.ENOENT}},
	} {
		if c.err == nil {
			t.Errorf("%s: succeeded, want %v", c.name, c.want)
			continue
		}
		wantErrno(t, c.name, c.err, c.want...)
	}
	// A write to a descriptor opened read-only, a read from one opened
	// write-only.
	r, err := os.Open(m("f"))
	must(t, err)
	_, err = r.Write([]byte("x"))
	wantErrno(t, "write to O_RDONLY", err, syscall.EBADF)
	r.Close()
	w, err := os.OpenFile(m("f"), os.O_WRONLY, 0)
	must(t, err)
	_, err = w.Read(make([]byte, 1))
	wantErrno(t, "read from O_WRONLY", err, syscall.EBADF)
	w.Close()
	// The files refused calls touched are as they were.
	if got := read(t, m("f")); got != "data" {
		t.Fatalf("f changed to %q", got)
	}
	// RENAME_EXCHANGE of two files is allowed and journaled for both.
	write(t, m("g"), "gg")
	je.drainJournal(t)
	must(t, unix.Renameat2(unix.AT_FDCWD, m("f"), unix.AT_FDCWD, m("g"), unix.RENAME_EXCHANGE))
	if read(t, m("f")) != "gg" || read(t, m("g")) != "data" {
		t.Fatal("exchange did not swap the files")
	}
	if got := entriesOf(je.pending(t, "")); len(got) != 2 || got[0].kind != "CHANGED" || got[1].kind != "CHANGED" {
		t.Fatalf("exchange journaled %v", got)
	}
}

// TestPOSIXPermissions runs calls as an unprivileged user (uid 1000): the
// kernel's permission checks against the store's attributes
// (default_permissions) answer EACCES and EPERM as on a local disk.
func TestPOSIXPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Need(t, errors.New("needs root to run calls as another user"))
	}
	je := mountJournal(t, Options{}, false)
	for _, d := range []string{filepath.Dir(je.mnt), je.mnt} {
		must(t, os.Chmod(d, 0o777))
	}
	m := func(p string) string { return je.m("ExtData/" + p) }
	must(t, os.Chmod(je.m("ExtData"), 0o777))
	write(t, m("rootfile"), "root's")        // 0644 root
	must(t, os.Mkdir(m("rootdir"), 0o755))   // not writable by the user
	must(t, unix.Mkdir(m("sticky"), 0o1777)) // /tmp-like (os.Mkdir drops 01000)
	write(t, m("sticky/rootowned"), "x")     // root's, in a sticky directory
	must(t, os.Mkdir(m("private"), 0o700))   // not searchable by the user
	write(t, m("private/secret"), "s")       //
	sh := func(script string) string {
		cmd := exec.Command("/bin/sh", "-c", `cd "$1" && `+script, "sh", je.m("ExtData"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Sprintf("%v: %s", err, out)
		}
		return "ok"
	}
	for _, c := range []struct{ script, want string }{
		{"echo z >> rootfile", "Permission denied"},
		{"echo z > rootdir/new", "Permission denied"},
		{"rm -f rootfile", "ok"}, // the directory is 0777: unlink needs only it
		{"cat private/secret", "Permission denied"},
		{"rm -f sticky/rootowned", "Operation not permitted"},
		{"chmod 777 sticky/rootowned", "Operation not permitted"},
		{"touch -d 2001-01-01 sticky/rootowned", "Permission denied"}, // touch opens it for writing first
		{"echo mine > mine && chmod 600 mine && cat mine", "ok"},
		{"mkdir mydir && rmdir mydir", "ok"},
	} {
		if got := sh(c.script); !strings.Contains(got, c.want) {
			t.Errorf("as uid 1000: %s: %s, want %q", c.script, got, c.want)
		}
	}
	if st := lstat(t, je.s("ExtData/mine")); st.Uid != 1000 || st.Mode&0o777 != 0o600 {
		t.Errorf("user's file: uid %d mode %o", st.Uid, st.Mode&0o777)
	}
	if _, err := os.Lstat(je.s("ExtData/sticky/rootowned")); err != nil {
		t.Errorf("a refused unlink removed the file: %v", err)
	}
	if _, err := os.Lstat(je.s("ExtData/rootfile")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rootfile not removed: %v", err)
	}
}

// TestPOSIXLinkCounts: st_nlink of files and directories after link,
// unlink, mkdir, rmdir and rename, through the mount and on open
// descriptors (an unlinked open file has 0 links and keeps its data).
func TestPOSIXLinkCounts(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	m := func(p string) string { return je.m("ExtData/" + p) }
	nlink := func(p string) uint64 { return uint64(lstat(t, p).Nlink) }
	write(t, m("f"), "x")
	must(t, os.Mkdir(m("d"), 0o755))
	base := nlink(je.m("ExtData"))
	if n := nlink(m("f")); n != 1 {
		t.Fatalf("new file nlink %d", n)
	}
	if n := nlink(m("d")); n != 2 {
		t.Fatalf("new directory nlink %d", n)
	}
	must(t, os.Link(m("f"), m("d/f2")))
	if nlink(m("f")) != 2 || nlink(m("d/f2")) != 2 {
		t.Fatalf("after link: %d %d", nlink(m("f")), nlink(m("d/f2")))
	}
	must(t, os.Mkdir(m("d/sub"), 0o755))
	if n := nlink(m("d")); n != 3 {
		t.Fatalf("directory with a subdirectory: nlink %d", n)
	}
	must(t, os.Rename(m("d/sub"), m("sub")))
	if nlink(m("d")) != 2 || nlink(je.m("ExtData")) != base+1 {
		t.Fatalf("after moving a subdirectory: d %d, parent %d (was %d)", nlink(m("d")), nlink(je.m("ExtData")), base)
	}
	must(t, os.Remove(m("sub")))
	if nlink(je.m("ExtData")) != base {
		t.Fatalf("after rmdir: parent nlink %d, want %d", nlink(je.m("ExtData")), base)
	}
	fh, err := os.OpenFile(m("f"), os.O_RDWR, 0)
	must(t, err)
	defer fh.Close()
	must(t, os.Remove(m("f")))
	if nlink(m("d/f2")) != 1 {
		t.Fatalf("after unlinking one name: %d", nlink(m("d/f2")))
	}
	must(t, os.Remove(m("d/f2")))
	var st unix.Stat_t
	must(t, unix.Fstat(int(fh.Fd()), &st))
	if st.Nlink != 0 {
		t.Fatalf("open file after its last unlink: nlink %d", st.Nlink)
	}
	_, err = fh.WriteAt([]byte("y"), 1)
	must(t, err)
	b, err := io.ReadAll(io.NewSectionReader(fh, 0, 10))
	if err != nil || string(b) != "xy" {
		t.Fatalf("unlinked open file reads %q, %v", b, err)
	}
	// Its close journals nothing (it has no name any more).
	je.drainJournal(t)
	must(t, fh.Close())
	if got := je.pending(t, ""); len(got) != 0 {
		t.Fatalf("close of an unlinked file journaled %v", entriesOf(got))
	}
}

type times struct{ a, m, c unix.Timespec }

func timesOf(t *testing.T, p string) times {
	t.Helper()
	var st unix.Stat_t
	must(t, unix.Lstat(p, &st))
	return times{st.Atim, st.Mtim, st.Ctim}
}

func after(x, y unix.Timespec) bool { return x.Nano() > y.Nano() }

// TestPOSIXTimes: which times each call moves, on the file and on its
// directory, as POSIX specifies (and pjdfstest checks): creat/mkdir/
// symlink/link/unlink/rename update the parent's mtime and ctime; write,
// truncate and O_TRUNC a file's mtime and ctime; chmod, chown, link and
// rename only its ctime; utimes sets a and m and moves c.
func TestPOSIXTimes(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	dir := je.m("ExtData/t")
	must(t, os.Mkdir(dir, 0o755))
	p := func(n string) string { return filepath.Join(dir, n) }
	type check struct {
		path           string
		mMoves, cMoves bool
		pre            string // the path before the call, when it differs
	}
	step := func(name string, op func() error, checks ...check) {
		t.Helper()
		before := make([]times, len(checks))
		for i, c := range checks {
			at := c.path
			if c.pre != "" {
				at = c.pre
			}
			before[i] = timesOf(t, at)
		}
		if err := op(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, c := range checks {
			now := timesOf(t, c.path)
			if got := after(now.m, before[i].m); got != c.mMoves {
				t.Errorf("%s: mtime of %s moved=%v, want %v (%v → %v)", name, filepath.Base(c.path), got, c.mMoves, before[i].m, now.m)
			}
			if got := after(now.c, before[i].c); got != c.cMoves {
				t.Errorf("%s: ctime of %s moved=%v, want %v", name, filepath.Base(c.path), got, c.cMoves)
			}
		}
	}
	step("create", func() error { return os.WriteFile(p("f"), nil, 0o644) }, check{dir, true, true, ""})
	step("write", func() error {
		f, err := os.OpenFile(p("f"), os.O_WRONLY, 0)
		must(t, err)
		_, err = f.Write([]byte("abc"))
		must(t, err)
		return f.Close()
	}, check{p("f"), true, true, ""}, check{dir, false, false, ""})
	step("O_APPEND write", func() error {
		f, err := os.OpenFile(p("f"), os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		_, err = f.Write([]byte("def"))
		must(t, err)
		return f.Close()
	}, check{p("f"), true, true, ""})
	if got := read(t, p("f")); got != "abcdef" {
		t.Fatalf("O_APPEND: %q", got)
	}
	step("O_TRUNC", func() error {
		f, err := os.OpenFile(p("f"), os.O_WRONLY|os.O_TRUNC, 0)
		must(t, err)
		return f.Close()
	}, check{p("f"), true, true, ""})
	step("truncate", func() error { return os.Truncate(p("f"), 10) }, check{p("f"), true, true, ""})
	step("chmod", func() error { return os.Chmod(p("f"), 0o600) }, check{p("f"), false, true, ""}, check{dir, false, false, ""})
	step("chown", func() error { return os.Lchown(p("f"), 7, 7) }, check{p("f"), false, true, ""})
	step("link", func() error { return os.Link(p("f"), p("h")) }, check{p("f"), false, true, ""}, check{dir, true, true, ""})
	step("unlink", func() error { return os.Remove(p("h")) }, check{p("f"), false, true, ""}, check{dir, true, true, ""})
	step("rename", func() error { return os.Rename(p("f"), p("g")) }, check{p("g"), false, true, p("f")}, check{dir, true, true, ""})
	step("mkdir", func() error { return os.Mkdir(p("sub"), 0o755) }, check{dir, true, true, ""})
	step("rename into a subdirectory", func() error { return os.Rename(p("g"), p("sub/g")) },
		check{dir, true, true, ""}, check{p("sub"), true, true, ""}, check{p("sub/g"), false, true, p("g")})
	step("symlink", func() error { return os.Symlink("g", p("l")) }, check{dir, true, true, ""})
	step("rmdir", func() error {
		must(t, os.Remove(p("sub/g")))
		return os.Remove(p("sub"))
	}, check{dir, true, true, ""})
	// utimes sets atime and mtime exactly and moves ctime.
	write(t, p("u"), "u")
	before := timesOf(t, p("u"))
	ts := []unix.Timespec{{Sec: 1_000_000_000, Nsec: 5}, {Sec: 1_100_000_000, Nsec: 7}}
	must(t, unix.UtimesNano(p("u"), ts))
	now := timesOf(t, p("u"))
	if now.a != ts[0] || now.m != ts[1] || !after(now.c, before.c) {
		t.Errorf("utimes: a %v m %v c moved %v", now.a, now.m, after(now.c, before.c))
	}
}

// TestRenameOverExisting: a rename over an existing file replaces it
// atomically (a reader holding the old file keeps its content), over an
// empty directory replaces it; the journal has one RENAME for the name.
func TestRenameOverExisting(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	m := func(p string) string { return je.m("ExtData/" + p) }
	write(t, m("new"), "new content")
	write(t, m("old"), "old content")
	r, err := os.Open(m("old"))
	must(t, err)
	defer r.Close()
	je.drainJournal(t)
	must(t, os.Rename(m("new"), m("old")))
	if got := read(t, m("old")); got != "new content" {
		t.Fatalf("after rename over: %q", got)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != "old content" {
		t.Fatalf("reader of the replaced file: %q, %v", b, err)
	}
	if _, err := os.Lstat(m("new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("source name remains: %v", err)
	}
	if got := entriesOf(je.pending(t, "")); len(got) != 1 || got[0] != (entry{"ExtData/old", "RENAME", "ExtData/new"}) {
		t.Fatalf("journal %v", got)
	}
	must(t, os.Mkdir(m("d1"), 0o755))
	write(t, m("d1/x"), "x")
	must(t, os.Mkdir(m("d2"), 0o755))
	must(t, unix.Rename(m("d1"), m("d2"))) // os.Rename refuses a directory target
	if got := read(t, m("d2/x")); got != "x" {
		t.Fatalf("directory renamed over an empty one: %q", got)
	}
	// Renaming a name onto itself changes nothing.
	must(t, os.Rename(m("old"), m("old")))
	if got := read(t, m("old")); got != "new content" {
		t.Fatalf("self-rename: %q", got)
	}
}
