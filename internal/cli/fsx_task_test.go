package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

func (m *mountEnv) taskState(id string) api.DataRepositoryTask {
	m.t.Helper()
	var resp api.DescribeDataRepositoryTasksResponse
	out := m.ok("fsx", "describe-data-repository-tasks", "--task-ids", id)
	if err := json.Unmarshal([]byte(out), &resp); err != nil || len(resp.DataRepositoryTasks) != 1 {
		m.t.Fatalf("describe %s: %v\n%s", id, err, out)
	}
	return resp.DataRepositoryTasks[0]
}

func (m *mountEnv) waitTaskEnd(id string) api.DataRepositoryTask {
	m.t.Helper()
	var t api.DataRepositoryTask
	testutil.Eventually(m.t, 60*time.Second, "task "+id+" ends", func() bool {
		t = m.taskState(id)
		switch t.Lifecycle {
		case api.TaskSucceeded, api.TaskFailed, api.TaskCanceled:
			return true
		}
		return false
	})
	return t
}

func (m *mountEnv) createTask(args ...string) (api.DataRepositoryTask, result) {
	m.t.Helper()
	r := m.ferry("", append([]string{"fsx", "create-data-repository-task", "--file-system-id", m.id}, args...)...)
	var resp api.CreateDataRepositoryTaskResponse
	if r.code != 0 {
		return api.DataRepositoryTask{}, r
	}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || resp.DataRepositoryTask == nil {
		m.t.Fatalf("create task output: %v\n%s", err, r.stdout)
	}
	return *resp.DataRepositoryTask, r
}

// Export tasks through the CLI: aws's flags and JSON, the lifecycle, the
// counters, the completion report of the failed files, tokens, typed errors,
// describe filters, cancel. One mount; each behaviour is a subtest, in this
// order (a later one may use the task an earlier one created, and skips
// when there is none).
func TestFsxExportTask(t *testing.T) {
	m := newMount(t)
	bucket := m.srv.Bucket(t)
	a, r := m.create("/data", "s3://"+bucket+"/p")
	if r.code != 0 {
		t.Fatalf("create association: %s", r.stderr)
	}
	m.waitState(a.AssociationId, api.LifecycleAvailable)
	// Files written without an export policy: only a task exports them.
	// The key of the last directory and of its file pass S3's 1024 bytes:
	// two failures (PathSizeTooLong).
	long := "data"
	for i := range 5 {
		long += "/" + strings.Repeat(string(rune('a'+i)), 230)
	}
	for rel, body := range map[string]string{"data/a.txt": "alpha", "data/sub/b.txt": "beta", long + "/x": "x"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(m.mp, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(m.mp, rel), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	report := "Enabled=true,Path=s3://" + bucket + "/reports,Format=REPORT_CSV_20191124,Scope=FAILED_FILES_ONLY"
	var task api.DataRepositoryTask // the first task, once created
	needTask := func(t *testing.T) {
		t.Helper()
		if task.TaskId == "" {
			t.Skip("no task: its creation failed")
		}
	}
	t.Run("create and client token", func(t *testing.T) {
		m := m.in(t)
		created, r := m.createTask("--type", "EXPORT_TO_REPOSITORY", "--paths", "data", "--report", report, "--client-request-token", "exp-1")
		if r.code != 0 {
			t.Fatalf("create task: exit %d\n%s", r.code, r.stderr)
		}
		task = created
		if !strings.HasPrefix(task.TaskId, "task-") || task.Lifecycle != api.TaskPending || task.Type != api.TaskExportToRepository || task.FileSystemId != m.id {
			t.Errorf("created: %+v", task)
		}
		// The same token and parameters: the same task; other parameters: an
		// IncompatibleParameterError.
		again, r := m.createTask("--type", "EXPORT_TO_REPOSITORY", "--paths", "data", "--report", report, "--client-request-token", "exp-1")
		if r.code != 0 || again.TaskId != task.TaskId {
			t.Errorf("replay: exit %d %s\n%s", r.code, again.TaskId, r.stderr)
		}
		_, r = m.createTask("--type", "EXPORT_TO_REPOSITORY", "--paths", "data/sub", "--report", report, "--client-request-token", "exp-1")
		if r.code != 254 || !strings.Contains(r.stderr, "An error occurred (IncompatibleParameterError) when calling the CreateDataRepositoryTask operation") {
			t.Errorf("reused token: exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("counters, objects and report", func(t *testing.T) {
		needTask(t)
		m := m.in(t)
		done := m.waitTaskEnd(task.TaskId)
		s := done.Status
		if done.Lifecycle != api.TaskFailed || s == nil || s.FailedCount != 2 || s.SucceededCount < 2 || s.TotalCount != s.SucceededCount+s.FailedCount ||
			done.FailureDetails == nil || !strings.Contains(done.FailureDetails.Message, "2 of") || done.EndTime == nil {
			t.Fatalf("ended: %+v status %+v", done, s)
		}
		for key, want := range map[string]string{"p/a.txt": "alpha", "p/sub/b.txt": "beta"} {
			if body, ok := objectBody(t, m.srv, bucket, key); !ok || body != want {
				t.Errorf("%s: %q %v", key, body, ok)
			}
		}
		csv, ok := objectBody(t, m.srv, bucket, "reports/"+task.TaskId+"/failures.csv")
		if !ok || !strings.Contains(csv, strings.Repeat("e", 230)+"/x") || !strings.Contains(csv, "PathSizeTooLong") {
			t.Errorf("report: %v\n%s", ok, csv)
		}
	})
	t.Run("describe query and filters", func(t *testing.T) {
		needTask(t)
		m := m.in(t)
		m.waitTaskEnd(task.TaskId)
		// --query and --output text as aws prints them.
		out := m.ok("fsx", "describe-data-repository-tasks", "--task-ids", task.TaskId, "--query", "DataRepositoryTasks[0].[Lifecycle,Status.FailedCount]", "--output", "text")
		if out != "FAILED\t2\n" {
			t.Errorf("query: %q", out)
		}
		// Filters (before any other task exists).
		out = m.ok("fsx", "describe-data-repository-tasks", "--filters", "Name=task-lifecycle,Values=FAILED", "Name=file-system-id,Values="+m.id, "--query", "DataRepositoryTasks[*].TaskId", "--output", "text")
		if strings.TrimSpace(out) != task.TaskId {
			t.Errorf("lifecycle filter: %q", out)
		}
		out = m.ok("fsx", "describe-data-repository-tasks", "--filters", "Name=data-repository-association-id,Values="+a.AssociationId, "--query", "length(DataRepositoryTasks)")
		if strings.TrimSpace(out) != "1" {
			t.Errorf("association filter: %q", out)
		}
		out = m.ok("fsx", "describe-data-repository-tasks", "--filters", "Name=file-system-id,Values=fs-0123456789abcdef0")
		if !strings.Contains(out, `"DataRepositoryTasks": []`) {
			t.Errorf("other file system: %q", out)
		}
	})
	t.Run("typed errors", func(t *testing.T) {
		m := m.in(t)
		if task.TaskId != "" {
			m.waitTaskEnd(task.TaskId)
			r := m.ferry("", "fsx", "cancel-data-repository-task", "--task-id", task.TaskId)
			if r.code != 254 || !strings.Contains(r.stderr, "(DataRepositoryTaskEnded)") {
				t.Errorf("cancel of an ended task: exit %d\n%s", r.code, r.stderr)
			}
		}
		r := m.ferry("", "fsx", "cancel-data-repository-task", "--task-id", "task-0123456789abcdef0")
		if r.code != 254 || !strings.Contains(r.stderr, "(DataRepositoryTaskNotFound)") {
			t.Errorf("cancel of an unknown task: exit %d\n%s", r.code, r.stderr)
		}
		r = m.ferry("", "fsx", "describe-data-repository-tasks", "--task-ids", "task-0123456789abcdef0")
		if r.code != 254 || !strings.Contains(r.stderr, "(DataRepositoryTaskNotFound)") {
			t.Errorf("describe of an unknown task: exit %d\n%s", r.code, r.stderr)
		}
		_, r = m.createTask("--type", "EXPORT_TO_REPOSITORY")
		if r.code != 252 || !strings.Contains(r.stderr, "--report") {
			t.Errorf("missing --report: exit %d\n%s", r.code, r.stderr)
		}
		_, r = m.createTask("--type", "EXPORT_TO_REPOSITORY", "--report", "Enabled=true")
		if r.code != 254 || !strings.Contains(r.stderr, "(BadRequest)") || !strings.Contains(r.stderr, "Report.Path") {
			t.Errorf("report without a path: exit %d\n%s", r.code, r.stderr)
		}
		_, r = m.createTask("--type", "EXPORT_TO_REPOSITORY", "--report", "Enabled=false", "--release-configuration", "DurationSinceLastAccess={Unit=DAYS,Value=0}")
		if r.code != 254 || !strings.Contains(r.stderr, "ReleaseConfiguration applies only to RELEASE_DATA_FROM_FILESYSTEM") {
			t.Errorf("release configuration on an export task: exit %d\n%s", r.code, r.stderr)
		}
	})
	t.Run("subtree export then release", func(t *testing.T) {
		m := m.in(t)
		// A task on a subtree that exports cleanly.
		ok2, r := m.createTask("--type", "EXPORT_TO_REPOSITORY", "--paths", "data/sub", "--report", "Enabled=false")
		if r.code != 0 {
			t.Fatalf("second task: %s", r.stderr)
		}
		if e := m.waitTaskEnd(ok2.TaskId); e.Lifecycle != api.TaskSucceeded {
			t.Fatalf("second task: %+v", e)
		}
		// A release task with --release-configuration in shorthand: the
		// exported files' data goes, their names stay.
		rel, r := m.createTask("--type", "RELEASE_DATA_FROM_FILESYSTEM", "--paths", "data/sub", "--report", "Enabled=false",
			"--release-configuration", "DurationSinceLastAccess={Unit=DAYS,Value=0}")
		if r.code != 0 || rel.ReleaseConfiguration == nil || rel.ReleaseConfiguration.DurationSinceLastAccess == nil {
			t.Fatalf("release task: exit %d %+v\n%s", r.code, rel, r.stderr)
		}
		if e := m.waitTaskEnd(rel.TaskId); e.Lifecycle != api.TaskSucceeded || e.Status == nil || e.Status.ReleasedCapacity == nil || *e.Status.ReleasedCapacity == 0 {
			t.Errorf("release task: %+v %+v", e, e.Status)
		}
		bp := filepath.Join(m.mp, "data/sub/b.txt")
		if out := m.ok("hsm", "state", bp); out != bp+": (0x0000000d) released exists archived\n" {
			t.Errorf("state after the release task: %q", out)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		m := m.in(t)
		// A cancel moves a task that has not ended to CANCELING, and it
		// ends CANCELED.
		third, r := m.createTask("--type", "EXPORT_TO_REPOSITORY", "--report", "Enabled=false")
		if r.code != 0 {
			t.Fatalf("third task: %s", r.stderr)
		}
		r = m.ferry("", "fsx", "cancel-data-repository-task", "--task-id", third.TaskId)
		switch {
		case r.code == 0:
			var resp api.CancelDataRepositoryTaskResponse
			if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || resp.TaskId != third.TaskId || resp.Lifecycle != api.TaskCanceling {
				t.Errorf("cancel: %v %s", err, r.stdout)
			}
			if e := m.waitTaskEnd(third.TaskId); e.Lifecycle != api.TaskCanceled {
				t.Errorf("canceled task: %+v", e)
			}
		case strings.Contains(r.stderr, "(DataRepositoryTaskEnded)"):
			// It ran to its end before the cancel arrived.
		default:
			t.Errorf("cancel: exit %d\n%s", r.code, r.stderr)
		}
	})
}
