// Package e2e holds end-to-end tests that run the built `ferry` binary —
// `ferry mount` as the daemon users run, `ferry fsx` and `ferry hsm` as
// its clients — against a real MinIO, and break it the way machines break
// (kill -9, a full disk).
package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// ferryBin is the binary under test: built from this tree by TestMain, or
// FERRY_E2E_BIN when set (a binary built elsewhere, e.g. with wiring not
// yet in this tree).
var ferryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-e2e-")
	if err != nil {
		panic(err)
	}
	if ferryBin = os.Getenv("FERRY_E2E_BIN"); ferryBin == "" {
		if ferryBin, err = testutil.BuildFerry(dir); err != nil {
			panic(err)
		}
	}
	code := testutil.RunMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is one file system served by `ferry mount --background`.
type daemon struct {
	t          *testing.T
	srv        *testutil.MinIO
	rt, st, mp string
	id         string
	extraArgs  []string
	// wrap, when set, is a command prefix every ferry command runs
	// under (setpriv dropping capabilities: unpriv_test.go).
	wrap []string
	// bareEnv, when set, is the whole environment of every ferry the
	// test runs (with FERRY_RUNTIME_DIR): none of the server's credentials.
	bareEnv []string
}

func newDaemon(t *testing.T, srv *testutil.MinIO, store string) *daemon {
	t.Helper()
	testutil.NeedFUSE(t)
	d := &daemon{t: t, srv: srv, rt: t.TempDir(), st: store, mp: t.TempDir()}
	testutil.DetachOnCleanup(t, d.mp)
	t.Cleanup(func() { d.run("umount", d.mp) })
	t.Cleanup(d.keepOnFailure)
	return d
}

// keepOnFailure, when the test failed, prints the end of the daemons' logs
// and, with FERRY_E2E_KEEP=DIR, copies the logs and the store's catalog
// to DIR/<test name>/ for a post-mortem (the temporary directories go when
// the test ends).
func (d *daemon) keepOnFailure() {
	if !d.t.Failed() {
		return
	}
	logs, _ := filepath.Glob(filepath.Join(d.rt, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		d.t.Logf("daemon log %s (last %d of %d lines):\n%s", filepath.Base(l), min(len(lines), 40), len(lines),
			strings.Join(lines[max(0, len(lines)-40):], "\n"))
	}
	keep := os.Getenv("FERRY_E2E_KEEP")
	if keep == "" {
		return
	}
	dst := filepath.Join(keep, fmt.Sprintf("%s-%d", strings.ReplaceAll(d.t.Name(), "/", "_"), time.Now().UnixNano()))
	if err := os.MkdirAll(dst, 0o755); err != nil {
		d.t.Logf("FERRY_E2E_KEEP: %v", err)
		return
	}
	for _, src := range append(logs, filepath.Join(d.st, ".ferry")) {
		if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
			d.t.Logf("FERRY_E2E_KEEP: cp %s: %v %s", src, err, out)
		}
	}
	d.t.Logf("logs and catalog kept in %s", dst)
}

func (d *daemon) env() []string {
	if d.bareEnv != nil {
		return append(append([]string(nil), d.bareEnv...), "FERRY_RUNTIME_DIR="+d.rt)
	}
	return append(append(os.Environ(), d.srv.Env()...), "FERRY_RUNTIME_DIR="+d.rt)
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs ferry with args and returns its result.
func (d *daemon) run(args ...string) result {
	d.t.Helper()
	cmd := exec.Command(ferryBin, args...)
	if len(d.wrap) > 0 {
		cmd = exec.Command(d.wrap[0], append(append(d.wrap[1:], ferryBin), args...)...)
	}
	cmd.Env = d.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatalf("ferry %v: %v", args, err)
	}
	return r
}

func (d *daemon) ok(args ...string) string {
	d.t.Helper()
	r := d.run(args...)
	if r.code != 0 {
		d.t.Fatalf("ferry %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// mount starts the daemon over the store and waits for the mount.
func (d *daemon) mount() {
	d.t.Helper()
	args := append(append([]string{"mount", "--background"}, d.extraArgs...), "--store", d.st, d.mp)
	if l := os.Getenv("FERRY_E2E_LOG_LEVEL"); l != "" {
		// For a post-mortem with FERRY_E2E_KEEP: e.g. debug logs every
		// export and object move.
		args = append([]string{"mount", "--log-level", l}, args[1:]...)
	}
	d.id = strings.TrimSpace(d.ok(args...))
}

// pid is the daemon's process id, from its registration.
func (d *daemon) pid() int {
	d.t.Helper()
	b, err := os.ReadFile(filepath.Join(d.rt, d.id+".json"))
	if err != nil {
		d.t.Fatal(err)
	}
	var r struct{ Pid int }
	if err := json.Unmarshal(b, &r); err != nil || r.Pid == 0 {
		d.t.Fatalf("registration %s: %v", b, err)
	}
	return r.Pid
}

// kill9 kills the daemon with SIGKILL, waits for it to be gone and detaches
// its dead mount (the kernel keeps it, answering ENOTCONN).
func (d *daemon) kill9() {
	d.t.Helper()
	pid := d.pid()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		d.t.Fatalf("kill -9 %d: %v", pid, err)
	}
	testutil.Eventually(d.t, 30*time.Second, "the killed daemon gone", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
	if err := syscall.Unmount(d.mp, syscall.MNT_DETACH); err != nil {
		d.t.Fatalf("detach the dead mount: %v", err)
	}
	testutil.WaitUnmounted(d.t, d.mp, 10*time.Second)
}

// associate creates an association of path with s3://bucket/prefix/
// exporting every event, and waits until it is AVAILABLE.
func (d *daemon) associate(path, repo string) {
	d.t.Helper()
	d.associateEvents(path, repo, "NEW,CHANGED,DELETED")
}

// associateEvents is associate with the AutoExportPolicy's events (a
// comma-separated list such as "NEW,CHANGED").
func (d *daemon) associateEvents(path, repo, events string) {
	d.t.Helper()
	out := d.ok("fsx", "create-data-repository-association", "--file-system-id", d.id,
		"--file-system-path", path, "--data-repository-path", repo,
		"--s3", "AutoExportPolicy={Events=["+events+"]}")
	var resp api.CreateDataRepositoryAssociationResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.Association == nil {
		d.t.Fatalf("create: %v\n%s", err, out)
	}
	id := resp.Association.AssociationId
	testutil.Eventually(d.t, 60*time.Second, id+" AVAILABLE", func() bool {
		var dr api.DescribeDataRepositoryAssociationsResponse
		out := d.ok("fsx", "describe-data-repository-associations", "--association-ids", id)
		return json.Unmarshal([]byte(out), &dr) == nil && len(dr.Associations) == 1 &&
			dr.Associations[0].Lifecycle == api.LifecycleAvailable
	})
}

// objectSum returns the sha256 of the object, ok false when it is missing.
func objectSum(t *testing.T, srv *testutil.MinIO, bucket, key string) ([32]byte, bool) {
	t.Helper()
	out, err := srv.Client(t).S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		return [32]byte{}, false
	}
	defer out.Body.Close()
	h := sha256.New()
	if _, err := io.Copy(h, out.Body); err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, true
}

func fileSum(p string) ([32]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

func short(s [32]byte) string { return fmt.Sprintf("%x", s[:6]) }
