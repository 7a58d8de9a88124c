package writepath

// Tests of what reaches the repository: the write path driven as the
// nodes drive it, with a real exporter over MinIO wired as the daemon
// wires it (Notify, VersionRead, UnseenWriter).

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/testutil"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// xenv is env with a running exporter.
type xenv struct {
	*env
	s3 *s3x.Client
	ex *exporter.Exporter
}

func newExportEnv(t *testing.T) *xenv {
	t.Helper()
	mc := testutil.SharedMinIO(t)
	x := &xenv{s3: mc.Client(t)}
	x.env = newEnvBucket(t, mc.Bucket(t), nil)
	var err error
	x.ex, err = exporter.New(exporter.Config{
		Store: x.st, Catalog: x.cat, S3: x.s3,
		Engine: transfer.New(x.s3, transfer.Options{Concurrency: 4, PartSize: transfer.MinPartSize}),
		Owner:  "test", Workers: 4, Lease: 5 * time.Second,
		RetryBase: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, Poll: 50 * time.Millisecond,
		Version:      "test",
		VersionRead:  x.w.VersionRead,
		UnseenWriter: x.w.UnseenWriter,
	})
	must(t, err)
	x.ex.SetAssociations(dra.NewTable(x.assocs, nil))
	x.notifyMore = x.ex.Notify
	c, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = x.ex.Run(c)
	}()
	t.Cleanup(func() { cancel(); <-done }) // before the catalog closes
	return x
}

// wait is the hsm wait barrier over the whole journal.
func (x *xenv) wait(t testing.TB) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	r, err := x.ex.Wait(c, "")
	if err != nil {
		t.Fatalf("hsm wait: %v (pending %v)", err, entriesOf(r.Pending))
	}
	if len(r.Parked) != 0 {
		t.Fatalf("parked: %v", r.Parked)
	}
}

// s3Body returns the object's bytes, or nil when it does not exist.
func (x *xenv) s3Body(t testing.TB, key string) []byte {
	t.Helper()
	out, err := x.s3.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(x.bucket), Key: aws.String(key)})
	if err != nil {
		if s3x.CodeOf(err) == s3x.CodeNoSuchKey {
			return nil
		}
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(out.Body); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestHardLinksExported: S3 has no links, so every name of a hard-linked
// file is its own object, and a change through any name reaches all of
// them by auto-export — for a link made by Writer.Link, for one made in
// the store directly (recorded at its first lookup, Writer.LookedUp), and
// for a name whose directory was renamed since; a stale name (unlinked) is
// dropped.
func TestHardLinksExported(t *testing.T) {
	x := newExportEnv(t)
	m := func(p string) string { return "ExtData/" + p }
	must(t, x.st.MkdirAll(m("d"), 0o755))
	x.write(m("a"), "v1")
	_, err := x.w.Link(ctx, m("a"), m("d/b"))
	must(t, err)
	// A name made in the store directly, then looked up.
	must(t, x.st.Link(m("a"), m("c")))
	st, err := x.st.Lookup(m("c"))
	must(t, err)
	x.w.LookedUp(ctx, m("c"), &st)
	x.wait(t)
	for _, k := range []string{"data/a", "data/d/b"} {
		if got := x.s3Body(t, k); string(got) != "v1" {
			t.Fatalf("%s: %q after the first export, want v1", k, got)
		}
	}

	check := func(step, want string, keys ...string) {
		t.Helper()
		x.wait(t)
		for _, k := range keys {
			if got := x.s3Body(t, k); !bytes.Equal(got, []byte(want)) {
				t.Errorf("%s: %s holds %q, want %q", step, k, got, want)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	// A write through one name updates every name's object.
	x.write(m("d/b"), "v2")
	check("write through d/b", "v2", "data/a", "data/d/b", "data/c")

	// Names below a renamed directory follow it.
	must(t, x.w.Rename(ctx, m("d"), m("e"), 0))
	x.write(m("a"), "v3")
	check("write after the directory rename", "v3", "data/a", "data/e/b", "data/c")

	// Metadata is the inode's too.
	must(t, x.st.Chmod(m("c"), 0o600))
	must(t, x.w.MetaChanged(ctx, m("c")))
	x.wait(t)
	for _, k := range []string{"data/a", "data/e/b", "data/c"} {
		h, err := x.s3.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(x.bucket), Key: aws.String(k)})
		must(t, err)
		perm, _ := strconv.ParseUint(h.Metadata[posixmeta.KeyPermissions], 8, 32)
		if perm&0o7777 != 0o600 {
			t.Errorf("%s: file-permissions %q after chmod 600", k, h.Metadata[posixmeta.KeyPermissions])
		}
	}

	// An unlinked name is stale: dropped, nothing journaled for it.
	must(t, x.w.Unlink(ctx, m("c")))
	x.wait(t)
	x.write(m("e/b"), "v4")
	check("write after an unlink", "v4", "data/a", "data/e/b")
	st, err = x.st.Lstat(m("a"))
	must(t, err)
	names, err := x.cat.Links(ctx, st.Ino)
	must(t, err)
	if len(names) != 2 || names[0] != "ExtData/a" || names[1] != "ExtData/e/b" {
		t.Errorf("recorded names %q, want ExtData/a and ExtData/e/b", names)
	}
}

// TestRewriteDuringUploadExportedAgain: a file rewritten while its upload
// runs is exported again, and the object ends as the final content — never
// a mix (invariant 2). The writer keeps writing across many uploads, in
// the 1 MiB writes the kernel sends; after it stops and closes, the object
// must equal the file.
func TestRewriteDuringUploadExportedAgain(t *testing.T) {
	x := newExportEnv(t)
	const mib = 1 << 20
	const size = 8 * mib
	f := x.create("ExtData/hot")
	must(t, f.writeAt(strings.Repeat("a", size), 0))
	must(t, f.fsync()) // journaled: the exporter starts uploading
	deadline := time.Now().Add(3 * time.Second)
	for round := byte('b'); time.Now().Before(deadline); round++ {
		// Rewrite the whole file with one letter per round, fsync each
		// round: every round is an acknowledged state of the file.
		if round > 'z' {
			round = 'b'
		}
		for off := 0; off < size; off += mib {
			must(t, f.writeAt(strings.Repeat(string(round), mib), int64(off)))
		}
		must(t, f.fsync())
	}
	final := make([]byte, size)
	_, err := unix.Pread(int(f.fl.Fd()), final, 0)
	must(t, err)
	must(t, f.close())
	x.wait(t)
	got := x.s3Body(t, "data/hot")
	if !bytes.Equal(got, final) {
		t.Fatalf("object (%d bytes, first %q) is not the file's final content (first %q)", len(got), got[:1], final[:1])
	}
	if st := x.state("ExtData/hot"); st.Flags != hsm.Exists|hsm.Archived {
		t.Fatalf("after the last export: %v, want exists archived", st.Flags)
	}
	t.Logf("exporter: %+v", x.ex.Stats())
}
