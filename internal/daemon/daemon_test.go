package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

var ferryBin string // built once by TestMain; "" if the build failed

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-daemon-test-")
	if err != nil {
		panic(err)
	}
	ferryBin, err = testutil.BuildFerry(dir)
	if err != nil {
		panic(err)
	}
	code := testutil.RunMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestFileSystemIDShape(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id, err := NewFileSystemID()
		if err != nil || !mounts.ValidID(id) || len(id) != 20 || seen[id] {
			t.Fatalf("id %q err %v", id, err)
		}
		seen[id] = true
	}
	for _, bad := range []string{"fs-0123456789abcdef", "fs-0123456789abcdefA", "fs-0123456789ABCDEF0", "xx-0123456789abcdef0", "fs-0123456789abcdef01"} {
		if mounts.ValidID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestIdentityStable(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, created, err := LoadIdentity(st)
	if err != nil || !created || !mounts.ValidID(a.FileSystemId) || a.FormatVersion != 1 {
		t.Fatalf("first load %+v created=%v err=%v", a, created, err)
	}
	b, created, err := LoadIdentity(st)
	if err != nil || created || b != a {
		t.Fatalf("second load %+v created=%v err=%v, first %+v", b, created, err, a)
	}
	ents, _ := os.ReadDir(st.MetaPath())
	if len(ents) != 1 || ents[0].Name() != IdentityFile {
		t.Fatalf("metadata folder holds %v", ents)
	}
	// A corrupt file is an error, never silently replaced by a new id.
	if err := os.WriteFile(filepath.Join(st.MetaPath(), IdentityFile), []byte(`{"FileSystemId":"fs-nope"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadIdentity(st); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt identity: %v", err)
	}
}

func TestParseCatalog(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"", "sqlite:///st/.ferry/catalog.db", ""},
		{"sqlite:///var/lib/ferry/c.db", "sqlite:///var/lib/ferry/c.db", ""},
		{"sqlite:///var/lib/ferry/c.db?_busy_timeout=5000", "sqlite:///var/lib/ferry/c.db?_busy_timeout=5000", ""},
		{"sqlite://", "", "needs a file path"},
		{"sqlite:///var/lib/", "", "needs a file path"},
		{"postgres://db/ferry", "postgres://db/ferry", ""},
		{"postgresql://u@db:5433/ferry?sslmode=require", "postgresql://u@db:5433/ferry?sslmode=require", ""},
		{"mysql://x", "", "unknown scheme"},
		{"/var/lib/c.db", "", "expected sqlite://PATH"},
	} {
		got, err := ParseCatalog(c.in, "/st")
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %q %v, want %q", c.in, got, err, c.want)
		}
	}
	wd, _ := os.Getwd()
	if got, _ := ParseCatalog("sqlite://rel.db", "/st"); got != "sqlite://"+filepath.Join(wd, "rel.db") {
		t.Errorf("relative path: %q", got)
	}
}

func TestCheckPaths(t *testing.T) {
	st := t.TempDir()
	if err := os.Mkdir(filepath.Join(st, "mnt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkPaths(st, filepath.Join(st, "mnt")); err == nil || !strings.Contains(err.Error(), "inside the store") {
		t.Fatalf("mountpoint inside the store: %v", err)
	}
	if err := checkPaths(st, filepath.Join(st, "missing")); err == nil {
		t.Fatal("missing mountpoint accepted")
	}
}

// TestStartStop runs the daemon in this process (so -race covers it) and
// checks registration, the mount, and the cleanup Stop does.
func TestStartStop(t *testing.T) {
	testutil.NeedFUSE(t)
	rt, st, mp := t.TempDir(), t.TempDir(), t.TempDir()
	testutil.DetachOnCleanup(t, mp)
	d, err := Start(Config{Store: st, MountPoint: mp, RuntimeDir: rt})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Created() {
		t.Error("first mount did not initialise the store")
	}
	regs, err := mounts.List(rt)
	if err != nil || len(regs) != 1 || regs[0].FileSystemId != d.ID() || regs[0].Pid != os.Getpid() || regs[0].MountPoint != mp || regs[0].Store != st {
		t.Fatalf("registrations %+v %v", regs, err)
	}
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A second mount of the same store is refused while this one runs.
	mp2 := t.TempDir()
	testutil.DetachOnCleanup(t, mp2)
	if _, err := Start(Config{Store: st, MountPoint: mp2, RuntimeDir: rt}); !errors.Is(err, mounts.ErrAlreadyMounted) {
		t.Fatalf("second mount of the store: %v", err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.Done():
	default:
		t.Fatal("Stop returned before the daemon finished")
	}
	if _, ok, _ := mounts.Mounted(mp); ok {
		t.Fatal("still mounted")
	}
	if regs, _ := mounts.List(rt); len(regs) != 0 {
		t.Fatalf("registration left behind: %+v", regs)
	}
	if _, err := os.Stat(filepath.Join(rt, d.ID()+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("registration file: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(st, "f")); err != nil || string(b) != "x" {
		t.Fatalf("store file %q %v", b, err)
	}
}

// ferry runs the built binary with the runtime directory rt.
func ferry(rt string, args ...string) *exec.Cmd {
	cmd := exec.Command(ferryBin, args...)
	cmd.Env = append(os.Environ(), mounts.RuntimeDirEnv+"="+rt)
	return cmd
}

func run(t *testing.T, rt string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd := ferry(rt, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func TestForegroundSIGTERM(t *testing.T) {
	testutil.NeedFUSE(t)
	rt, st, mp := t.TempDir(), t.TempDir(), t.TempDir()
	testutil.DetachOnCleanup(t, mp)
	cmd := ferry(rt, "mount", "--store", st, mp)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	var id string
	select {
	case id = <-lines:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no id printed; stderr: %s", stderr.String())
	}
	if !mounts.ValidID(id) {
		t.Fatalf("printed %q; stderr: %s", id, stderr.String())
	}
	// The id is printed once the mount serves.
	if m, ok, _ := mounts.Mounted(mp); !ok || m.FSType != FSType {
		t.Fatalf("not mounted when the id was printed: %+v", m)
	}
	if err := os.WriteFile(filepath.Join(mp, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if reg, ok := mounts.Lookup(rt, mp); !ok || reg.Pid != cmd.Process.Pid || reg.FileSystemId != id {
		t.Fatalf("registration %+v %v", reg, ok)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v; stderr: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("no exit after SIGTERM; stderr: %s", stderr.String())
	}
	if _, ok, _ := mounts.Mounted(mp); ok {
		t.Fatal("still mounted after SIGTERM")
	}
	if _, err := os.Stat(filepath.Join(rt, id+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("registration after exit: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(st, "f")); string(b) != "data" {
		t.Fatalf("store file %q", b)
	}
}

func TestBackgroundRemountUmount(t *testing.T) {
	testutil.NeedFUSE(t)
	rt, st, mp := t.TempDir(), t.TempDir(), t.TempDir()
	testutil.DetachOnCleanup(t, mp)
	var before unix.Stat_t
	if err := unix.Stat(mp, &before); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 2 {
		out, errOut, code := run(t, rt, "mount", "--background", "--store", st, mp)
		if code != 0 {
			t.Fatalf("mount --background: exit %d: %s", code, errOut)
		}
		id := strings.TrimSpace(out)
		if !mounts.ValidID(id) {
			t.Fatalf("printed %q", out)
		}
		ids = append(ids, id)
		// Ready when --background returns: no waiting here.
		var now unix.Stat_t
		if err := unix.Stat(mp, &now); err != nil || now.Dev == before.Dev {
			t.Fatalf("mountpoint not mounted on return (dev %d → %d, %v)", before.Dev, now.Dev, err)
		}
		reg, ok := mounts.Lookup(rt, mp)
		if !ok || reg.FileSystemId != id || reg.LogFile == "" {
			t.Fatalf("registration %+v %v", reg, ok)
		}
		if i == 0 {
			if err := os.WriteFile(filepath.Join(mp, "kept"), []byte("k"), 0o644); err != nil {
				t.Fatal(err)
			}
			// The same store cannot be mounted twice.
			_, errOut, code := run(t, rt, "mount", "--background", "--store", st, t.TempDir())
			if code == 0 || !strings.Contains(errOut, "already mounted") {
				t.Fatalf("second mount: exit %d: %s", code, errOut)
			}
		} else if b, err := os.ReadFile(filepath.Join(mp, "kept")); err != nil || string(b) != "k" {
			t.Fatalf("after remount: %q %v", b, err)
		}
		if _, errOut, code := run(t, rt, "umount", mp); code != 0 {
			t.Fatalf("umount: exit %d: %s", code, errOut)
		}
		// umount waits for the daemon.
		if mounts.Alive(reg.Pid) {
			t.Fatalf("daemon %d still running after umount", reg.Pid)
		}
		if _, ok, _ := mounts.Mounted(mp); ok {
			t.Fatal("still mounted")
		}
		if log, err := os.ReadFile(reg.LogFile); err != nil || !strings.Contains(string(log), "unmounted") {
			t.Fatalf("daemon log %q: %v", log, err)
		}
	}
	if ids[0] != ids[1] {
		t.Fatalf("FileSystemId changed across remounts: %s, %s", ids[0], ids[1])
	}
}

func TestBackgroundFailure(t *testing.T) {
	testutil.NeedFUSE(t)
	rt, st := t.TempDir(), t.TempDir()
	_, errOut, code := run(t, rt, "mount", "--background", "--store", st, filepath.Join(st, "missing"))
	if code != 1 || !strings.Contains(errOut, "mountpoint") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, rt, "mount", "--store", st, "--catalog", "mysql://x/y", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "unknown scheme") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, rt, "mount", t.TempDir())
	if code != 2 || !strings.Contains(errOut, "--store") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestUmountErrors(t *testing.T) {
	testutil.NeedFUSE(t)
	rt := t.TempDir()
	dir := t.TempDir()
	_, errOut, code := run(t, rt, "umount", dir)
	if code != 1 || !strings.Contains(errOut, "nothing is mounted") {
		t.Fatalf("not a mount: exit %d: %s", code, errOut)
	}
	if os.Geteuid() == 0 {
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
		_, errOut, code = run(t, rt, "umount", dir)
		if code != 1 || !strings.Contains(errOut, "not a ferry mount") {
			t.Fatalf("tmpfs: exit %d: %s", code, errOut)
		}
	}

	// Busy: a file open under the mount.
	st, mp := t.TempDir(), t.TempDir()
	testutil.DetachOnCleanup(t, mp)
	if _, errOut, code := run(t, rt, "mount", "--background", "--store", st, mp); code != 0 {
		t.Fatalf("mount: %s", errOut)
	}
	reg, _ := mounts.Lookup(rt, mp)
	f, err := os.Create(filepath.Join(mp, "open"))
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run(t, rt, "umount", mp)
	if code != 1 || !strings.Contains(errOut, "busy") || !strings.Contains(errOut, "--lazy") {
		f.Close()
		t.Fatalf("busy: exit %d: %s", code, errOut)
	}
	if _, errOut, code = run(t, rt, "umount", "--lazy", mp); code != 0 {
		f.Close()
		t.Fatalf("lazy: exit %d: %s", code, errOut)
	}
	if _, ok, _ := mounts.Mounted(mp); ok {
		t.Fatal("still mounted after a lazy umount")
	}
	// The open file keeps working; the daemon exits once it is closed.
	if _, err := f.WriteString("after detach"); err != nil {
		t.Fatal(err)
	}
	if !mounts.Alive(reg.Pid) {
		t.Fatal("daemon exited with a file still open")
	}
	f.Close()
	testutil.Eventually(t, 30*time.Second, "the daemon to exit", func() bool { return !mounts.Alive(reg.Pid) })
	if b, _ := os.ReadFile(filepath.Join(st, "open")); string(b) != "after detach" {
		t.Fatalf("store file %q", b)
	}
}
