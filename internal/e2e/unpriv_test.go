package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// droppedCaps are the capabilities an ordinary user lacks that a root
// daemon would lean on without noticing: giving files to others, and
// reading, writing and changing files whatever their mode says. The test
// runs every ferry command without them (setpriv, util-linux), so the daemon
// has exactly the file rights of an ordinary user that owns the store; it
// keeps CAP_SYS_ADMIN, the right to mount(2), which a user gets from
// fusermount3 instead.
const droppedCaps = "-chown,-dac_override,-dac_read_search,-fowner"

// capChown is CAP_CHOWN's bit in /proc/PID/status CapEff.
const capChown = 1 << 0

// TestWithoutChown runs the whole flow with a daemon that may not chown:
// lazy import (stubs of objects whose owner headers name another user, and
// of a read-only object), hydration, export through the mount with the
// owner the file shows in the headers, an export task, hsm release and
// restore. Before ferry knew it could not chown, every stub failed with
// "cannot create stub … operation not permitted" and the listing was empty.
func TestWithoutChown(t *testing.T) {
	setpriv := needSetpriv(t)
	srv := testutil.SharedMinIO(t)
	bucket := srv.Bucket(t)
	plain, other, owned := random(t, 3<<20), random(t, 1<<20), []byte("before\n")
	srv.Put(t, bucket, "in/plain.dat", plain) // no POSIX headers
	putMeta(t, srv, bucket, "in/other.dat", other, map[string]string{
		"file-owner": "4321", "file-group": "4321", "file-permissions": "0100444"})
	putMeta(t, srv, bucket, "in/owned.dat", owned, map[string]string{
		"file-owner": "4321", "file-group": "4321", "file-permissions": "0100644"})
	putMeta(t, srv, bucket, "in/sub/", nil, map[string]string{
		"file-owner": "4321", "file-group": "4321", "file-permissions": "040755"})
	srv.Put(t, bucket, "in/sub/deep.txt", []byte("deep\n"))
	putMeta(t, srv, bucket, "in/ro/", nil, map[string]string{"file-permissions": "040555"})
	srv.Put(t, bucket, "in/ro/f.txt", []byte("in a read-only directory\n"))

	d := newDaemon(t, srv, t.TempDir())
	d.wrap = setpriv
	self := uint32(os.Geteuid())

	// --uid naming someone else is refused at once, with the fix.
	r := d.run("mount", "--background", "--uid", "4321", "--store", d.st, d.mp)
	if r.code == 0 || !strings.Contains(r.stderr, "CAP_CHOWN") || !strings.Contains(r.stderr, "--uid "+strconv.Itoa(int(self))) {
		t.Fatalf("mount --uid 4321 without CAP_CHOWN: exit %d\n%s", r.code, r.stderr)
	}

	d.mount()
	if eff := capEff(t, d.pid()); eff&capChown != 0 {
		t.Fatalf("the daemon has CAP_CHOWN (CapEff %#x): the test would prove nothing", eff)
	}
	d.associate("/data", "s3://"+bucket+"/in/")

	// Stubs appear, every one the daemon's, modes from the headers.
	names := d.asUser(t, "ls", filepath.Join(d.mp, "data"))
	if got := strings.Fields(names); strings.Join(got, " ") != "other.dat owned.dat plain.dat ro sub" {
		t.Fatalf("ls data: %q", names)
	}
	for name, mode := range map[string]uint32{"plain.dat": 0o644, "other.dat": 0o444, "owned.dat": 0o644, "sub": 0o755, "sub/deep.txt": 0o644, "ro": 0o555, "ro/f.txt": 0o644} {
		st := lstat(t, filepath.Join(d.mp, "data", name))
		if st.Uid != self || st.Gid != uint32(os.Getegid()) || st.Mode&0o7777 != mode {
			t.Errorf("%s: %d:%d %#o, want %d:%d %#o", name, st.Uid, st.Gid, st.Mode&0o7777, self, os.Getegid(), mode)
		}
	}

	// Hydration, the read-only file included.
	for name, want := range map[string][]byte{"plain.dat": plain, "other.dat": other} {
		if got := d.asUser(t, "cat", filepath.Join(d.mp, "data", name)); got != string(want) {
			t.Fatalf("read %s: %d bytes differ from the object's %d", name, len(got), len(want))
		}
	}

	// A write through the mount is exported with the owner the file shows,
	// not the one its object had.
	d.asUser(t, "sh", "-c", `echo after >> "$1"`, "sh", filepath.Join(d.mp, "data/owned.dat"))
	d.asUser(t, "sh", "-c", `echo new > "$1"`, "sh", filepath.Join(d.mp, "data/sub/new.txt"))
	d.ok("hsm", "wait", "--timeout", "60s", filepath.Join(d.mp, "data"))
	for key, body := range map[string]string{"in/owned.dat": "before\nafter\n", "in/sub/new.txt": "new\n"} {
		meta, got := object(t, srv, bucket, key)
		if got != body || meta["file-owner"] != strconv.Itoa(int(self)) || meta["file-group"] != strconv.Itoa(os.Getegid()) {
			t.Errorf("%s: %q with owner headers %s:%s, want %q by %d:%d", key, got, meta["file-owner"], meta["file-group"], body, self, os.Getegid())
		}
	}

	// An export task of an association without an export policy.
	out := d.ok("fsx", "create-data-repository-association", "--file-system-id", d.id,
		"--file-system-path", "/out", "--data-repository-path", "s3://"+bucket+"/out/")
	var created api.CreateDataRepositoryAssociationResponse
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Association == nil {
		t.Fatalf("create /out: %v\n%s", err, out)
	}
	d.waitAvailable(created.Association.AssociationId)
	d.asUser(t, "sh", "-c", `echo result > "$1"`, "sh", filepath.Join(d.mp, "out/result.txt"))
	task := d.exportTask("out")
	if task.Lifecycle != api.TaskSucceeded || task.Status == nil || task.Status.SucceededCount != 1 {
		t.Fatalf("export task: %+v %+v", task, task.Status)
	}
	if meta, got := object(t, srv, bucket, "out/result.txt"); got != "result\n" || meta["file-owner"] != strconv.Itoa(int(self)) {
		t.Errorf("out/result.txt: %q owner %q", got, meta["file-owner"])
	}

	// hsm release drops the read-only file's data, restore fetches it back.
	p := filepath.Join(d.mp, "data/other.dat")
	d.ok("hsm", "release", p)
	if s := d.ok("hsm", "state", p); !strings.Contains(s, "released") {
		t.Fatalf("after release: %s", s)
	}
	d.ok("hsm", "restore", p)
	testutil.Eventually(t, 30*time.Second, "other.dat restored", func() bool {
		return !strings.Contains(d.ok("hsm", "state", p), "released")
	})
	if got := d.asUser(t, "cat", p); got != string(other) {
		t.Fatalf("read after restore: %d bytes differ", len(got))
	}
	if st := lstat(t, p); st.Mode&0o7777 != 0o444 {
		t.Errorf("other.dat mode after release and restore: %#o, want 0444", st.Mode&0o7777)
	}
	if log := d.log(); strings.Contains(log, "cannot create stub") || !strings.Contains(log, "no CAP_CHOWN") {
		t.Errorf("daemon log:\n%s", log)
	}
}

// needSetpriv returns the command prefix that runs a program without
// droppedCaps, or skips the test where that cannot be done.
func needSetpriv(t *testing.T) []string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root, to drop CAP_CHOWN and keep the right to mount")
	}
	bin, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	return []string{bin, "--inh-caps=" + droppedCaps, "--bounding-set=" + droppedCaps, "--"}
}

// asUser runs a program as every ferry command of d runs (d.wrap) and
// returns its standard output; a failure fails the test.
func (d *daemon) asUser(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(d.wrap[0], append(d.wrap[1:], args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// waitAvailable waits for association id to be AVAILABLE.
func (d *daemon) waitAvailable(id string) {
	d.t.Helper()
	testutil.Eventually(d.t, 60*time.Second, id+" AVAILABLE", func() bool {
		var dr api.DescribeDataRepositoryAssociationsResponse
		out := d.ok("fsx", "describe-data-repository-associations", "--association-ids", id)
		return json.Unmarshal([]byte(out), &dr) == nil && len(dr.Associations) == 1 &&
			dr.Associations[0].Lifecycle == api.LifecycleAvailable
	})
}

// exportTask runs an EXPORT_TO_REPOSITORY task of path and returns it ended.
func (d *daemon) exportTask(path string) api.DataRepositoryTask {
	d.t.Helper()
	out := d.ok("fsx", "create-data-repository-task", "--file-system-id", d.id, "--type", "EXPORT_TO_REPOSITORY",
		"--paths", path, "--report", "Enabled=false")
	var resp api.CreateDataRepositoryTaskResponse
	if err := json.Unmarshal([]byte(out), &resp); err != nil || resp.DataRepositoryTask == nil {
		d.t.Fatalf("create task: %v\n%s", err, out)
	}
	var task api.DataRepositoryTask
	testutil.Eventually(d.t, 60*time.Second, "export task ends", func() bool {
		var dr api.DescribeDataRepositoryTasksResponse
		out := d.ok("fsx", "describe-data-repository-tasks", "--task-ids", resp.DataRepositoryTask.TaskId)
		if json.Unmarshal([]byte(out), &dr) != nil || len(dr.DataRepositoryTasks) != 1 {
			return false
		}
		task = dr.DataRepositoryTasks[0]
		return task.Lifecycle == api.TaskSucceeded || task.Lifecycle == api.TaskFailed || task.Lifecycle == api.TaskCanceled
	})
	return task
}

// log returns the daemon's log.
func (d *daemon) log() string {
	b, _ := os.ReadFile(filepath.Join(d.rt, d.id+".log"))
	return string(b)
}

// capEff returns the effective capabilities of process pid.
func capEff(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no CapEff in /proc/%d/status", pid)
	return 0
}

func random(t *testing.T, n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func lstat(t *testing.T, p string) syscall.Stat_t {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// putMeta puts an object with user metadata (keys without x-amz-meta-).
func putMeta(t *testing.T, srv *testutil.MinIO, bucket, key string, body []byte, meta map[string]string) {
	t.Helper()
	_, err := srv.Client(t).S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body), Metadata: meta,
	})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// object returns an object's user metadata and body.
func object(t *testing.T, srv *testutil.MinIO, bucket, key string) (map[string]string, string) {
	t.Helper()
	out, err := srv.Client(t).S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(out.Body)
	return out.Metadata, b.String()
}
