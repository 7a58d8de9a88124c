package fusefs

// Special files (mknod, mkfifo, unix sockets) and long paths through a
// real mount: the errno and attributes pjdfstest checks, and what the
// journal and the exporter make of them.

import (
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSpecialFiles: mkfifo, mknod of devices and bind of a unix socket
// make files of the right type, mode, owner and device number in the
// mount and in the store; they can be chmod'ed, chown'ed, linked, renamed
// and unlinked, a FIFO carries data and a socket accepts connections.
// Inside an exporting association each is journaled, and the exporter
// completes those entries without writing an object (counted as skipped).
func TestSpecialFiles(t *testing.T) {
	je := mountJournal(t, Options{}, true)
	m := func(p string) string { return je.m("ExtData/" + p) }
	skipped := je.ex.Stats().Skipped

	must(t, unix.Mkfifo(m("fifo"), 0o640))
	must(t, unix.Mknod(m("chr"), unix.S_IFCHR|0o620, int(unix.Mkdev(1, 3))))
	must(t, unix.Mknod(m("blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 200))))
	must(t, unix.Mknod(m("reg"), unix.S_IFREG|0o604, 0))
	l, err := net.Listen("unix", m("sock"))
	must(t, err)
	defer l.Close()
	for _, c := range []struct {
		name string
		mode uint32
		rdev uint64
	}{
		{"fifo", unix.S_IFIFO | 0o640, 0},
		{"chr", unix.S_IFCHR | 0o620, unix.Mkdev(1, 3)},
		{"blk", unix.S_IFBLK | 0o600, unix.Mkdev(7, 200)},
		{"reg", unix.S_IFREG | 0o604, 0},
		{"sock", unix.S_IFSOCK, 0},
	} {
		st := lstat(t, m(c.name))
		if c.name == "sock" {
			st.Mode &^= 0o7777 // the umask decides
		}
		if st.Mode != c.mode || st.Rdev != c.rdev || st.Nlink != 1 {
			t.Errorf("%s in the mount: mode %o rdev %x nlink %d, want %o %x 1", c.name, st.Mode, st.Rdev, st.Nlink, c.mode, c.rdev)
		}
		var sst unix.Stat_t
		must(t, unix.Lstat(je.s("ExtData/"+c.name), &sst))
		if sst.Mode != st.Mode|(sst.Mode&0o7777) || sst.Rdev != c.rdev {
			t.Errorf("%s in the store: mode %o rdev %x", c.name, sst.Mode, sst.Rdev)
		}
	}
	wantErrno(t, "mkfifo over an existing name", unix.Mkfifo(m("chr"), 0o644), syscall.EEXIST)
	wantErrno(t, "mknod below a FIFO", unix.Mkfifo(m("fifo/x"), 0o644), syscall.ENOTDIR)
	wantErrno(t, "mkfifo of a name over NAME_MAX", unix.Mkfifo(m(strings.Repeat("n", 256)), 0o644), syscall.ENAMETOOLONG)

	// The FIFO and the socket work through the mount (the kernel serves
	// them; the daemon only made the names).
	go func() {
		if f, err := os.OpenFile(m("fifo"), os.O_WRONLY, 0); err == nil {
			f.WriteString("through the fifo")
			f.Close()
		}
	}()
	if got := read(t, m("fifo")); got != "through the fifo" {
		t.Errorf("read from the FIFO: %q", got)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	c, err := net.Dial("unix", m("sock"))
	must(t, err)
	buf := make([]byte, 5)
	if _, err := c.Read(buf); err != nil || string(buf) != "hello" {
		t.Errorf("read from the socket: %q, %v", buf, err)
	}
	c.Close()

	// Metadata, links, rename, unlink.
	must(t, os.Chmod(m("fifo"), 0o604))
	must(t, os.Lchown(m("fifo"), 1000, 1001))
	if st := lstat(t, m("fifo")); st.Mode != unix.S_IFIFO|0o604 || st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("after chmod and chown: mode %o owner %d:%d", st.Mode, st.Uid, st.Gid)
	}
	must(t, os.Link(m("chr"), m("chr2")))
	if st := lstat(t, m("chr")); st.Nlink != 2 {
		t.Errorf("device after link: nlink %d, want 2", st.Nlink)
	}
	must(t, os.Rename(m("chr2"), m("chr3")))
	must(t, os.Rename(m("blk"), m("fifo"))) // over another special file
	if st := lstat(t, m("fifo")); st.Mode&unix.S_IFMT != unix.S_IFBLK {
		t.Errorf("rename of a device over a FIFO: the name is a %o", st.Mode&unix.S_IFMT)
	}
	wantErrno(t, "blk after its rename", unix.Access(m("blk"), unix.F_OK), syscall.ENOENT)
	must(t, os.Remove(m("chr3")))
	if st := lstat(t, m("chr")); st.Nlink != 1 {
		t.Errorf("device after unlink of its link: nlink %d, want 1", st.Nlink)
	}

	// Journaled like every name (NEW for the four special files, CHANGED
	// for chmod and chown, ...); the exporter completes them all, writes no
	// object for any and counts them skipped.
	je.wait(t)
	if got := je.ex.Stats().Skipped; got < skipped+4 {
		t.Errorf("exporter skipped %d entries, want at least %d", got, skipped+4)
	}
	for _, name := range []string{"fifo", "chr", "sock"} {
		if b := je.s3Body(t, "data/"+name); b != nil {
			t.Errorf("%s exported as an object of %d bytes", name, len(b))
		}
	}
	if je.s3Body(t, "data/reg") == nil {
		t.Error("the regular file made by mknod was not exported")
	}
}

// TestLongPathsInMount: a path of PATH_MAX-1 bytes relative to a directory
// deep in the mount — so the store path is longer than PATH_MAX — works for
// every call, a name over NAME_MAX and a path of PATH_MAX bytes are
// ENAMETOOLONG. pjdfstest's open/03, mkdir/03, rename/02… run the same way
// from their working directory.
func TestLongPathsInMount(t *testing.T) {
	je := mountJournal(t, Options{}, false)
	must(t, os.MkdirAll(je.m("ExtData/work/dir"), 0o755))
	dfd, err := unix.Open(je.m("ExtData/work/dir"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	must(t, err)
	defer unix.Close(dfd)

	// Names of NAME_MAX bytes up to PATH_MAX-1 in all, as pjdfstest's
	// dirgen_max makes them.
	var comps []string
	for n := 0; n < unix.PathMax-1; {
		c := strings.Repeat(string(rune('a'+len(comps))), min(255, unix.PathMax-1-n))
		if n > 0 {
			c = c[1:] // the '/'
		}
		comps = append(comps, c)
		n += len(c)
		if len(comps) > 1 {
			n++
		}
	}
	p := strings.Join(comps, "/")
	if len(p) != unix.PathMax-1 {
		t.Fatalf("path of %d bytes", len(p))
	}
	for i := 1; i < len(comps); i++ {
		must(t, unix.Mkdirat(dfd, strings.Join(comps[:i], "/"), 0o755))
	}
	dir := strings.Join(comps[:len(comps)-1], "/")
	fd, err := unix.Openat(dfd, p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o642)
	must(t, err)
	if _, err := unix.Write(fd, []byte("deep")); err != nil {
		t.Fatal(err)
	}
	must(t, unix.Close(fd))
	var st unix.Stat_t
	must(t, unix.Fstatat(dfd, p, &st, unix.AT_SYMLINK_NOFOLLOW))
	if st.Mode != unix.S_IFREG|0o642 || st.Size != 4 {
		t.Fatalf("stat: mode %o size %d", st.Mode, st.Size)
	}
	must(t, unix.Fchmodat(dfd, p, 0o600, 0))
	must(t, unix.Fchownat(dfd, p, 1000, 1000, unix.AT_SYMLINK_NOFOLLOW))
	must(t, unix.UtimesNanoAt(dfd, p, []unix.Timespec{{Sec: 1}, {Sec: 2}}, unix.AT_SYMLINK_NOFOLLOW))
	must(t, unix.Fstatat(dfd, p, &st, unix.AT_SYMLINK_NOFOLLOW))
	if st.Mode != unix.S_IFREG|0o600 || st.Uid != 1000 || st.Mtim.Sec != 2 {
		t.Errorf("after chmod, chown, utimes: mode %o uid %d mtime %d", st.Mode, st.Uid, st.Mtim.Sec)
	}
	// The same length under another name: rename, link, symlink, mkfifo,
	// mkdir, rmdir, unlink.
	q := dir + "/" + strings.Repeat("z", len(comps[len(comps)-1]))
	must(t, unix.Renameat(dfd, p, dfd, q))
	must(t, unix.Linkat(dfd, q, dfd, p, 0))
	must(t, unix.Unlinkat(dfd, q, 0))
	must(t, unix.Symlinkat("target", dfd, q))
	buf := make([]byte, 16)
	if n, err := unix.Readlinkat(dfd, q, buf); err != nil || string(buf[:n]) != "target" {
		t.Errorf("readlink: %q, %v", buf[:n], err)
	}
	must(t, unix.Unlinkat(dfd, q, 0))
	must(t, unix.Mkfifoat(dfd, q, 0o644))
	must(t, unix.Unlinkat(dfd, q, 0))
	must(t, unix.Mkdirat(dfd, q, 0o755))
	must(t, unix.Unlinkat(dfd, q, unix.AT_REMOVEDIR))
	fd, err = unix.Openat(dfd, p, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC, 0)
	must(t, err)
	must(t, unix.Ftruncate(fd, 1))
	must(t, unix.Close(fd))
	must(t, unix.Unlinkat(dfd, p, 0))

	wantErrno(t, "open of PATH_MAX bytes", func() error {
		fd, err := unix.Openat(dfd, p+"x", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
		return err
	}(), syscall.ENAMETOOLONG)
	long := strings.Repeat("n", 256)
	wantErrno(t, "mkdir of a name over NAME_MAX", unix.Mkdirat(dfd, dir+"/"+long, 0o755), syscall.ENAMETOOLONG)
	wantErrno(t, "unlink of a name over NAME_MAX", unix.Unlinkat(dfd, long, 0), syscall.ENAMETOOLONG)
	wantErrno(t, "rmdir of a name over NAME_MAX", unix.Unlinkat(dfd, long, unix.AT_REMOVEDIR), syscall.ENAMETOOLONG)
	wantErrno(t, "rename to a name over NAME_MAX", unix.Renameat(dfd, comps[0], dfd, long), syscall.ENAMETOOLONG)
}

// TestZeroMode: a file, directory or FIFO made with mode 0000 shows 0000
// (go-fuse would show 0644 or 0755 without Options.NullPermissions), and
// chmod 0 too.
func TestZeroMode(t *testing.T) {
	e := mount(t, Options{})
	fd, err := unix.Open(e.m("f"), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0)
	must(t, err)
	unix.Close(fd)
	must(t, unix.Mkdir(e.m("d"), 0))
	must(t, unix.Mkfifo(e.m("p"), 0))
	write(t, e.m("g"), "g")
	must(t, os.Chmod(e.m("g"), 0))
	for _, name := range []string{"f", "d", "p", "g"} {
		if st := lstat(t, e.m(name)); st.Mode&0o7777 != 0 {
			t.Errorf("%s made with mode 0: shown %o", name, st.Mode&0o7777)
		}
	}
}
