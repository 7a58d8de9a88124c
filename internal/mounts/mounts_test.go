package mounts

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseMountInfo(t *testing.T) {
	table := `22 1 0:21 / /proc rw,nosuid - proc proc rw
30 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
41 30 0:40 / /mnt/my\040data rw,nosuid shared:5 master:2 - fuse.ferry ferry:fs-0123456789abcdef0 rw,user_id=0
42 41 0:41 / /mnt/my\040data rw - tmpfs none\134x rw
43 30 0:42 / /- rw - tmpfs dash rw
bad line
`
	for _, c := range []struct {
		dir     string
		want    MountInfo
		mounted bool
	}{
		{"/mnt/my data", MountInfo{MountPoint: "/mnt/my data", FSType: "tmpfs", Source: `none\x`}, true}, // the top one
		{"/", MountInfo{MountPoint: "/", FSType: "ext4", Source: "/dev/sda1"}, true},
		{"/-", MountInfo{MountPoint: "/-", FSType: "tmpfs", Source: "dash"}, true},
		{"/mnt", MountInfo{}, false},
	} {
		got, ok, err := parseMountInfo(strings.NewReader(table), c.dir)
		if err != nil || ok != c.mounted || got != c.want {
			t.Errorf("%q: %+v %v %v, want %+v %v", c.dir, got, ok, err, c.want, c.mounted)
		}
	}
	if _, ok, err := Mounted("/proc"); err != nil || !ok {
		t.Errorf("/proc: mounted %v, %v", ok, err)
	}
}

func TestRegistry(t *testing.T) {
	dir := t.TempDir()
	r := Registration{FileSystemId: "fs-0123456789abcdef0", Pid: os.Getpid(), Store: "/st", MountPoint: "/mp", StartTime: time.Now().UTC()}
	p, err := Register(dir, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := Lookup(dir, "/mp"); !ok || got.FileSystemId != r.FileSystemId {
		t.Fatalf("lookup: %+v %v", got, ok)
	}
	for _, o := range []Registration{
		{FileSystemId: "fs-0123456789abcdef1", Pid: 1, Store: "/st", MountPoint: "/other"},
		{FileSystemId: "fs-0123456789abcdef1", Pid: 1, Store: "/st2", MountPoint: "/mp"},
	} {
		if _, err := Register(dir, o); !errors.Is(err, ErrAlreadyMounted) {
			t.Errorf("second registration %+v: %v", o, err)
		}
	}
	// Another process's file is not this one's to remove.
	Unregister(p, os.Getpid()+1)
	if regs, _ := List(dir); len(regs) != 1 {
		t.Fatalf("after a foreign unregister: %+v", regs)
	}
	sock := SocketPath(dir, r.FileSystemId)
	os.WriteFile(sock, nil, 0o600)
	RemoveSocket(sock, p, os.Getpid()+1)
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("a socket of another daemon's registration was removed: %v", err)
	}
	RemoveSocket(sock, p, os.Getpid())
	Unregister(p, os.Getpid())
	if regs, _ := List(dir); len(regs) != 0 {
		t.Fatalf("after unregister: %+v", regs)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left: %v", err)
	}
	// A dead daemon's registration is stale: not listed, and replaced.
	stale := r
	stale.Pid = 1 << 30
	if _, err := Register(dir, stale); err != nil {
		t.Fatal(err)
	}
	if regs, _ := List(dir); len(regs) != 0 {
		t.Errorf("stale registration listed: %+v", regs)
	}
	if _, err := Register(dir, r); err != nil {
		t.Errorf("stale registration not replaced: %v", err)
	}
	if !Alive(os.Getpid()) || Alive(0) || Alive(1<<30) {
		t.Error("Alive")
	}
	if !ValidID(r.FileSystemId) || ValidID("fs-0123") || filepath.Base(sock) != r.FileSystemId+".sock" {
		t.Error("ids and names")
	}
}
