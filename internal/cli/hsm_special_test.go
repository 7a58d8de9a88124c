package cli_test

import (
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
)

// TestHsmSpecialFiles: a FIFO and a unix socket node in an association
// are shown never_archive by ferry hsm state, and ferry hsm archive
// refuses them, naming why; they stay in the store.
func TestHsmSpecialFiles(t *testing.T) {
	m := newMount(t)
	bucket := m.srv.Bucket(t)
	a, r := m.create("/data", "s3://"+bucket+"/data")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	m.waitState(a.AssociationId, api.LifecycleAvailable)
	fifo := filepath.Join(m.mp, "data/fifo")
	sock := filepath.Join(m.mp, "data/sock")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(sock, unix.S_IFSOCK|0o600, 0); err != nil {
		t.Fatal(err)
	}
	if out := m.ok("hsm", "state", fifo, sock); out != fifo+": (0x00000020) never_archive\n"+sock+": (0x00000020) never_archive\n" {
		t.Errorf("hsm state of special files: %q", out)
	}
	r = m.ferry("", "hsm", "archive", fifo)
	if r.code == 0 || !strings.Contains(r.stderr, "cannot archive "+fifo) || !strings.Contains(r.stderr, "never archived") {
		t.Errorf("hsm archive of a FIFO: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(m.st, "data/fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("the FIFO in the store: %o, %v", st.Mode, err)
	}
}
