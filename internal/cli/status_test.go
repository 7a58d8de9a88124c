package cli_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
)

// ferry status of a real mount: the text view, --query, and --watch with
// a stdout that is no terminal (a pipe to the test): one snapshot per
// interval, no screen control, as many as --count.
func TestStatusWatch(t *testing.T) {
	m := newMount(t)
	bucket := m.srv.Bucket(t)
	a, r := m.create("/data", "s3://"+bucket+"/p", "--s3", "AutoExportPolicy={Events=[NEW,CHANGED,DELETED]}")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	m.waitState(a.AssociationId, api.LifecycleAvailable)
	if err := os.WriteFile(filepath.Join(m.mp, "data/a.txt"), []byte("alpha"), 0o644); err != nil {
		t.Fatal(err)
	}

	// JSON: two documents, one interval apart.
	out := m.ok("status", "--watch", "--interval", "300ms", "--count", "2", "--output", "json")
	dec := json.NewDecoder(strings.NewReader(out))
	var snaps []api.Status
	for {
		var s api.Status
		err := dec.Decode(&s)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("snapshot %d: %v\n%s", len(snaps)+1, err, out)
		}
		snaps = append(snaps, s)
	}
	if len(snaps) != 2 || strings.Contains(out, "\x1b[") {
		t.Fatalf("want 2 JSON snapshots without screen control, got %d:\n%q", len(snaps), out)
	}
	for _, s := range snaps {
		if s.FileSystemId != m.id || len(s.Nodes) != 1 || s.Nodes[0].MountPoint != m.mp || len(s.Associations) != 1 ||
			s.Associations[0].FileSystemPath != "/data" || s.Associations[0].Lifecycle != api.LifecycleAvailable {
			t.Errorf("snapshot: %+v", s)
		}
	}
	if gap := snaps[1].Time.Sub(snaps[0].Time.Time); gap < 250*time.Millisecond {
		t.Errorf("snapshots %s apart, want one --interval (300ms)", gap)
	}

	// Text: two views, each with its header and sections.
	out = m.ok("status", "-w", "--interval", "200ms", "--count", "2")
	if n := strings.Count(out, m.id+"  "); n != 2 || strings.Count(out, "\nASSOCIATIONS\n") != 2 || strings.Contains(out, "\x1b[") {
		t.Fatalf("want 2 text snapshots (got %d):\n%s", n, out)
	}
	for _, want := range []string{"\nNODES\n", m.id + "@", a.AssociationId, "/data", "s3://" + bucket + "/p/", "AVAILABLE", "\nTASKS\n", "(none running)", "\nCACHE   "} {
		if !strings.Contains(out, want) {
			t.Errorf("text view lacks %q:\n%s", want, out)
		}
	}

	// On a terminal (util-linux script gives the command a pseudo-terminal):
	// each snapshot clears the screen and redraws from its top-left corner.
	if script, err := exec.LookPath("script"); err == nil {
		cmd := exec.Command(script, "-qec", ferryBin+" status --watch --interval 200ms --count 2", "/dev/null")
		cmd.Env = m.env()
		r := runCmd(t, cmd)
		if r.code != 0 || strings.Count(r.stdout, "\x1b[H\x1b[2J"+m.id+"  ") != 2 {
			t.Errorf("watch on a terminal: exit %d\n%q\n%s", r.code, r.stdout, r.stderr)
		}
	}

	// Once, chosen by the mount holding the current directory; --query.
	if out := m.ferry(filepath.Join(m.mp, "data"), "status").stdout; !strings.HasPrefix(out, m.id+"  ") {
		t.Errorf("status inside the mount:\n%s", out)
	}
	if out := m.ok("status", "--query", "Associations[0].[FileSystemPath,Lifecycle]", "--output", "text"); out != "/data\tAVAILABLE\n" {
		t.Errorf("--query --output text: %q", out)
	}
	if out := m.ok("status", "--query", "Nodes[0].MountPoint"); out != `"`+m.mp+`"`+"\n" {
		t.Errorf("--query alone prints json: %q", out)
	}
	if out := m.ok("status", "--help"); !strings.Contains(out, "Examples:") || !strings.Contains(out, "ferry status --watch") {
		t.Errorf("help without an example:\n%s", out)
	}

	// Bad flags: exit 2, naming the flag.
	for _, c := range []struct{ args []string }{
		{[]string{"--interval", "0s", "-w"}},
		{[]string{"--count", "2"}},
		{[]string{"--output", "yaml"}},
		{[]string{"--query", "Nodes[0"}},
		{[]string{"--file-system-id", "fs-0123456789abcdef0"}},
	} {
		r := m.ferry("", append([]string{"status"}, c.args...)...)
		flag := strings.TrimPrefix(c.args[0], "--")
		if c.args[0] == "--file-system-id" {
			if r.code != 254 || !strings.Contains(r.stderr, "fs-0123456789abcdef0") {
				t.Errorf("status %v: exit %d\n%s", c.args, r.code, r.stderr)
			}
			continue
		}
		if r.code != 2 || !strings.Contains(r.stderr, flag) {
			t.Errorf("status %v: exit %d\n%s", c.args, r.code, r.stderr)
		}
	}
}
