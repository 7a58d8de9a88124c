package syncplan

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.RunMain(m)) }

// listAll drains an iterator.
func listAll(t *testing.T, it Iterator) []Entry {
	t.Helper()
	var out []Entry
	for {
		e, ok, err := it.Next()
		if err != nil {
			t.Fatalf("list: %v", err)
		}
		if !ok {
			return out
		}
		out = append(out, e)
	}
}

func rels(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Rel
	}
	return out
}

func TestListS3(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	c := srv.Client(t)
	bucket := srv.Bucket(t)
	before := time.Now().Add(-time.Minute)
	for key, body := range map[string]string{
		"pre/a0":      "1", // MinIO cannot hold both "pre/a" and "pre/a/b"
		"pre/a.txt":   "22",
		"pre/a/b":     "333",
		"pre/b/":      "", // folder object: skipped
		"pre/b/c":     "4444",
		"pre/é":       "5",
		"pre/":        "", // the prefix's own folder object
		"prefix-else": "6",
		"top":         "7",
	} {
		srv.Put(t, bucket, key, []byte(body))
	}
	ctx := context.Background()

	got := listAll(t, ListS3(ctx, c, bucket, "pre/"))
	if want := []string{"a.txt", "a/b", "a0", "b/c", "é"}; !reflect.DeepEqual(rels(got), want) {
		t.Errorf("prefix pre/: rels %q, want %q", rels(got), want)
	}
	for _, e := range got {
		if e.Path != "pre/"+e.Rel {
			t.Errorf("%q: Path %q, want the full key", e.Rel, e.Path)
		}
		if e.ETag == "" || strings.Contains(e.ETag, `"`) {
			t.Errorf("%q: ETag %q", e.Rel, e.ETag)
		}
		if e.ModTime.Before(before) || e.ModTime.After(time.Now().Add(time.Minute)) {
			t.Errorf("%q: ModTime %v is not now", e.Rel, e.ModTime)
		}
	}
	sizes := map[string]int64{}
	for _, e := range got {
		sizes[e.Rel] = e.Size
	}
	if want := map[string]int64{"a0": 1, "a.txt": 2, "a/b": 3, "b/c": 4, "é": 1}; !reflect.DeepEqual(sizes, want) {
		t.Errorf("sizes %v, want %v", sizes, want)
	}

	got = listAll(t, ListS3(ctx, c, bucket, ""))
	if want := []string{"pre/a.txt", "pre/a/b", "pre/a0", "pre/b/c", "pre/é", "prefix-else", "top"}; !reflect.DeepEqual(rels(got), want) {
		t.Errorf("whole bucket: rels %q, want %q", rels(got), want)
	}

	if got := listAll(t, ListS3(ctx, c, bucket, "nothing/")); len(got) != 0 {
		t.Errorf("empty prefix listed %v", got)
	}

	it := ListS3(ctx, c, bucket+"-missing", "")
	if _, ok, err := it.Next(); ok || err == nil {
		t.Errorf("missing bucket: ok %v err %v, want an error", ok, err)
	}
}

// TestListS3Pages lists more than one ListObjectsV2 page and stops a listing
// half way.
func TestListS3Pages(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	c := srv.Client(t)
	bucket := srv.Bucket(t)
	ctx := context.Background()
	const n = 1205
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	var want []string
	for i := 0; i < n; i++ {
		// Names whose byte order differs from a naive numeric or
		// component-wise order.
		key := fmt.Sprintf("p/%d", i)
		if i%3 == 0 {
			key += "/x"
		}
		want = append(want, strings.TrimPrefix(key, "p/"))
		g.Go(func() error {
			_, err := c.S3.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("x")})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	got := rels(listAll(t, ListS3(ctx, c, bucket, "p/")))
	sortedWant := append([]string(nil), want...)
	sortStrings(sortedWant)
	if !reflect.DeepEqual(got, sortedWant) {
		t.Errorf("listed %d entries, want %d in byte order", len(got), len(sortedWant))
	}

	it := ListS3(ctx, c, bucket, "p/")
	if _, ok, err := it.Next(); !ok || err != nil {
		t.Fatalf("first entry: %v %v", ok, err)
	}
	done := make(chan struct{})
	go func() { it.(interface{ Close() error }).Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not stop the listing within 30s")
	}
	if _, ok, err := it.Next(); ok || err == nil {
		t.Errorf("Next after Close: ok %v err %v, want an error", ok, err)
	}
}

// TestPlanDownloadAgainstMinIO checks the compare rules on real listing
// times (MinIO lists milliseconds): a local file whose mtime aws set from
// the object (whole seconds) is not downloaded again, with or without
// --exact-timestamps mattering as aws's rules say.
func TestPlanDownloadAgainstMinIO(t *testing.T) {
	srv := testutil.SharedMinIO(t)
	c := srv.Client(t)
	bucket := srv.Bucket(t)
	ctx := context.Background()
	srv.Put(t, bucket, "d/same", []byte("abc"))
	srv.Put(t, bucket, "d/size", []byte("abcd"))
	srv.Put(t, bucket, "d/newer-local", []byte("abc"))
	srv.Put(t, bucket, "d/only-remote", []byte("abc"))
	objs := map[string]Entry{}
	for _, e := range listAll(t, ListS3(ctx, c, bucket, "d/")) {
		objs[e.Rel] = e
	}
	local := t.TempDir()
	mkfiles(t, local, "newer-local", "only-local", "same", "size")
	for _, name := range []string{"newer-local", "same", "size"} {
		if err := os.WriteFile(filepath.Join(local, name), []byte("abc"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// As aws after a download: mtime = LastModified, whole seconds.
	setMtime := func(name string, mt time.Time) {
		if err := os.Chtimes(filepath.Join(local, name), mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	setMtime("same", objs["same"].ModTime.Truncate(time.Second))
	setMtime("size", objs["size"].ModTime.Truncate(time.Second))
	setMtime("newer-local", objs["newer-local"].ModTime.Add(2*time.Second))

	run := func(mode CompareMode) []string {
		var out []string
		err := Plan(ctx, ListS3(ctx, c, bucket, "d/"), WalkLocal(ctx, local, LocalOptions{}), Options{Direction: Download, Compare: mode, Delete: true}, func(a Action) error {
			out = append(out, render([]Action{a})...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := run(CompareDefault), []string{"update newer-local", "delete only-local", "copy only-remote", "update size"}; !reflect.DeepEqual(got, want) {
		t.Errorf("default: %q, want %q", got, want)
	}
	// --exact-timestamps: "same" differs by MinIO's milliseconds unless
	// LastModified happens to be a whole second.
	got := run(CompareExactTimestamps)
	wantExact := []string{"update newer-local", "delete only-local", "copy only-remote"}
	if objs["same"].ModTime.Nanosecond() != 0 {
		wantExact = append(wantExact, "update same")
	}
	wantExact = append(wantExact, "update size")
	if !reflect.DeepEqual(got, wantExact) {
		t.Errorf("exact timestamps: %q, want %q", got, wantExact)
	}
}
