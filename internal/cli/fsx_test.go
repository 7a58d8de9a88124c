package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// mountEnv is a `ferry mount --background` daemon with its own runtime
// directory, run like a user runs it.
type mountEnv struct {
	t          *testing.T
	srv        *testutil.MinIO
	rt, st, mp string
	id         string
	extraEnv   []string // for the next mount
	extraArgs  []string // for the next mount
}

func newMount(t *testing.T) *mountEnv {
	t.Helper()
	return newMountIn(t, t.TempDir())
}

// newMountIn mounts a new store with the runtime directory rt (several
// daemons of one machine share it).
func newMountIn(t *testing.T, rt string) *mountEnv {
	t.Helper()
	testutil.NeedFUSE(t)
	m := &mountEnv{t: t, srv: testutil.SharedMinIO(t), rt: rt, st: t.TempDir(), mp: t.TempDir()}
	testutil.DetachOnCleanup(t, m.mp)
	m.mount()
	t.Cleanup(func() { m.ferry("", "umount", m.mp) })
	return m
}

// in returns m for subtest t: the same mount, with failures reported to t.
func (m *mountEnv) in(t *testing.T) *mountEnv {
	c := *m
	c.t = t
	return &c
}

func (m *mountEnv) mount() {
	m.t.Helper()
	cmd := exec.Command(ferryBin, append(append([]string{"mount", "--background"}, m.extraArgs...), "--store", m.st, m.mp)...)
	cmd.Env = append(m.env(), m.extraEnv...)
	r := runCmd(m.t, cmd)
	if r.code != 0 {
		m.t.Fatalf("mount: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	m.id = strings.TrimSpace(r.stdout)
}

func (m *mountEnv) env() []string {
	return append(append(os.Environ(), m.srv.Env()...), "FERRY_RUNTIME_DIR="+m.rt, "FSX_ID="+m.id,
		"PATH="+filepath.Dir(ferryBin)+":"+os.Getenv("PATH"))
}

// ferry runs the binary in dir ("" = the test's directory).
func (m *mountEnv) ferry(dir string, args ...string) result {
	m.t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Dir = dir
	cmd.Env = m.env()
	return runCmd(m.t, cmd)
}

// script runs a shell script of testdata with ferry on PATH.
func (m *mountEnv) script(name string) result {
	m.t.Helper()
	cmd := exec.Command("bash", filepath.Join("testdata", name))
	cmd.Env = m.env()
	return runCmd(m.t, cmd)
}

func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{so.String(), se.String(), code}
}

func (m *mountEnv) ok(args ...string) string {
	m.t.Helper()
	r := m.ferry("", args...)
	if r.code != 0 {
		m.t.Fatalf("ferry %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func (m *mountEnv) describe(id string) api.DataRepositoryAssociation {
	m.t.Helper()
	var resp api.DescribeDataRepositoryAssociationsResponse
	out := m.ok("fsx", "describe-data-repository-associations", "--association-ids", id)
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.Associations) != 1 {
		m.t.Fatalf("describe %s: %v\n%s", id, err, out)
	}
	return resp.Associations[0]
}

func (m *mountEnv) waitState(id string, want api.DataRepositoryLifecycle) api.DataRepositoryAssociation {
	m.t.Helper()
	var a api.DataRepositoryAssociation
	testutil.Eventually(m.t, 60*time.Second, id+" "+string(want), func() bool {
		a = m.describe(id)
		return a.Lifecycle == want
	})
	return a
}

func (m *mountEnv) create(path, repo string, extra ...string) (api.DataRepositoryAssociation, result) {
	m.t.Helper()
	args := append([]string{"fsx", "create-data-repository-association", "--file-system-id", m.id, "--file-system-path", path, "--data-repository-path", repo}, extra...)
	r := m.ferry("", args...)
	var resp api.CreateDataRepositoryAssociationResponse
	if r.code == 0 {
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			m.t.Fatalf("create output: %v\n%s", err, r.stdout)
		}
		return *resp.Association, r
	}
	return api.DataRepositoryAssociation{}, r
}

func ensureBucket(t *testing.T, srv *testutil.MinIO, bucket string) {
	t.Helper()
	_, err := srv.Client(t).S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	if err != nil && !strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
		t.Fatal(err)
	}
}

// The rules of semantics §1 through the CLI: overlaps and a ninth
// association refused, tokens, IncompatibleParameterError, and a restart
// keeps the associations.
func TestFsxRulesTokensRestart(t *testing.T) {
	m := newMount(t)
	bucket := m.srv.Bucket(t)
	a, r := m.create("/ns1", "s3://"+bucket+"/ns1", "--client-request-token", "tok-1", "--tags", "Key=Name,Value=one", "Key=Owner,Value=me")
	if r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	if len(a.Tags) != 2 || a.Lifecycle != api.LifecycleCreating {
		t.Errorf("created %+v", a)
	}
	// Same token, same parameters: the same association.
	b, r := m.create("/ns1", "s3://"+bucket+"/ns1", "--client-request-token", "tok-1", "--tags", "Key=Name,Value=one", "Key=Owner,Value=me")
	if r.code != 0 || b.AssociationId != a.AssociationId {
		t.Errorf("replay: %d %s %s", r.code, b.AssociationId, r.stderr)
	}
	// Same token, other parameters.
	_, r = m.create("/other", "s3://"+bucket+"/other", "--client-request-token", "tok-1")
	if r.code != 254 || !strings.Contains(r.stderr, "An error occurred (IncompatibleParameterError) when calling the CreateDataRepositoryAssociation operation: ") {
		t.Errorf("reused token: exit %d\n%s", r.code, r.stderr)
	}
	for _, c := range []struct{ path, repo, code string }{
		{"/ns1/ns2", "s3://" + bucket + "/x", "BadRequest"},
		{"/y", "s3://" + bucket + "/ns1/sub", "BadRequest"},
		{"/", "s3://" + bucket + "/root", "BadRequest"},
	} {
		_, r := m.create(c.path, c.repo)
		if r.code != 254 || !strings.Contains(r.stderr, "An error occurred ("+c.code+")") {
			t.Errorf("overlap %s %s: exit %d\n%s", c.path, c.repo, r.code, r.stderr)
		}
	}
	// Seven more at once, in parallel: all end AVAILABLE (none FAILS for
	// being queued); then a ninth is refused.
	errs := make(chan error, 7)
	for i := 2; i <= 8; i++ {
		go func() {
			_, r := m.create(fmt.Sprintf("/d%d", i), fmt.Sprintf("s3://%s/d%d", bucket, i))
			if r.code != 0 {
				errs <- fmt.Errorf("create /d%d: %d %s", i, r.code, r.stderr)
				return
			}
			errs <- nil
		}()
	}
	for range 7 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	_, r = m.create("/d9", "s3://"+bucket+"/d9")
	if r.code != 254 || !strings.Contains(r.stderr, "(ServiceLimitExceeded)") {
		t.Errorf("ninth: exit %d\n%s", r.code, r.stderr)
	}
	var all api.DescribeDataRepositoryAssociationsResponse
	testutil.Eventually(t, 60*time.Second, "eight AVAILABLE", func() bool {
		out := m.ok("fsx", "describe-data-repository-associations", "--filters", "Name=file-system-id,Values="+m.id)
		all = api.DescribeDataRepositoryAssociationsResponse{}
		json.Unmarshal([]byte(out), &all)
		n := 0
		for _, a := range all.Associations {
			if a.Lifecycle == api.LifecycleAvailable {
				n++
			}
		}
		return n == 8
	})
	// text and table output, --query
	out := m.ok("fsx", "describe-data-repository-associations", "--query", "length(Associations)", "--output", "text")
	if strings.TrimSpace(out) != "8" {
		t.Errorf("--query length: %q", out)
	}
	out = m.ok("fsx", "describe-data-repository-associations", "--association-ids", a.AssociationId, "--output", "table")
	if !strings.Contains(out, "DescribeDataRepositoryAssociations") || !strings.Contains(out, "/ns1") {
		t.Errorf("table:\n%s", out)
	}
	// Paging: 3 per page.
	out = m.ok("fsx", "describe-data-repository-associations", "--max-results", "3")
	var page api.DescribeDataRepositoryAssociationsResponse
	json.Unmarshal([]byte(out), &page)
	if len(page.Associations) != 3 || page.NextToken == "" {
		t.Errorf("page: %s", out)
	}
	// A restart keeps them, and their states.
	m.ok("umount", m.mp)
	testutil.WaitUnmounted(t, m.mp, 10*time.Second)
	r = m.ferry("", "fsx", "describe-data-repository-associations")
	if r.code != 254 || !strings.Contains(r.stderr, "ferry mount") || !strings.Contains(r.stderr, m.rt) {
		t.Errorf("no daemon: exit %d\n%s", r.code, r.stderr)
	}
	m.mount()
	out = m.ok("fsx", "describe-data-repository-associations", "--query", "Associations[?Lifecycle=='AVAILABLE'] | length(@)")
	if strings.TrimSpace(out) != "8" {
		t.Errorf("after restart: %s", out)
	}
	// Update and delete through the CLI, found from the current directory.
	r = m.ferry(m.mp, "fsx", "update-data-repository-association", "--association-id", a.AssociationId, "--imported-file-chunk-size", "64", "--query", "Association.Lifecycle", "--output", "text")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "UPDATING" {
		t.Errorf("update: %d %s %s", r.code, r.stdout, r.stderr)
	}
	m.waitState(a.AssociationId, api.LifecycleAvailable)
	r = m.ferry(m.mp, "fsx", "delete-data-repository-association", "--association-id", a.AssociationId, "--delete-data-in-file-system")
	if r.code != 0 || !strings.Contains(r.stdout, `"Lifecycle": "DELETING"`) || !strings.Contains(r.stdout, `"DeleteDataInFileSystem": true`) {
		t.Errorf("delete: %d %s %s", r.code, r.stdout, r.stderr)
	}
	testutil.Eventually(t, 30*time.Second, "deleted", func() bool {
		r := m.ferry("", "fsx", "describe-data-repository-associations", "--association-ids", a.AssociationId)
		return r.code == 254 && strings.Contains(r.stderr, "DataRepositoryAssociationNotFound")
	})
	// describe-file-systems lists the running one.
	out = m.ok("fsx", "describe-file-systems", "--query", "FileSystems[0].[FileSystemId,FerryConfiguration.MountPoint]", "--output", "text")
	if strings.TrimSpace(out) != m.id+"\t"+m.mp {
		t.Errorf("describe-file-systems: %q", out)
	}
}

// A daemon whose credentials S3 refuses leaves associations MISCONFIGURED
// with a message naming the bucket and the cause; the same store mounted
// with good credentials brings them to AVAILABLE by itself.
func TestFsxMisconfiguredCredentials(t *testing.T) {
	m := newMount(t)
	bucket := m.srv.Bucket(t)
	m.ok("umount", m.mp)
	testutil.WaitUnmounted(t, m.mp, 10*time.Second)
	m.extraEnv = []string{"AWS_SECRET_ACCESS_KEY=wrong-secret"}
	m.mount()
	a, r := m.create("/cred", "s3://"+bucket+"/cred")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	a = m.waitState(a.AssociationId, api.LifecycleMisconfigured)
	if a.FailureDetails == nil || !strings.Contains(a.FailureDetails.Message, bucket) || !strings.Contains(a.FailureDetails.Message, "refused the credentials") {
		t.Errorf("FailureDetails: %+v", a.FailureDetails)
	}
	m.ok("umount", m.mp)
	testutil.WaitUnmounted(t, m.mp, 10*time.Second)
	// Good credentials, and the endpoint from --endpoint-url (passed on to
	// the background daemon) rather than the environment.
	m.extraEnv = []string{"AWS_ENDPOINT_URL_S3="}
	m.extraArgs = []string{"--endpoint-url", m.srv.Endpoint}
	m.mount()
	m.waitState(a.AssociationId, api.LifecycleAvailable)
}

func TestFsxCommandLineErrors(t *testing.T) {
	m := newMount(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"fsx", "create-data-repository-association", "--file-system-id", "fs-0123456789abcdef0", "--file-system-path", "/x", "--data-repository-path", "s3://bucket/x"}, 254, "An error occurred (FileSystemNotFound) when calling the CreateDataRepositoryAssociation operation: no running ferry daemon serves file system fs-0123456789abcdef0"},
		{[]string{"fsx", "create-data-repository-association", "--file-system-path", "/x", "--data-repository-path", "s3://bucket/x"}, 252, "--file-system-id"},
		{[]string{"fsx", "create-data-repository-association", "--file-system-id", "FSID", "--file-system-path", "/x", "--data-repository-path", "s3://bucket/x", "--s3", "AutoImportPolicy={Events=[NEW,BOGUS]}"}, 254, "BOGUS"},
		{[]string{"fsx", "create-data-repository-association", "--file-system-id", "FSID", "--data-repository-path", "s3://bucket/x", "--s3", "Nope={}"}, 252, "Error parsing parameter '--s3'"},
		{[]string{"fsx", "create-data-repository-association", "--file-system-id", "FSID", "--data-repository-path", "s3://bucket/x", "--batch-import-meta-data-on-create", "--no-batch-import-meta-data-on-create"}, 252, "not allowed"},
		{[]string{"fsx", "describe-data-repository-associations", "--output", "yaml"}, 252, "--output"},
		{[]string{"fsx", "describe-data-repository-associations", "--query", "Associations[*"}, 252, "--query"},
		{[]string{"fsx", "describe-data-repository-associations", "--bogus"}, 252, "unknown flag"},
		{[]string{"fsx", "update-data-repository-association", "--association-id", "dra-0123456789abcdef0", "--s3", "{}"}, 254, "(DataRepositoryAssociationNotFound)"},
	} {
		for i, a := range c.args {
			if a == "FSID" {
				c.args[i] = m.id
			}
		}
		r := m.ferry("", c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("ferry %s: exit %d (want %d)\n%s", strings.Join(c.args, " "), r.code, c.code, r.stderr)
		}
	}
	// --cli-input-json, with a flag overriding one member.
	in := fmt.Sprintf(`{"FileSystemId":%q,"FileSystemPath":"/in","DataRepositoryPath":"s3://%s/in"}`, m.id, m.srv.Bucket(t))
	out := m.ok("fsx", "create-data-repository-association", "--cli-input-json", in, "--file-system-path", "/in2", "--query", "Association.FileSystemPath", "--output", "text")
	if strings.TrimSpace(out) != "/in2" {
		t.Errorf("--cli-input-json: %q", out)
	}
	// Every command has --help with an example.
	for _, c := range []string{"create-data-repository-association", "describe-data-repository-associations", "update-data-repository-association", "delete-data-repository-association", "describe-file-systems"} {
		out := m.ok("fsx", c, "--help")
		if !strings.Contains(out, "Examples:") || !strings.Contains(out, "ferry fsx "+c) {
			t.Errorf("%s --help lacks an example:\n%s", c, out)
		}
	}
}
