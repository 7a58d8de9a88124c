package cli_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// closedPort returns a loopback address nothing listens on: an instance
// metadata service that refuses every connection.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// silentPort returns a loopback address that accepts connections and
// never answers: an instance metadata service that hangs.
func silentPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// noCredentials runs ferry with no credentials anywhere: an empty HOME (no
// ~/.aws), no AWS_* variables but the instance metadata endpoint, pointed
// at imds on loopback (so nothing leaves the machine), and the server's
// endpoint on the command line.
func noCredentials(t *testing.T, srv *testutil.MinIO, dir, imds string, args ...string) (result, time.Duration) {
	t.Helper()
	cmd := exec.Command(ferryBin, append([]string{"--endpoint-url", srv.Endpoint}, args...)...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://" + imds}
	start := time.Now()
	r := runCmd(t, cmd)
	return r, time.Since(start)
}

// A public bucket (anonymous s3:ListBucket and s3:GetObject, as MinIO's
// bucket policy grants them) is listed, copied and synced with
// --no-sign-request by a ferry that has no credentials at all. Without the
// flag the same commands fail within seconds, without waiting on the
// metadata service, and the message names the credential chain and the
// flag. A private bucket refuses the unsigned requests with a message
// that says so.
func TestNoSignRequest(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	pub, priv := srv.Bucket(t), srv.Bucket(t)
	srv.PublicRead(t, pub)
	big := randBytes(12 << 20)
	srv.Put(t, pub, "ExtData/HEMCO/a.nc", []byte("alpha"))
	srv.Put(t, pub, "ExtData/HEMCO/big.nc", big)
	srv.Put(t, pub, "ExtData/CHEM_INPUTS/b.nc", []byte("beta"))
	srv.Put(t, priv, "secret.nc", []byte("secret"))
	work := t.TempDir()
	imds := closedPort(t)

	r, _ := noCredentials(t, srv, work, imds, "--no-sign-request", "s3", "ls", "s3://"+pub+"/ExtData/", "--recursive")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "ExtData/HEMCO/big.nc") {
		t.Fatalf("ls --no-sign-request: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r, _ = noCredentials(t, srv, work, imds, "--no-sign-request", "s3", "cp", "s3://"+pub+"/ExtData/HEMCO/big.nc", "big.nc", "--part-size", "5MiB", "--multipart-threshold", "5MiB")
	if r.code != 0 {
		t.Fatalf("cp --no-sign-request: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(work, "big.nc")); string(got) != string(big) {
		t.Errorf("big.nc: %d bytes, not the object's %d", len(got), len(big))
	}
	r, _ = noCredentials(t, srv, work, imds, "--no-sign-request", "s3", "sync", "s3://"+pub+"/ExtData", "ExtData")
	if r.code != 0 || len(r.lines()) != 3 {
		t.Fatalf("sync --no-sign-request: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got, _ := os.ReadFile(filepath.Join(work, "ExtData", "CHEM_INPUTS", "b.nc")); string(got) != "beta" {
		t.Errorf("synced b.nc = %q", got)
	}
	// A second sync finds nothing to do (the listing compares as signed).
	if r, _ = noCredentials(t, srv, work, imds, "--no-sign-request", "s3", "sync", "s3://"+pub+"/ExtData", "ExtData"); r.code != 0 || len(r.lines()) != 0 {
		t.Errorf("second sync: exit %d %q %s", r.code, r.lines(), r.stderr)
	}

	// Without the flag: fast failure naming the chain and the flag, with
	// a metadata service that refuses and one that never answers.
	for _, md := range []struct{ name, addr string }{{"refused", imds}, {"silent", silentPort(t)}} {
		for _, args := range [][]string{
			{"s3", "ls", "s3://" + pub + "/ExtData/"},
			{"s3", "cp", "s3://" + pub + "/ExtData/HEMCO/a.nc", "a.nc"},
			{"s3", "sync", "s3://" + pub + "/ExtData", "other"},
		} {
			r, took := noCredentials(t, srv, work, md.addr, args...)
			if r.code != 1 {
				t.Errorf("IMDS %s, %v without credentials: exit %d, want 1\n%s", md.name, args, r.code, r.stderr)
			}
			for _, want := range []string{"no AWS credentials found", "AWS_ACCESS_KEY_ID", "AWS_PROFILE", "~/.aws/credentials", "instance metadata service (IMDS)", "--no-sign-request"} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("IMDS %s, %v: stderr does not name %q:\n%s", md.name, args, want, r.stderr)
				}
			}
			// Measured: 0.1 s with a refusing, 1.1 s with a silent
			// service (one attempt each for the token and the IMDSv1
			// fallback); before, 5.0 s with either.
			if took > 3*time.Second {
				t.Errorf("IMDS %s, %v without credentials took %v, want a few seconds at most", md.name, args, took.Round(time.Millisecond))
			}
		}
	}

	r, _ = noCredentials(t, srv, work, imds, "--no-sign-request", "s3", "ls", "s3://"+priv+"/")
	if r.code != 1 || !strings.Contains(r.stderr, "access denied to an unsigned request (--no-sign-request)") || !strings.Contains(r.stderr, "drop --no-sign-request") {
		t.Errorf("private bucket unsigned: exit %d %s", r.code, r.stderr)
	}
	r = run(t, srv, work, "--no-sign-request", "s3", "ls", "s3://"+pub+"/", "--request-payer", "requester")
	if r.code != 2 || !strings.Contains(r.stderr, "exclude each other") {
		t.Errorf("--no-sign-request with --request-payer: exit %d %s", r.code, r.stderr)
	}
	r = run(t, srv, work, "s3", "ls", "s3://"+pub+"/", "--request-payer", "owner")
	if r.code != 2 || !strings.Contains(r.stderr, `"owner" is not known`) {
		t.Errorf("--request-payer owner: exit %d %s", r.code, r.stderr)
	}
}

// --request-payer requester puts x-amz-request-payer: requester on every
// request of every s3 command — listings, GETs, ranged GETs, HEADs, PUTs,
// multipart uploads, server-side copies, deletes, bucket creation — and
// without it no request carries the header. MinIO ignores the header, so
// a recording proxy in front of it observes what was sent, and the
// commands' results show the requests still succeed.
func TestRequestPayer(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	proxy := testutil.NewRequestLog(t, srv.Endpoint)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "src", "small.nc"), []byte("small"))
	writeFile(t, filepath.Join(work, "src", "big.nc"), randBytes(11<<20))
	newBucket := "payer-" + strings.ToLower(strings.ReplaceAll(b, "_", "-"))
	cmds := [][]string{
		{"s3", "mb", "s3://" + newBucket},
		{"s3", "sync", "src", "s3://" + b + "/up", "--part-size", "5MiB"},
		{"s3", "sync", "s3://" + b + "/up", "down", "--part-size", "5MiB", "--multipart-threshold", "5MiB"},
		{"s3", "sync", "s3://" + b + "/up", "s3://" + b + "/copy"},
		{"s3", "cp", "s3://" + b + "/up/small.nc", "one.nc"},
		{"s3", "ls", "s3://" + b + "/", "--recursive"},
		{"s3", "sync", "src", "s3://" + b + "/copy", "--delete", "--exclude", "big.nc"},
	}
	for _, withFlag := range []bool{true, false} {
		if !withFlag {
			newBucket += "-2"
			cmds[0][2] = "s3://" + newBucket
			os.RemoveAll(filepath.Join(work, "down"))
			srv.Put(t, b, "copy/extra.nc", []byte("x"))
		}
		seen := map[string]bool{}
		for _, args := range cmds {
			proxy.Reset()
			if withFlag {
				args = append(args, "--request-payer", "requester")
			}
			mustRun(t, srv, work, append(args, "--endpoint-url", proxy.URL)...)
			recs := proxy.Records()
			if len(recs) == 0 {
				t.Fatalf("%v: the proxy saw no request; the test is not measuring", args)
			}
			for _, rec := range recs {
				seen[rec.Method] = true
				got := rec.Header.Get("X-Amz-Request-Payer")
				if withFlag && got != "requester" {
					t.Errorf("%v: %s %s?%s without x-amz-request-payer: requester (%q)", args, rec.Method, rec.Path, rec.RawQuery, got)
				}
				if !withFlag && got != "" {
					t.Errorf("%v without --request-payer: %s %s sent x-amz-request-payer %q", args, rec.Method, rec.Path, got)
				}
				if withFlag && !strings.Contains(rec.Header.Get("Authorization"), "x-amz-request-payer") {
					t.Errorf("%v: %s %s: x-amz-request-payer is not among the signed headers: %s", args, rec.Method, rec.Path, rec.Header.Get("Authorization"))
				}
			}
		}
		for _, m := range []string{"GET", "HEAD", "PUT", "POST"} {
			if !seen[m] {
				t.Errorf("with flag %v: no %s request was seen; the commands do not cover it", withFlag, m)
			}
		}
		if got, _ := os.ReadFile(filepath.Join(work, "down", "small.nc")); string(got) != "small" {
			t.Errorf("with flag %v: downloaded small.nc = %q", withFlag, got)
		}
	}
}
