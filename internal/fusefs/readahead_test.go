package fusefs

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/importer"
)

// TestKernelReadaheadSet: a mount made as root has its bdi's read_ahead_kb
// at KernelReadahead, so the kernel sends a reader's readahead in requests
// larger than the 128 KiB INIT allows.
func TestKernelReadaheadSet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root may set a bdi's read_ahead_kb")
	}
	le := mountLazy(t, Options{}, importer.Config{})
	var st unix.Stat_t
	if err := unix.Stat(le.mnt, &st); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(string(b)), strconv.Itoa(KernelReadahead>>10); got != want {
		t.Errorf("%s = %s, want %s", path, got, want)
	}
}
