package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// restrictedEnv returns credentials for srv limited to actions on bucket:
// temporary credentials from MinIO's STS AssumeRole with an inline session
// policy (the session may do only what both the root user and the policy
// allow). No admin API needed.
func restrictedEnv(t *testing.T, srv *testutil.MinIO, bucket string, actions ...string) []string {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(testutil.AccessKey, testutil.SecretKey, "")))
	if err != nil {
		t.Fatal(err)
	}
	c := sts.NewFromConfig(cfg, func(o *sts.Options) { o.BaseEndpoint = aws.String(srv.Endpoint) })
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["%s"],"Resource":["arn:aws:s3:::%s","arn:aws:s3:::%s/*"]}]}`,
		strings.Join(actions, `","`), bucket, bucket)
	out, err := c.AssumeRole(context.Background(), &sts.AssumeRoleInput{RoleArn: aws.String("arn:minio:iam:::role/ferry-test"),
		RoleSessionName: aws.String("ferry-test"), Policy: aws.String(policy), DurationSeconds: aws.Int32(3600)})
	if err != nil {
		t.Fatalf("MinIO AssumeRole: %v", err)
	}
	cr := out.Credentials
	return []string{"AWS_ACCESS_KEY_ID=" + aws.ToString(cr.AccessKeyId), "AWS_SECRET_ACCESS_KEY=" + aws.ToString(cr.SecretAccessKey), "AWS_SESSION_TOKEN=" + aws.ToString(cr.SessionToken)}
}

// A repository the daemon may list but not read, or read but not write
// (with an export policy), is MISCONFIGURED with the missing permission
// named.
func TestFsxMisconfiguredDenied(t *testing.T) {
	m := newMount(t)
	bucket := m.srv.Bucket(t)
	m.srv.Put(t, bucket, "r/x", []byte("x"))
	m.srv.Put(t, bucket, "w/x", []byte("x"))
	remount := func(env []string) {
		m.ok("umount", m.mp)
		testutil.WaitUnmounted(t, m.mp, 10*time.Second)
		m.extraEnv = env
		m.mount()
	}
	remount(restrictedEnv(t, m.srv, bucket, "s3:ListBucket"))
	a, r := m.create("/r", "s3://"+bucket+"/r")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	a = m.waitState(a.AssociationId, api.LifecycleMisconfigured)
	if msg := a.FailureDetails.Message; !strings.Contains(msg, "access denied") || !strings.Contains(msg, "s3:GetObject") || !strings.Contains(msg, bucket) {
		t.Errorf("list only: %s", msg)
	}
	remount(restrictedEnv(t, m.srv, bucket, "s3:ListBucket", "s3:GetObject"))
	m.waitState(a.AssociationId, api.LifecycleAvailable)
	w, r := m.create("/w", "s3://"+bucket+"/w", "--s3", "AutoExportPolicy={Events=[NEW,CHANGED]}")
	if r.code != 0 {
		t.Fatalf("create: %s", r.stderr)
	}
	w = m.waitState(w.AssociationId, api.LifecycleMisconfigured)
	if msg := w.FailureDetails.Message; !strings.Contains(msg, "s3:PutObject") || !strings.Contains(msg, bucket) {
		t.Errorf("read only with an export policy: %s", msg)
	}
	// Dropping the export policy is an update that fixes it at once.
	r = m.ferry("", "fsx", "update-data-repository-association", "--association-id", w.AssociationId, "--s3", "AutoImportPolicy={Events=[NEW]}")
	if r.code != 0 {
		t.Fatalf("update: %s", r.stderr)
	}
	m.waitState(w.AssociationId, api.LifecycleAvailable)
}
