package cli_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// ferry hsm state|action|restore|release on a real mount with lazy import.
func TestHsmCommands(t *testing.T) {
	m := newMount(t)
	bucket := m.srv.Bucket(t)
	big := randBytes(9 << 20)
	m.srv.Put(t, bucket, "data/a.nc", []byte("aaaa"))
	m.srv.Put(t, bucket, "data/big.nc", big)
	for i := range 12 {
		m.srv.Put(t, bucket, fmt.Sprintf("data/tree/d%d/f%d", i%3, i), []byte(strings.Repeat("x", 1000+i)))
	}
	a, r := m.create("/data", "s3://"+bucket+"/data")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	m.waitState(a.AssociationId, api.LifecycleAvailable)
	mp := m.mp
	// Not looked at yet: hsm state finds it all the same (the daemon lists
	// the directories leading to it).
	p := filepath.Join(mp, "data/a.nc")
	if out := m.ok("hsm", "state", p); out != p+": (0x0000000d) released exists archived\n" {
		t.Errorf("state before read: %q", out)
	}
	// Relative paths, found from the current directory, printed as given.
	r = m.ferry(filepath.Join(mp, "data"), "hsm", "state", "a.nc")
	if r.code != 0 || r.stdout != "a.nc: (0x0000000d) released exists archived\n" {
		t.Errorf("relative state: %d %q %s", r.code, r.stdout, r.stderr)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "aaaa" {
		t.Fatalf("read: %q %v", b, err)
	}
	// The importer marks the chunks local just after the read is served
	// (after their fdatasync), so the state may lag the read briefly.
	m.waitHSMState(p, "(0x00000009) exists archived")
	if out := m.ok("hsm", "action", p); out != p+": NOOP\n" {
		t.Errorf("action: %q", out)
	}
	// Release, then it reads again from the repository.
	m.ok("hsm", "release", p)
	if out := m.ok("hsm", "state", p); out != p+": (0x0000000d) released exists archived\n" {
		t.Errorf("state after release: %q", out)
	}
	if b, err := os.ReadFile(p); err != nil || string(b) != "aaaa" {
		t.Fatalf("read after release: %q %v", b, err)
	}
	m.waitHSMState(p, "(0x00000009) exists archived")
	// An open file is refused, with a non-zero exit.
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	r = m.ferry("", "hsm", "release", p)
	f.Close()
	if r.code == 0 || !strings.Contains(r.stderr, "ferry hsm release: cannot release "+p) {
		t.Errorf("release of an open file: exit %d\n%s", r.code, r.stderr)
	}
	// Missing file and a path outside any mount, as lfs words them.
	r = m.ferry("", "hsm", "state", filepath.Join(mp, "data/nope"), p)
	if r.code != 1 || !strings.Contains(r.stderr, "ferry hsm state: can't get hsm state for "+filepath.Join(mp, "data/nope")+": No such file or directory") ||
		!strings.Contains(r.stdout, p+": (0x00000009) exists archived") {
		t.Errorf("missing file: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = m.ferry("", "hsm", "state", "/")
	if r.code != 1 || !strings.Contains(r.stderr, "is not under a running ferry mount") || !strings.Contains(r.stderr, "ferry mount") {
		t.Errorf("outside: %d\n%s", r.code, r.stderr)
	}
	// A directory without -r is refused.
	r = m.ferry("", "hsm", "restore", filepath.Join(mp, "data/tree"))
	if r.code != 1 || !strings.Contains(r.stderr, "use ferry hsm restore -r") {
		t.Errorf("restore of a directory: %d\n%s", r.code, r.stderr)
	}
	// restore -r: every file of a tree never looked at becomes local.
	r = m.ferry("", "hsm", "restore", "-r", filepath.Join(mp, "data/tree"))
	if r.code != 0 {
		t.Fatalf("restore -r: %d\n%s", r.code, r.stderr)
	}
	var files []string
	filepath.Walk(filepath.Join(m.st, "data/tree"), func(path string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files = append(files, filepath.Join(mp, strings.TrimPrefix(path, m.st+"/")))
		}
		return nil
	})
	if len(files) != 12 {
		t.Fatalf("files in the store after restore -r: %v", files)
	}
	out := m.ok(append([]string{"hsm", "state"}, files...)...)
	if strings.Count(out, "(0x00000009) exists archived\n") != 12 {
		t.Errorf("after restore -r:\n%s", out)
	}
	// AWS's recipe with xargs, one process per file.
	bigp := filepath.Join(mp, "data/big.nc")
	cmd := exec.Command("bash", "-c", `find "$1" -maxdepth 1 -type f -print0 | xargs -0 -n 1 -P 8 ferry hsm restore`, "sh", filepath.Join(mp, "data"))
	cmd.Env = m.env()
	var se bytes.Buffer
	cmd.Stderr = &se
	if err := cmd.Run(); err != nil {
		t.Fatalf("find | xargs ferry hsm restore: %v\n%s", err, se.String())
	}
	if out := m.ok("hsm", "state", bigp); out != bigp+": (0x00000009) exists archived\n" {
		t.Errorf("after xargs restore: %q", out)
	}
	// The data came in before any read: the store file holds it.
	if b, err := os.ReadFile(filepath.Join(m.st, "data/big.nc")); err != nil || !bytes.Equal(b, big) {
		t.Errorf("restored data differs (%d bytes, %v)", len(b), err)
	}
	metrics := m.ok("fsx", "describe-file-systems", "--query", "FileSystems[0].FerryConfiguration.ControlSocket", "--output", "text")
	if !strings.HasSuffix(strings.TrimSpace(metrics), m.id+".sock") {
		t.Errorf("control socket: %q", metrics)
	}
}

// waitHSMState waits until ferry hsm state prints want for path.
func (m *mountEnv) waitHSMState(path, want string) {
	m.t.Helper()
	var out string
	testutil.Eventually(m.t, 10*time.Second, path+": "+want, func() bool {
		out = m.ok("hsm", "state", path)
		return out == path+": "+want+"\n"
	})
}
