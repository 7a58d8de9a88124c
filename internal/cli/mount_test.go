package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/cli"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/testutil"
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

// TestMountSessionTTLFlag: --session-ttl is documented with its default,
// and a TTL out of bounds is refused with a line naming the flag and a
// value that works.
func TestMountSessionTTLFlag(t *testing.T) {
	r := runCmd(t, exec.Command(ferryBin, "mount", "--help"))
	if r.code != 0 || !strings.Contains(r.stdout, "--session-ttl duration") || !strings.Contains(r.stdout, "(default 30s)") ||
		!strings.Contains(r.stdout, "--catalog postgres://") {
		t.Errorf("mount --help: exit %d, want --session-ttl with its default and the many nodes paragraph:\n%s", r.code, r.stdout)
	}
	for _, v := range []string{"0", "1s", "-30s", "2h"} {
		r := runCmd(t, exec.Command(ferryBin, "mount", "--session-ttl", v, "--store", t.TempDir(), t.TempDir()))
		if r.code != cli.ExitSkipped || !strings.Contains(r.stderr, "--session-ttl "+v) || !strings.Contains(r.stderr, "such as 30s") {
			t.Errorf("mount --session-ttl %s: exit %d (want %s), stderr:\n%s", v, r.code, strconv.Itoa(cli.ExitSkipped), r.stderr)
		}
	}
}

// TestMountEventsFlags: an event endpoint other machines can reach is
// refused without a token, with a line naming the flag, the variable and
// the way out; so are a token that cannot travel in a header and a token
// given without an endpoint. FERRY_EVENTS_TOKEN counts as a token.
func TestMountEventsFlags(t *testing.T) {
	r := runCmd(t, exec.Command(ferryBin, "mount", "--help"))
	if r.code != 0 || !strings.Contains(r.stdout, "--events-listen string") || !strings.Contains(r.stdout, "--events-token string") ||
		!strings.Contains(r.stdout, "MINIO_NOTIFY_WEBHOOK_ENDPOINT_FERRY") {
		t.Errorf("mount --help: exit %d, want --events-listen, --events-token and the MinIO setup:\n%s", r.code, r.stdout)
	}
	for _, c := range []struct {
		args []string
		says []string
	}{
		{[]string{"--events-listen", "0.0.0.0:9010"}, []string{"--events-listen 0.0.0.0:9010", "--events-token", "FERRY_EVENTS_TOKEN", "127.0.0.1"}},
		{[]string{"--events-listen", "192.0.2.1:9010"}, []string{"--events-token"}},
		{[]string{"--events-listen", "9010", "--events-token", "a b"}, []string{"--events-token", "without spaces"}},
		{[]string{"--events-token", "tok"}, []string{"--events-token", "--events-listen"}},
		{[]string{"--events-listen", "nope"}, []string{"--events-listen", "HOST:PORT"}},
	} {
		args := append(append([]string{"mount"}, c.args...), "--store", t.TempDir(), t.TempDir())
		cmd := exec.Command(ferryBin, args...)
		cmd.Env = append(os.Environ(), "FERRY_EVENTS_TOKEN=")
		r := runCmd(t, cmd)
		ok := r.code == cli.ExitSkipped
		for _, s := range c.says {
			ok = ok && strings.Contains(r.stderr, s)
		}
		if !ok {
			t.Errorf("%q: exit %d (want %d), stderr:\n%s\nwant it to name %q", args, r.code, cli.ExitSkipped, r.stderr, c.says)
		}
	}
}

// TestMountBackgroundArgs: the daemon of `ferry mount --background` runs
// with the arguments the user gave, --background left out, so no flag is
// lost on the way; relative paths are taken from the directory ferry was
// run in, and the daemon leaves it once its mount is ready.
func TestMountBackgroundArgs(t *testing.T) {
	testutil.NeedFUSE(t)
	srv := testutil.SharedMinIO(t)
	rt, work := t.TempDir(), t.TempDir()
	for _, d := range []string{"st", "mp"} {
		if err := os.Mkdir(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mp := filepath.Join(work, "mp")
	testutil.DetachOnCleanup(t, mp)
	env := append(append(os.Environ(), srv.Env()...), "FERRY_RUNTIME_DIR="+rt)
	args := []string{"--endpoint-url", srv.Endpoint, "mount", "--store", "st", "--background=true",
		"--log-level", "debug", "--fetch-timeout", "90s", "--repository-check-interval", "7m",
		"--metrics-addr", "0", "--auto-release-above", "0.95", "--entry-timeout", "2s", "--no-passthrough",
		"--catalog", "sqlite://cat.db", "--events-listen", "127.0.0.1:0", "--events-token", "tok", "--import-sweep-interval", "0", "--", "mp"}
	cmd := exec.Command(ferryBin, args...)
	cmd.Dir, cmd.Env = work, env
	if r := runCmd(t, cmd); r.code != 0 {
		t.Fatalf("mount: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Cleanup(func() {
		cmd := exec.Command(ferryBin, "umount", mp)
		cmd.Env = env
		runCmd(t, cmd)
	})
	regs, err := mounts.List(rt)
	if err != nil || len(regs) != 1 {
		t.Fatalf("registrations: %+v %v", regs, err)
	}
	reg := regs[0]
	if reg.Store != filepath.Join(work, "st") || reg.MountPoint != mp || reg.Catalog != "sqlite://"+filepath.Join(work, "cat.db") {
		t.Errorf("relative paths not taken from ferry's directory: %+v", reg)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", reg.Pid))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")[1:]
	want := slices.DeleteFunc(slices.Clone(args), func(a string) bool { return a == "--background=true" })
	if !slices.Equal(got, want) {
		t.Errorf("the background daemon runs with\n %q\nwant the mount's arguments without --background:\n %q", got, want)
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", reg.Pid)); err != nil || cwd != "/" {
		t.Errorf("the daemon's working directory is %q (%v), want /", cwd, err)
	}
	cmd = exec.Command(ferryBin, "fsx", "describe-file-systems", "--query", "FileSystems[0].FerryStatus.AutoImport.Sources", "--output", "text")
	cmd.Env = env
	if r := runCmd(t, cmd); r.code != 0 || strings.TrimSpace(r.stdout) != "EVENTS" {
		t.Errorf("the background daemon's auto-import sources: %q (exit %d, %s), want EVENTS (--events-listen; --import-sweep-interval 0: no SWEEP)", r.stdout, r.code, r.stderr)
	}
}
