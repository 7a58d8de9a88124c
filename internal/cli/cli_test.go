package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// These tests run the built ferry binary against a real MinIO, the way a
// user does, and check its output lines, exit codes and the bytes it moves.

var ferryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-cli-test-")
	if err != nil {
		panic(err)
	}
	ferryBin = filepath.Join(dir, "ferry")
	build := exec.Command("go", "build", "-o", ferryBin, "github.com/ferry-hpc/ferry/cmd/ferry")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("build ferry: " + err.Error())
	}
	code := testutil.RunMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// lines returns the non-empty stdout lines, sorted (transfers run in
// parallel, so their order is not fixed).
func (r result) lines() []string {
	var out []string
	for _, l := range strings.Split(r.stdout, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// run runs ferry in dir with the server's environment.
func run(t *testing.T, srv *testutil.MinIO, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(ferryBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), srv.Env()...)
	return runCmd(t, cmd)
}

func mustRun(t *testing.T, srv *testutil.MinIO, dir string, args ...string) result {
	t.Helper()
	r := run(t, srv, dir, args...)
	if r.code != 0 {
		t.Fatalf("ferry %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func equalLines(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func headObject(t *testing.T, srv *testutil.MinIO, bucket, key string) *s3.HeadObjectOutput {
	t.Helper()
	out, err := srv.Client(t).S3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("head s3://%s/%s: %v", bucket, key, err)
	}
	return out
}

// listedTime returns an object's LastModified as ListObjectsV2 gives it.
func listedTime(t *testing.T, srv *testutil.MinIO, bucket, key string) time.Time {
	t.Helper()
	var lm time.Time
	err := srv.Client(t).List(context.Background(), bucket, s3x.ListOptions{Prefix: key}, func(o s3x.Object) error {
		if o.Key == key {
			lm = o.LastModified
		}
		return nil
	})
	if err != nil || lm.IsZero() {
		t.Fatalf("list s3://%s/%s: %v (found: %v)", bucket, key, err, !lm.IsZero())
	}
	return lm
}

func TestSyncUpDownNoop(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	files := map[string][]byte{
		"a.txt":         []byte("hello"),
		"a/b.txt":       []byte("nested"),
		"a-b/c.nc4":     randBytes(70_000),
		"dir/sub/empty": nil,
		"z":             randBytes(1),
	}
	for rel, data := range files {
		writeFile(t, filepath.Join(work, "src", rel), data)
	}
	r := mustRun(t, srv, work, "s3", "sync", "src", "s3://"+b+"/p", "--no-progress")
	equalLines(t, "upload lines", r.lines(),
		"upload: src/a.txt to s3://"+b+"/p/a.txt",
		"upload: src/a/b.txt to s3://"+b+"/p/a/b.txt",
		"upload: src/a-b/c.nc4 to s3://"+b+"/p/a-b/c.nc4",
		"upload: src/dir/sub/empty to s3://"+b+"/p/dir/sub/empty",
		"upload: src/z to s3://"+b+"/p/z",
	)
	if !strings.Contains(r.stderr, "Completed 5 files") {
		t.Errorf("no final summary on stderr: %q", r.stderr)
	}
	// A no-op re-sync copies nothing.
	if r := mustRun(t, srv, work, "s3", "sync", "src", "s3://"+b+"/p"); len(r.lines()) != 0 {
		t.Errorf("no-op upload sync printed %q", r.lines())
	}

	r = mustRun(t, srv, work, "s3", "sync", "s3://"+b+"/p/", "dst", "--no-progress")
	equalLines(t, "download lines", r.lines(),
		"download: s3://"+b+"/p/a.txt to dst/a.txt",
		"download: s3://"+b+"/p/a/b.txt to dst/a/b.txt",
		"download: s3://"+b+"/p/a-b/c.nc4 to dst/a-b/c.nc4",
		"download: s3://"+b+"/p/dir/sub/empty to dst/dir/sub/empty",
		"download: s3://"+b+"/p/z to dst/z",
	)
	for rel, data := range files {
		got, err := os.ReadFile(filepath.Join(work, "dst", rel))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: downloaded content differs (err %v)", rel, err)
		}
		// Download mtime = the object's LastModified, at the resolution the
		// listing gives (AWS: seconds; MinIO: milliseconds).
		lm := listedTime(t, srv, b, "p/"+rel)
		st, err := os.Stat(filepath.Join(work, "dst", rel))
		if err != nil {
			t.Fatal(err)
		}
		if !st.ModTime().Equal(lm) {
			t.Errorf("%s: mtime %v, want LastModified %v", rel, st.ModTime(), lm)
		}
	}
	if r := mustRun(t, srv, work, "s3", "sync", "s3://"+b+"/p/", "dst"); len(r.lines()) != 0 {
		t.Errorf("no-op download sync printed %q", r.lines())
	}
	// Top-level files of the working directory print as ./name, like aws.
	r = mustRun(t, srv, filepath.Join(work, "dst"), "s3", "sync", "s3://"+b+"/p/", ".", "--exact-timestamps", "--exclude", "*", "--include", "z")
	if len(r.lines()) != 0 {
		t.Errorf("exact-timestamps re-sync of an unchanged file printed %q", r.lines())
	}
	os.Remove(filepath.Join(work, "dst", "z"))
	r = mustRun(t, srv, filepath.Join(work, "dst"), "s3", "sync", "s3://"+b+"/p/", ".")
	equalLines(t, "download into .", r.lines(), "download: s3://"+b+"/p/z to ./z")
}

func TestSyncCompareRules(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	// Objects are written now; local files get times around them.
	for _, k := range []string{"same-older", "same-newer", "bigger", "equal-time"} {
		srv.Put(t, b, k, []byte("0123456789"))
	}
	now := time.Now()
	setup := func() string {
		dir := t.TempDir()
		set := func(name string, data string, mtime time.Time) {
			p := filepath.Join(dir, name)
			writeFile(t, p, []byte(data))
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		set("same-older", "abcdefghij", now.Add(-time.Hour))
		set("same-newer", "abcdefghij", now.Add(time.Hour))
		set("bigger", "abcdefghijk", now.Add(-time.Hour))
		set("equal-time", "abcdefghij", listedTime(t, srv, b, "equal-time"))
		return dir
	}
	dl := func(rel string) string { return "download: s3://" + b + "/" + rel + " to " + rel }
	ul := func(rel string) string { return "upload: ./" + rel + " to s3://" + b + "/" + rel }
	tests := []struct {
		name  string
		args  func(dir string) []string
		want  []string
		upDir bool
	}{
		// aws's download rule: a same-size object is downloaded only when the
		// local file is newer than it.
		{"download default", func(d string) []string { return []string{"s3://" + b, "."} },
			[]string{dl("same-newer"), dl("bigger")}, false},
		{"download size-only", func(d string) []string { return []string{"s3://" + b, ".", "--size-only"} },
			[]string{dl("bigger")}, false},
		{"download exact-timestamps", func(d string) []string { return []string{"s3://" + b, ".", "--exact-timestamps"} },
			[]string{dl("same-older"), dl("same-newer"), dl("bigger")}, false},
		// Uploads: copied when the local file is newer than the object.
		{"upload default", func(d string) []string { return []string{".", "s3://" + b, "--dryrun"} },
			[]string{"(dryrun) " + ul("same-newer"), "(dryrun) " + ul("bigger")}, true},
		{"upload size-only", func(d string) []string { return []string{".", "s3://" + b, "--dryrun", "--size-only"} },
			[]string{"(dryrun) " + ul("bigger")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := setup()
			args := append([]string{"s3", "sync"}, tt.args(dir)...)
			args = append(args, "--no-progress")
			if !tt.upDir {
				args = append(args, "--dryrun")
				for i := range tt.want {
					tt.want[i] = "(dryrun) " + strings.Replace(tt.want[i], " to ", " to ./", 1)
				}
			}
			r := mustRun(t, srv, dir, args...)
			equalLines(t, "lines", r.lines(), tt.want...)
		})
	}
	_ = work
}

func TestSyncFiltersAndDelete(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	for _, rel := range []string{"keep.nc", "skip.tmp", "logs/run.log", "logs/keep.nc"} {
		writeFile(t, filepath.Join(work, "src", rel), []byte(rel))
	}
	// Objects only in the destination: one matches an exclude (kept), one not.
	srv.Put(t, b, "d/old.nc", []byte("old"))
	srv.Put(t, b, "d/old.tmp", []byte("old"))
	srv.Put(t, b, "d/folder/", nil) // a folder object is neither copied nor deleted
	r := mustRun(t, srv, work, "s3", "sync", "src", "s3://"+b+"/d", "--delete",
		"--exclude", "*.tmp", "--exclude", "logs/*", "--include", "logs/*.nc", "--no-progress")
	equalLines(t, "filtered sync", r.lines(),
		"upload: src/keep.nc to s3://"+b+"/d/keep.nc",
		"upload: src/logs/keep.nc to s3://"+b+"/d/logs/keep.nc",
		"delete: s3://"+b+"/d/old.nc",
	)
	var keys []string
	srv.Client(t).List(context.Background(), b, s3x.ListOptions{Prefix: "d/"}, func(o s3x.Object) error { keys = append(keys, o.Key); return nil })
	equalLines(t, "objects after sync", keys, "d/folder/", "d/keep.nc", "d/logs/keep.nc", "d/old.tmp")

	// Local delete with a filter, and the dry run of it.
	writeFile(t, filepath.Join(work, "dst", "extra.nc"), []byte("x"))
	writeFile(t, filepath.Join(work, "dst", "extra.tmp"), []byte("x"))
	r = mustRun(t, srv, work, "s3", "sync", "s3://"+b+"/d", "dst", "--delete", "--exclude", "*.tmp", "--dryrun")
	equalLines(t, "dryrun", r.lines(),
		"(dryrun) delete: dst/extra.nc",
		"(dryrun) download: s3://"+b+"/d/keep.nc to dst/keep.nc",
		"(dryrun) download: s3://"+b+"/d/logs/keep.nc to dst/logs/keep.nc",
	)
	if _, err := os.Stat(filepath.Join(work, "dst", "keep.nc")); !os.IsNotExist(err) {
		t.Errorf("dryrun downloaded a file")
	}
	mustRun(t, srv, work, "s3", "sync", "s3://"+b+"/d", "dst", "--delete", "--exclude", "*.tmp")
	for rel, want := range map[string]bool{"extra.nc": false, "extra.tmp": true, "keep.nc": true, "folder": false} {
		_, err := os.Stat(filepath.Join(work, "dst", rel))
		if (err == nil) != want {
			t.Errorf("after sync --delete: %s exists=%v, want %v", rel, err == nil, want)
		}
	}
}

func TestExitCodesAndErrors(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "src", "a"), []byte("a"))
	tests := []struct {
		name     string
		args     []string
		env      []string
		code     int
		inStderr string
	}{
		{"bad URL", []string{"s3", "sync", "src", "s3://"}, nil, 2, "no bucket name"},
		{"unknown flag", []string{"s3", "sync", "src", "s3://" + b, "--bogus"}, nil, 2, "unknown flag"},
		{"both local", []string{"s3", "sync", "src", "other"}, nil, 2, "both local paths"},
		{"missing bucket", []string{"s3", "sync", "src", "s3://no-such-bucket-ferry"}, nil, 1, `bucket "no-such-bucket-ferry" does not exist`},
		{"missing local dir", []string{"s3", "sync", "nope", "s3://" + b}, nil, 1, "nope does not exist"},
		{"bad credentials", []string{"s3", "ls", "s3://" + b}, []string{"AWS_SECRET_ACCESS_KEY=wrong"}, 1, "refused the credentials"},
		{"no credentials", []string{"s3", "ls", "s3://" + b}, []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="}, 1, "no AWS credentials"},
		{"unreachable endpoint", []string{"s3", "ls", "s3://" + b, "--endpoint-url", "http://127.0.0.1:1"}, nil, 1, "cannot reach the endpoint http://127.0.0.1:1"},
		{"ls nothing found", []string{"s3", "ls", "s3://" + b + "/nothing-here"}, nil, 1, ""},
		{"cp prefix without recursive", []string{"s3", "cp", "s3://" + b + "/x/", "."}, nil, 2, "add --recursive"},
		{"part size too small", []string{"s3", "sync", "src", "s3://" + b, "--part-size", "1MiB"}, nil, 2, "--part-size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(ferryBin, tt.args...)
			cmd.Dir = work
			cmd.Env = append(append(os.Environ(), srv.Env()...), tt.env...)
			var se bytes.Buffer
			cmd.Stderr = &se
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, se.String())
			}
			if !strings.Contains(se.String(), tt.inStderr) {
				t.Errorf("stderr %q does not mention %q", se.String(), tt.inStderr)
			}
		})
	}
}

func TestSkippedFileExitsTwo(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "src", "ok"), []byte("ok"))
	if err := syscall.Mkfifo(filepath.Join(work, "src", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := run(t, srv, work, "s3", "sync", "src", "s3://"+b, "--no-progress")
	if r.code != 2 {
		t.Errorf("exit %d, want 2 (stderr %q)", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "warning: Skipping file") || !strings.Contains(r.stderr, "fifo") {
		t.Errorf("no warning for the fifo: %q", r.stderr)
	}
	equalLines(t, "lines", r.lines(), "upload: src/ok to s3://"+b+"/ok")
}

func TestMultipartBoundaries(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	const part = 5 << 20
	sizes := map[string]int{"below": part - 1, "at": part, "above": part + 1, "three": 3*part + 7}
	data := map[string][]byte{}
	for name, n := range sizes {
		data[name] = randBytes(n)
		writeFile(t, filepath.Join(work, "src", name), data[name])
	}
	mustRun(t, srv, work, "s3", "sync", "src", "s3://"+b+"/mp", "--part-size", "5MiB", "--concurrency", "4")
	for name := range sizes {
		etag := aws.ToString(headObject(t, srv, b, "mp/"+name).ETag)
		multipart := strings.Contains(etag, "-")
		// A file of exactly one part goes in one PUT: a one-part multipart
		// upload would only add two requests.
		if want := sizes[name] > part; multipart != want {
			t.Errorf("%s (%d bytes): ETag %s, multipart=%v want %v", name, sizes[name], etag, multipart, want)
		}
	}
	mustRun(t, srv, work, "s3", "sync", "s3://"+b+"/mp", "dst", "--part-size", "5MiB", "--concurrency", "4")
	for name := range sizes {
		got, err := os.ReadFile(filepath.Join(work, "dst", name))
		if err != nil || !bytes.Equal(got, data[name]) {
			t.Errorf("%s: round trip differs (err %v)", name, err)
		}
	}
	// S3→S3 and single-object cp of a multipart object.
	mustRun(t, srv, work, "s3", "sync", "s3://"+b+"/mp", "s3://"+b+"/mp2")
	mustRun(t, srv, work, "s3", "cp", "s3://"+b+"/mp2/three", "copied", "--part-size", "5MiB")
	if got, _ := os.ReadFile(filepath.Join(work, "copied")); !bytes.Equal(got, data["three"]) {
		t.Errorf("cp of an S3→S3 copied multipart object differs")
	}
}

func TestInterruptedDownloadLeavesNoFile(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	big := randBytes(64 << 20)
	writeFile(t, filepath.Join(work, "big"), big)
	mustRun(t, srv, work, "s3", "cp", "big", "s3://"+b+"/big")
	os.Remove(filepath.Join(work, "big"))

	cmd := exec.Command(ferryBin, "s3", "cp", "s3://"+b+"/big", "out/big", "--concurrency", "1", "--part-size", "5MiB")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), srv.Env()...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Interrupt once the download has started writing.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		entries, _ := os.ReadDir(filepath.Join(work, "out"))
		if len(entries) > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(os.Interrupt)
	err := cmd.Wait()
	if err == nil {
		t.Fatal("the download finished before the interrupt arrived; the test checked nothing (make the object larger)")
	}
	if _, err := os.Stat(filepath.Join(work, "out", "big")); !os.IsNotExist(err) {
		t.Errorf("an interrupted download left a file under the final name (err %v)", err)
	}
	entries, _ := os.ReadDir(filepath.Join(work, "out"))
	for _, e := range entries {
		t.Errorf("left behind: %s", e.Name())
	}
}

func TestLs(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	srv.Put(t, b, "top.txt", make([]byte, 1500))
	srv.Put(t, b, "dir/a.nc", make([]byte, 10))
	srv.Put(t, b, "dir/sub/b.nc", make([]byte, 3<<20))
	work := t.TempDir()
	ts := func(key string) string {
		return aws.ToTime(headObject(t, srv, b, key).LastModified).Local().Format("2006-01-02 15:04:05")
	}
	r := mustRun(t, srv, work, "s3", "ls", "s3://"+b)
	want := "                           PRE dir/\n" + ts("top.txt") + "       1500 top.txt\n"
	if r.stdout != want {
		t.Errorf("ls:\n%q\nwant\n%q", r.stdout, want)
	}
	r = mustRun(t, srv, work, "s3", "ls", "s3://"+b+"/dir/", "--recursive", "--summarize", "--human-readable")
	want = ts("dir/a.nc") + "   10 Bytes dir/a.nc\n" + ts("dir/sub/b.nc") + "    3.0 MiB dir/sub/b.nc\n" +
		"\nTotal Objects: 2\n   Total Size: 3.0 MiB\n"
	if r.stdout != want {
		t.Errorf("ls --recursive --summarize --human-readable:\n%q\nwant\n%q", r.stdout, want)
	}
	r = mustRun(t, srv, work, "s3", "ls")
	if !strings.Contains(r.stdout, " "+b+"\n") {
		t.Errorf("bucket list lacks %s: %q", b, r.stdout)
	}
}

func TestCp(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	writeFile(t, filepath.Join(work, "one.nc"), []byte("one"))
	r := mustRun(t, srv, work, "s3", "cp", "one.nc", "s3://"+b+"/dir/")
	equalLines(t, "cp to prefix", r.lines(), "upload: ./one.nc to s3://"+b+"/dir/one.nc")
	r = mustRun(t, srv, work, "s3", "cp", "s3://"+b+"/dir/one.nc", "two.nc")
	equalLines(t, "cp down", r.lines(), "download: s3://"+b+"/dir/one.nc to ./two.nc")
	if got, _ := os.ReadFile(filepath.Join(work, "two.nc")); string(got) != "one" {
		t.Errorf("two.nc = %q", got)
	}
	os.Mkdir(filepath.Join(work, "into"), 0o755)
	r = mustRun(t, srv, work, "s3", "cp", "s3://"+b+"/dir/one.nc", "into")
	equalLines(t, "cp into dir", r.lines(), "download: s3://"+b+"/dir/one.nc to into/one.nc")
	r = mustRun(t, srv, work, "s3", "cp", "s3://"+b+"/dir", "tree", "--recursive")
	equalLines(t, "cp -r", r.lines(), "download: s3://"+b+"/dir/one.nc to tree/one.nc")
	r = run(t, srv, work, "s3", "cp", "s3://"+b+"/dir/missing.nc", ".")
	if r.code != 1 || !strings.Contains(r.stderr, "no such object") {
		t.Errorf("cp of a missing object: exit %d stderr %q", r.code, r.stderr)
	}
}

// A no-op sync sends nothing but the listing requests: the compare uses the
// sizes and times the listing returns.
func TestNoopSyncSendsOnlyListings(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	b := srv.Bucket(t)
	work := t.TempDir()
	for i := 0; i < 30; i++ {
		writeFile(t, filepath.Join(work, "src", "d", string(rune('a'+i%26))+strings.Repeat("x", i)), randBytes(100+i))
	}
	mustRun(t, srv, work, "s3", "sync", "src", "s3://"+b)
	mustRun(t, srv, work, "s3", "sync", "s3://"+b, "dst")
	proxy := testutil.NewRequestLog(t, srv.Endpoint)
	for _, args := range [][]string{{"src", "s3://" + b}, {"s3://" + b, "dst"}} {
		proxy.Reset()
		r := mustRun(t, srv, work, "s3", "sync", args[0], args[1], "--endpoint-url", proxy.URL)
		if len(r.lines()) != 0 {
			t.Errorf("no-op sync %v copied: %q", args, r.lines())
		}
		reqs := proxy.Requests()
		if len(reqs) == 0 {
			t.Fatalf("no-op sync %v: the proxy saw no request; the test is not measuring", args)
		}
		for _, req := range reqs {
			if !strings.HasPrefix(req, "GET /"+b+"?") || !strings.Contains(req, "list-type=2") {
				t.Errorf("no-op sync %v sent %q, want only ListObjectsV2", args, req)
			}
		}
	}
}
