package cli_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ferry-hpc/ferry/internal/cli"
)

// TestMountEventsTargetARNFlag: --events-target-arn is documented, and a
// value that is not an SQS or SNS ARN is refused before anything is
// mounted, with a line that names the flag and the forms that work.
func TestMountEventsTargetARNFlag(t *testing.T) {
	r := runCmd(t, exec.Command(ferryBin, "mount", "--help"))
	if r.code != 0 || !strings.Contains(r.stdout, "--events-target-arn string") {
		t.Errorf("mount --help: exit %d, want --events-target-arn:\n%s", r.code, r.stdout)
	}
	for _, v := range []string{"my-queue", "arn:aws:s3:::bucket", "arn:aws:lambda:us-east-1:1:function:f"} {
		r := runCmd(t, exec.Command(ferryBin, "mount", "--events-target-arn", v, "--store", t.TempDir(), t.TempDir()))
		if r.code != cli.ExitSkipped || !strings.Contains(r.stderr, "--events-target-arn") || !strings.Contains(r.stderr, "arn:minio:sqs::ID:webhook") {
			t.Errorf("mount --events-target-arn %s: exit %d, stderr:\n%s", v, r.code, r.stderr)
		}
	}
}
