package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/fusefs"
	"github.com/ferry-hpc/ferry/internal/mounts"
)

// FSType is how ferry mounts appear in /proc/self/mountinfo.
const FSType = "fuse." + fusefs.Name

var (
	// ErrNotMounted: nothing is mounted on the path.
	ErrNotMounted = errors.New("nothing is mounted there")
	// ErrNotFerry: something other than ferry is mounted on the path.
	ErrNotFerry = errors.New("not a ferry mount")
	// ErrBusy: files or working directories are open under the mount.
	ErrBusy = errors.New("busy")
)

// Unmount unmounts the ferry mount on mountpoint: umount2(2) as root,
// fusermount3 -u otherwise; lazy detaches a busy mount (MNT_DETACH,
// fusermount3 -u -z). Errors wrap ErrNotMounted, ErrNotFerry or ErrBusy.
func Unmount(mountpoint string, lazy bool) error {
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return err
	}
	m, ok, err := mounts.Mounted(mp)
	switch {
	case err != nil:
		return fmt.Errorf("read mount table: %w", err)
	case !ok:
		return fmt.Errorf("%s: %w", mp, ErrNotMounted)
	case m.FSType != FSType:
		return fmt.Errorf("%s: %w (it is a %s mount of %s)", mp, ErrNotFerry, m.FSType, m.Source)
	}
	// The kernel releases files asynchronously after their last close, so
	// a mount whose files were just closed may be busy for a moment.
	for wait := 10 * time.Millisecond; ; wait *= 2 {
		err = unmount(mp, lazy)
		if !errors.Is(err, ErrBusy) || wait > 400*time.Millisecond {
			break
		}
		time.Sleep(wait)
	}
	if errors.Is(err, ErrBusy) {
		return fmt.Errorf("%s: %w: files or working directories are open under it (`fuser -vm %s` lists them); close them, or detach it now with --lazy and the daemon exits when they are closed", mp, ErrBusy, mp)
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", mp, err)
	}
	return nil
}

func unmount(mp string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = unix.MNT_DETACH
		}
		err := unix.Unmount(mp, flags)
		if err == unix.EBUSY {
			return ErrBusy
		}
		return err
	}
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		return fmt.Errorf("fusermount3 is needed to unmount without root (Debian/Ubuntu: apt-get install fuse3): %w", err)
	}
	args := []string{"-u"}
	if lazy {
		args = append(args, "-z")
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, append(args, mp)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "busy") {
			return ErrBusy
		}
		return fmt.Errorf("fusermount3: %s (%v)", msg, err)
	}
	return nil
}

// UnmountAndWait unmounts mountpoint and, unless lazy, waits until the
// daemon that served it (found in the runtime directory) has exited, so the
// store can be mounted again at once.
func UnmountAndWait(runtimeDir, mountpoint string, lazy bool, timeout time.Duration) error {
	if runtimeDir == "" {
		runtimeDir = mounts.RuntimeDir()
	}
	mp, err := filepath.Abs(mountpoint)
	if err != nil {
		return err
	}
	reg, registered := mounts.Lookup(runtimeDir, mp)
	if err := Unmount(mp, lazy); err != nil {
		return err
	}
	if lazy || !registered {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; mounts.Alive(reg.Pid); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is unmounted but its daemon (process %d) has not exited after %v", mp, reg.Pid, timeout)
		}
		time.Sleep(wait)
	}
	return nil
}
