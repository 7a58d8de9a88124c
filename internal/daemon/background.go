package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/mounts"
)

// ReadyFDEnv, set in a --background child's environment, names the
// descriptor on which it reports that its mount is ready.
const ReadyFDEnv = "FERRY_MOUNT_READY_FD"

// ErrChildFailed: the background daemon exited before its mount was ready.
// What it printed has already been copied to the caller's stderr.
var ErrChildFailed = errors.New("the background daemon exited before the mount was ready")

// Background runs this executable with args (the `ferry mount` command
// line as the user gave it, without --background) as a detached daemon: a
// new session, stdin from /dev/null, in the caller's working directory, so
// relative paths mean what they meant to the user (the daemon moves to "/"
// once its mount is ready, and pins no file system). Until the mount is
// ready the child's output is copied to stderr, so errors reach the user;
// then the child moves its output to <runtime dir>/<id>.log, writes "ready
// <id>" on the pipe named by ReadyFDEnv and closes it. Background returns
// the FileSystemId then. If ctx ends first, the child is killed.
func Background(ctx context.Context, args []string, stderr io.Writer) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	ready, readyW, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer ready.Close()
	out, outW, err := os.Pipe()
	if err != nil {
		readyW.Close()
		return "", err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), ReadyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.Stdout, cmd.Stderr = outW, outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	readyW.Close()
	outW.Close()
	if err != nil {
		out.Close()
		return "", err
	}
	copied := make(chan struct{})
	go func() {
		io.Copy(stderr, out)
		out.Close()
		close(copied)
	}()
	stop := context.AfterFunc(ctx, func() { cmd.Process.Kill() })
	defer stop()
	msg, _ := io.ReadAll(io.LimitReader(ready, 4096))
	id, ok := strings.CutPrefix(strings.TrimSpace(string(msg)), "ready ")
	if ok && mounts.ValidID(id) {
		<-copied
		cmd.Process.Release()
		return id, nil
	}
	werr := cmd.Wait()
	<-copied
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	return "", fmt.Errorf("%w (%v)", ErrChildFailed, werr)
}

// notifyReady is the child's side of Background, the last start step:
// output goes to the log file from now on, and the parent learns the id.
// It does nothing in a daemon not started by Background.
func (d *Daemon) notifyReady() error {
	if err := d.tellParent(); err != nil {
		return fmt.Errorf("background daemon: %w", err)
	}
	return nil
}

func (d *Daemon) tellParent() error {
	v := os.Getenv(ReadyFDEnv)
	if v == "" {
		return nil
	}
	os.Unsetenv(ReadyFDEnv)
	fd, err := strconv.Atoi(v)
	if err != nil || fd < 3 {
		return fmt.Errorf("%s=%q is not a descriptor", ReadyFDEnv, v)
	}
	ready := os.NewFile(uintptr(fd), "ready")
	defer ready.Close()
	// Every path is absolute by now (Start made them so).
	if err := os.Chdir("/"); err != nil {
		return err
	}
	logf, err := os.OpenFile(d.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	defer logf.Close()
	for _, target := range []int{1, 2} {
		if err := unix.Dup3(int(logf.Fd()), target, 0); err != nil {
			return fmt.Errorf("log file: %w", err)
		}
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "ready %s\n", d.ID())
	_, err = ready.Write(b.Bytes())
	return err
}

// backgroundLog is the log file of a --background daemon of file system id.
func backgroundLog(runtimeDir, id string) string {
	if os.Getenv(ReadyFDEnv) == "" {
		return ""
	}
	return filepath.Join(runtimeDir, id+".log")
}
