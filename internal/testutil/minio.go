// Package testutil starts the real parts ferry's tests run against: a MinIO
// server on a free 127.0.0.1 port with a temporary data directory, buckets in
// it, and clients for it. With CI=true a missing MinIO binary fails the test
// run instead of skipping it.
package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/s3x"
)

// Test credentials of every MinIO testutil starts.
const (
	AccessKey = "ferrytest"
	SecretKey = "ferrytest-secret"
)

// MinIO is a running MinIO server.
type MinIO struct {
	Endpoint string // http://127.0.0.1:PORT
	DataDir  string
	cmd      *exec.Cmd
	addr     string
	logPath  string
	env      []string // extra environment (StartMinIOEnv)
}

// RepoRoot returns the root of the ferry checkout (where go.mod is).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// MinIOBinary finds the minio binary: $FERRY_MINIO, the project's
// .tools/bin (scripts/tools.sh installs it there), then $PATH.
func MinIOBinary() (string, error) {
	if p := os.Getenv("FERRY_MINIO"); p != "" {
		return p, nil
	}
	p := filepath.Join(RepoRoot(), ".tools", "bin", "minio")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("minio not found: run scripts/tools.sh (or make test), or set FERRY_MINIO")
}

// Need skips the test when a tool is missing, except under CI=true, where a
// missing dependency is a failure.
func Need(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true and a test dependency is missing: %v", err)
	}
	tb.Skipf("skipping: %v", err)
}

// StartMinIO starts a server for this test; it stops when the test ends.
func StartMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	return StartMinIOEnv(tb)
}

// StartMinIOEnv starts a server for this test with extra environment
// variables (NAME=VALUE), such as MinIO's notification targets
// (MINIO_NOTIFY_WEBHOOK_ENABLE_<ID>=on, MINIO_NOTIFY_WEBHOOK_ENDPOINT_<ID>);
// Restart keeps them. It stops when the test ends.
func StartMinIOEnv(tb testing.TB, env ...string) *MinIO {
	tb.Helper()
	bin, err := MinIOBinary()
	Need(tb, err)
	m, err := startMinIO(bin, tb.TempDir(), env)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(m.Stop)
	return m
}

var (
	sharedOnce sync.Once
	shared     *MinIO
	sharedErr  error
	sharedDir  string
)

// SharedMinIO returns one server shared by all tests of the package (tests
// use their own buckets). Packages that use it call RunMain from TestMain so
// the server stops at the end.
func SharedMinIO(tb testing.TB) *MinIO {
	tb.Helper()
	sharedOnce.Do(func() {
		bin, err := MinIOBinary()
		if err != nil {
			sharedErr = err
			return
		}
		sharedDir, err = os.MkdirTemp("", "ferry-minio-")
		if err != nil {
			sharedErr = err
			return
		}
		shared, sharedErr = startMinIO(bin, sharedDir, nil)
	})
	if sharedErr != nil && strings.HasPrefix(sharedErr.Error(), "minio not found") {
		Need(tb, sharedErr)
	}
	if sharedErr != nil {
		tb.Fatal(sharedErr)
	}
	return shared
}

// RunMain runs the package's tests and stops the shared servers (MinIO,
// PostgreSQL) afterwards.
func RunMain(m interface{ Run() int }) int {
	code := m.Run()
	stopSharedPostgres()
	if shared != nil {
		shared.Stop()
		os.RemoveAll(sharedDir)
	}
	return code
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func startMinIO(bin, dir string, env []string) (*MinIO, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		console, err := freeAddr()
		if err != nil {
			return nil, err
		}
		m := &MinIO{Endpoint: "http://" + addr, addr: addr, DataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "minio.log"), env: env}
		if err := m.start(bin, console); err != nil {
			lastErr = err
			continue
		}
		return m, nil
	}
	return nil, lastErr
}

func (m *MinIO) start(bin, console string) error {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "server", "--quiet", "--address", m.addr, "--console-address", console, m.DataDir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+AccessKey, "MINIO_ROOT_PASSWORD="+SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_CI_CD=1")
	cmd.Env = append(cmd.Env, m.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start minio: %w", err)
	}
	logf.Close()
	m.cmd = cmd
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			log, _ := os.ReadFile(m.logPath)
			return fmt.Errorf("minio exited at start: %s", tail(string(log)))
		default:
		}
		// Not /minio/health/ready: it answers 200 before the object layer
		// is up, and S3 requests then fail with 503
		// XMinioServerNotInitialized (TestStartMinIOServes). The cluster
		// check answers 503 until the object layer serves.
		resp, err := http.Get(m.Endpoint + "/minio/health/cluster")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	return fmt.Errorf("minio on %s not ready after 30s", m.addr)
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// Stop kills the server; its data stays in DataDir.
func (m *MinIO) Stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Kill()
		m.cmd.Process.Wait()
		m.cmd = nil
	}
}

// Restart starts the server again on the same address and data (after Stop),
// for outage tests.
func (m *MinIO) Restart(tb testing.TB) {
	tb.Helper()
	bin, err := MinIOBinary()
	Need(tb, err)
	console, err := freeAddr()
	if err != nil {
		tb.Fatal(err)
	}
	if err := m.start(bin, console); err != nil {
		tb.Fatal(err)
	}
}

// Env returns environment variables that point the aws CLI, ferry and other
// S3 tools at this server.
func (m *MinIO) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL_S3=" + m.Endpoint,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
}

// Client returns a ferry S3 client for the server.
func (m *MinIO) Client(tb testing.TB) *s3x.Client {
	tb.Helper()
	// Every server testutil starts has the same credentials, so setting
	// them process-wide is safe for parallel tests; the endpoint is explicit.
	os.Setenv("AWS_ACCESS_KEY_ID", AccessKey)
	os.Setenv("AWS_SECRET_ACCESS_KEY", SecretKey)
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	c, err := s3x.New(context.Background(), s3x.Config{EndpointURL: m.Endpoint, MaxAttempts: 3})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

var bucketSeq atomic.Int64

// Bucket creates a new bucket with a name unique to the test and returns it.
func (m *MinIO) Bucket(tb testing.TB) string {
	tb.Helper()
	c := m.Client(tb)
	name := fmt.Sprintf("t%d-%d", os.Getpid(), bucketSeq.Add(1))
	if _, err := c.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		tb.Fatalf("create bucket %s: %v", name, err)
	}
	return name
}

// Put writes an object with the given body.
func (m *MinIO) Put(tb testing.TB, bucket, key string, body []byte) {
	tb.Helper()
	c := m.Client(tb)
	_, err := c.S3.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(string(body)),
	})
	if err != nil {
		tb.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// PublicRead gives bucket a policy that lets anyone, unsigned, list it and
// read its objects (s3:ListBucket, s3:GetObject for Principal "*"), as a
// public data set's bucket has.
func (m *MinIO) PublicRead(tb testing.TB, bucket string) {
	tb.Helper()
	policy := `{"Version":"2012-10-17","Statement":[` +
		`{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:ListBucket","s3:GetBucketLocation"],"Resource":["arn:aws:s3:::` + bucket + `"]},` +
		`{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::` + bucket + `/*"]}]}`
	_, err := m.Client(tb).S3.PutBucketPolicy(context.Background(), &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)})
	if err != nil {
		tb.Fatalf("public-read policy on %s: %v", bucket, err)
	}
}
