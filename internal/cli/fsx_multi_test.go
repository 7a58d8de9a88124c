package cli_test

import (
	"encoding/json"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/api"
)

// Two file systems on one machine: each command reaches the right daemon
// by --file-system-id, by the current directory, by --store, by
// association id, or by the mount holding each hsm PATH.
func TestFsxTwoFileSystems(t *testing.T) {
	m1 := newMount(t)
	m2 := newMountIn(t, m1.rt)
	bucket := m1.srv.Bucket(t)
	m1.srv.Put(t, bucket, "one/f1", []byte("1"))
	m1.srv.Put(t, bucket, "two/f2", []byte("22"))
	a1, r := m1.create("/one", "s3://"+bucket+"/one")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	a2, r := m2.create("/two", "s3://"+bucket+"/two")
	if r.code != 0 {
		t.Fatal(r.stderr)
	}
	if a1.FileSystemId != m1.id || a2.FileSystemId != m2.id {
		t.Fatalf("created on %s and %s", a1.FileSystemId, a2.FileSystemId)
	}
	m1.waitState(a1.AssociationId, api.LifecycleAvailable) // found by association id among two daemons
	m2.waitState(a2.AssociationId, api.LifecycleAvailable)
	// describe-file-systems lists both.
	out := m1.ok("fsx", "describe-file-systems", "--query", "FileSystems[*].FileSystemId", "--output", "text")
	got := strings.Fields(out)
	sort.Strings(got)
	want := []string{m1.id, m2.id}
	sort.Strings(want)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("describe-file-systems: %q", out)
	}
	// Without a hint describe merges both; with one it shows one.
	paths := func(r result) string {
		var resp api.DescribeDataRepositoryAssociationsResponse
		json.Unmarshal([]byte(r.stdout), &resp)
		var ps []string
		for _, a := range resp.Associations {
			ps = append(ps, a.FileSystemPath)
		}
		sort.Strings(ps)
		return strings.Join(ps, ",") + r.stderr
	}
	if got := paths(m1.ferry("", "fsx", "describe-data-repository-associations")); got != "/one,/two" {
		t.Errorf("all: %s", got)
	}
	if got := paths(m1.ferry("", "fsx", "describe-data-repository-associations", "--filters", "Name=file-system-id,Values="+m2.id)); got != "/two" {
		t.Errorf("by filter: %s", got)
	}
	if got := paths(m1.ferry(m2.mp, "fsx", "describe-data-repository-associations")); got != "/two" {
		t.Errorf("by current directory: %s", got)
	}
	if got := paths(m1.ferry("", "fsx", "describe-data-repository-associations", "--store", m1.st)); got != "/one" {
		t.Errorf("by --store: %s", got)
	}
	// A create without --file-system-id is refused by aws's parser.
	r = m1.ferry("", "fsx", "create-data-repository-association", "--file-system-path", "/x", "--data-repository-path", "s3://"+bucket+"/x")
	if r.code != 252 {
		t.Errorf("create without a file system: %d %s", r.code, r.stderr)
	}
	// hsm: each path to the daemon of its mount, output in argument order.
	p1, p2 := filepath.Join(m1.mp, "one/f1"), filepath.Join(m2.mp, "two/f2")
	out = m1.ok("hsm", "state", p2, p1)
	if out != p2+": (0x0000000d) released exists archived\n"+p1+": (0x0000000d) released exists archived\n" {
		t.Errorf("hsm state over two mounts:\n%s", out)
	}
	m1.ok("hsm", "restore", p1, p2)
	m1.waitHSMState(p1, "(0x00000009) exists archived")
	m1.waitHSMState(p2, "(0x00000009) exists archived")
}
