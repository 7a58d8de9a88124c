package testutil

// Mount helpers: what tests of the FUSE mount need to run against the real
// kernel. They never import the mount's own packages (only the leaf
// internal/mounts, for the mount table), so those packages' tests can use
// them.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/mounts"
)

// FUSEAvailable reports why this process cannot mount a FUSE file system,
// or nil if it can: /dev/fuse must open, and either the process is root
// (ferry mounts with mount(2) itself) or fusermount3 is installed.
func FUSEAvailable() error {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("FUSE is not available (/dev/fuse: %v)", err)
	}
	unix.Close(fd)
	if os.Geteuid() == 0 {
		return nil
	}
	if _, err := exec.LookPath("fusermount3"); err != nil {
		return errors.New("not root and fusermount3 is missing (scripts/tools.sh fuse3 installs it)")
	}
	return nil
}

// NeedFUSE skips the test without FUSE, or fails it under CI=true.
func NeedFUSE(tb testing.TB) {
	tb.Helper()
	Need(tb, FUSEAvailable())
}

// Eventually polls cond every few milliseconds until it holds, failing the
// test with what once timeout has passed.
func Eventually(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 50*time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(wait)
	}
}

// MountInfo is the top mount on a path (mounts.MountInfo).
type MountInfo = mounts.MountInfo

// Mounted returns the mount at dir (an absolute, clean path), if any.
func Mounted(dir string) (MountInfo, bool) {
	m, ok, _ := mounts.Mounted(dir)
	return m, ok
}

// WaitMounted waits until a FUSE file system is mounted on dir.
func WaitMounted(tb testing.TB, dir string, timeout time.Duration) MountInfo {
	tb.Helper()
	var m MountInfo
	Eventually(tb, timeout, "a FUSE mount on "+dir, func() bool {
		var ok bool
		m, ok = Mounted(dir)
		return ok && strings.HasPrefix(m.FSType, "fuse")
	})
	return m
}

// WaitUnmounted waits until nothing is mounted on dir.
func WaitUnmounted(tb testing.TB, dir string, timeout time.Duration) {
	tb.Helper()
	Eventually(tb, timeout, "the unmount of "+dir, func() bool {
		_, ok := Mounted(dir)
		return !ok
	})
}

// DetachOnCleanup lazily unmounts dir when the test ends if a mount is
// still there (a failed test must not leave a dead mount behind).
func DetachOnCleanup(tb testing.TB, dir string) {
	tb.Cleanup(func() {
		if _, ok := Mounted(dir); !ok {
			return
		}
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			if bin, lerr := exec.LookPath("fusermount3"); lerr == nil {
				exec.Command(bin, "-u", "-z", dir).Run()
			}
		}
	})
}

// BuildFerry builds cmd/ferry into dir and returns the binary's path.
// Tests that run `ferry` as a subprocess call it once from TestMain.
func BuildFerry(dir string) (string, error) {
	bin := filepath.Join(dir, "ferry")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ferry")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ferry: %v\n%s", err, out)
	}
	return bin, nil
}
