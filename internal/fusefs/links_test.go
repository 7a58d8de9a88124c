package fusefs

import (
	"bytes"
	"os"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferry-hpc/ferry/internal/posixmeta"
)

// TestHardLinksExported: S3 has no links, so every name of a hard-linked
// file is its own object, and a change through any name reaches all of
// them by auto-export — for a link made through the mount, for one made
// in the store outside it (recorded at its first lookup), and for a name
// whose directory was renamed since; a stale name (unlinked) is dropped.
func TestHardLinksExported(t *testing.T) {
	je := mountJournal(t, Options{}, true)
	m := func(p string) string { return je.m("ExtData/" + p) }
	must(t, os.MkdirAll(m("d"), 0o755))
	must(t, os.WriteFile(m("a"), []byte("v1"), 0o644))
	must(t, os.Link(m("a"), m("d/b")))
	// A name made in the store directly, then looked up through the mount.
	must(t, je.st.Link("ExtData/a", "ExtData/c"))
	if _, err := os.Stat(m("c")); err != nil {
		t.Fatal(err)
	}
	je.wait(t)
	for _, k := range []string{"data/a", "data/d/b"} {
		if got := je.s3Body(t, k); string(got) != "v1" {
			t.Fatalf("%s: %q after the first export, want v1", k, got)
		}
	}

	check := func(step, want string, keys ...string) {
		t.Helper()
		je.wait(t)
		for _, k := range keys {
			if got := je.s3Body(t, k); !bytes.Equal(got, []byte(want)) {
				t.Errorf("%s: %s holds %q, want %q", step, k, got, want)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	// A write through one name updates every name's object.
	must(t, os.WriteFile(m("d/b"), []byte("v2"), 0o644))
	check("write through d/b", "v2", "data/a", "data/d/b", "data/c")

	// Names below a renamed directory follow it.
	must(t, os.Rename(m("d"), m("e")))
	must(t, os.WriteFile(m("a"), []byte("v3"), 0o644))
	check("write after the directory rename", "v3", "data/a", "data/e/b", "data/c")

	// Metadata is the inode's too.
	must(t, os.Chmod(m("c"), 0o600))
	je.wait(t)
	for _, k := range []string{"data/a", "data/e/b", "data/c"} {
		h, err := je.s3.S3.HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(je.bucket), Key: aws.String(k)})
		must(t, err)
		perm, _ := strconv.ParseUint(h.Metadata[posixmeta.KeyPermissions], 8, 32)
		if perm&0o7777 != 0o600 {
			t.Errorf("%s: file-permissions %q after chmod 600", k, h.Metadata[posixmeta.KeyPermissions])
		}
	}

	// An unlinked name is stale: dropped, nothing journaled for it.
	must(t, os.Remove(m("c")))
	je.wait(t)
	must(t, os.WriteFile(m("e/b"), []byte("v4"), 0o644))
	check("write after an unlink", "v4", "data/a", "data/e/b")
	ino := lstat(t, m("a")).Ino
	names, err := je.cat.Links(t.Context(), ino)
	must(t, err)
	if len(names) != 2 || names[0] != "ExtData/a" || names[1] != "ExtData/e/b" {
		t.Errorf("recorded names %q, want ExtData/a and ExtData/e/b", names)
	}
}
