package cli_test

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/cli"
)

// TestMountFetchTimeoutFlag: --fetch-timeout is documented with its
// default and an example, and a bound under a second is refused with a
// line that names the flag and gives a value that works.
func TestMountFetchTimeoutFlag(t *testing.T) {
	r := runCmd(t, exec.Command(ferryBin, "mount", "--help"))
	if r.code != 0 || !strings.Contains(r.stdout, "--fetch-timeout duration") || !strings.Contains(r.stdout, "(default 1m0s)") ||
		!strings.Contains(r.stdout, "ferry mount --background --fetch-timeout 5m") {
		t.Errorf("mount --help: exit %d, want --fetch-timeout with its default and an example:\n%s", r.code, r.stdout)
	}
	for _, v := range []string{"0", "500ms", "-1s"} {
		r := runCmd(t, exec.Command(ferryBin, "mount", "--fetch-timeout", v, "--store", t.TempDir(), t.TempDir()))
		if r.code != cli.ExitSkipped || !strings.Contains(r.stderr, "--fetch-timeout") || !strings.Contains(r.stderr, "60s") {
			t.Errorf("mount --fetch-timeout %s: exit %d (want %s), stderr:\n%s", v, r.code, strconv.Itoa(cli.ExitSkipped), r.stderr)
		}
	}
}
