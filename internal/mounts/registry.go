package mounts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// RuntimeDirEnv overrides the runtime directory.
const RuntimeDirEnv = "FERRY_RUNTIME_DIR"

// RuntimeDir is where every running daemon of this machine registers
// itself, so the CLI finds the file systems of the machine from anywhere:
// $FERRY_RUNTIME_DIR if set, /run/ferry for root, else
// $XDG_RUNTIME_DIR/ferry, else /tmp/ferry-<uid>.
func RuntimeDir() string {
	if d := os.Getenv(RuntimeDirEnv); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/ferry"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "ferry")
	}
	return filepath.Join(os.TempDir(), "ferry-"+strconv.Itoa(os.Geteuid()))
}

var idPattern = regexp.MustCompile(`^fs-[0-9a-f]{17}$`)

// ValidID reports whether id has the shape of a ferry FileSystemId: fs- and
// 17 lowercase hex digits. Registrations are named by it.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// Registration is <runtime dir>/<FileSystemId>.json: one running daemon.
// Its control socket sits next to it as <FileSystemId>.sock.
type Registration struct {
	FileSystemId string
	Pid          int
	Store        string // absolute path of the store directory
	MountPoint   string // absolute path
	Catalog      string // catalog URL
	StartTime    time.Time
	LogFile      string `json:",omitempty"` // where a --background daemon logs
	Socket       string `json:",omitempty"` // the control API's Unix socket
}

// path of the registration file of id in dir.
func regPath(dir, id string) string { return filepath.Join(dir, id+".json") }

// SocketPath is the control socket of file system id in the runtime
// directory dir.
func SocketPath(dir, id string) string { return filepath.Join(dir, id+".sock") }

// Alive reports whether process pid exists and has not exited (a zombie
// waiting for its parent counts as gone).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && err != unix.EPERM {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	// pid (comm) state …; comm may contain spaces and parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

// ErrAlreadyMounted: the store or the mountpoint is served by a running daemon.
var ErrAlreadyMounted = errors.New("already mounted")

// Register writes r into dir atomically and returns the file's path,
// refusing if a live daemon already serves the same file system, store or
// mountpoint. Stale files (their daemon is gone, killed with -9) are
// replaced.
func Register(dir string, r Registration) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("runtime directory: %w", err)
	}
	regs, err := List(dir)
	if err != nil {
		return "", err
	}
	for _, o := range regs {
		switch {
		case o.FileSystemId == r.FileSystemId || o.Store == r.Store:
			return "", fmt.Errorf("%w: store %s (%s) is mounted on %s by ferry process %d; run `ferry umount %s` first", ErrAlreadyMounted, o.Store, o.FileSystemId, o.MountPoint, o.Pid, o.MountPoint)
		case o.MountPoint == r.MountPoint:
			return "", fmt.Errorf("%w: %s already serves %s (%s), process %d; run `ferry umount %s` first", ErrAlreadyMounted, o.MountPoint, o.Store, o.FileSystemId, o.Pid, o.MountPoint)
		}
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	p := regPath(dir, r.FileSystemId)
	tmp := p + ".tmp." + strconv.Itoa(r.Pid)
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("register: %w", err)
	}
	return p, nil
}

// Unregister removes the registration file p if it still names process
// pid.
func Unregister(p string, pid int) {
	var r Registration
	if data, err := os.ReadFile(p); err == nil && json.Unmarshal(data, &r) == nil && r.Pid == pid {
		os.Remove(p)
	}
}

// RemoveSocket removes the control socket if the registration file reg
// still names process pid (a daemon started after this one may own it).
func RemoveSocket(sock, reg string, pid int) {
	var r Registration
	if data, err := os.ReadFile(reg); err == nil && json.Unmarshal(data, &r) == nil && r.Pid != pid {
		return
	}
	os.Remove(sock)
}

// List returns the daemons registered in dir whose process is alive.
func List(dir string) ([]Registration, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("runtime directory: %w", err)
	}
	var out []Registration
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".json") || !ValidID(strings.TrimSuffix(name, ".json")) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue // removed meanwhile
		}
		var r Registration
		if json.Unmarshal(data, &r) != nil || !Alive(r.Pid) {
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

// Lookup returns the live registration of the daemon serving mountpoint.
func Lookup(dir, mountpoint string) (Registration, bool) {
	regs, _ := List(dir)
	for _, r := range regs {
		if r.MountPoint == mountpoint {
			return r, true
		}
	}
	return Registration{}, false
}
