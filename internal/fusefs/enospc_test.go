package fusefs

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestFullStoreDisk: the store on a small tmpfs (user xattrs: Linux ≥ 6.6)
// fills up under writes through the mount. Writes get ENOSPC (or close
// reports the failure), nothing whose close returned is lost — every such
// file is exported byte-identical — and once space is freed writing and
// exporting go on (invariant 1 in docs/invariants.md: export resumes after a full disk).
func TestFullStoreDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Need(t, errors.New("needs root to mount a tmpfs"))
	}
	dir := t.TempDir()
	if err := unix.Mount("ferry-test", dir, "tmpfs", 0, "size=24m,mode=0755"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	je := mountJournalAt(t, dir, Options{}, true)
	acked := map[string][]byte{}
	var full error
	// Writers go on after the first ENOSPC (a model retrying its output):
	// the space the catalog frees for itself must not go to them.
	for i, fails := 0, 0; fails < 16 && i < 200; i++ {
		rel := fmt.Sprintf("ExtData/f%03d", i)
		body := randBody(mib+i, uint64(i))
		if err := writeClose(je.m(rel), body); err != nil {
			full = cmp.Or(full, err)
			fails++
			continue
		}
		acked[rel] = body
	}
	if full == nil {
		t.Fatal("the 24 MiB store never filled up")
	}
	if !errors.Is(full, syscall.ENOSPC) && !errors.Is(full, syscall.EIO) {
		t.Fatalf("a write to the full store failed with %v, want ENOSPC (or EIO from close)", full)
	}
	t.Logf("store full after %d acknowledged files: %v", len(acked), full)
	// The catalog's reserve went to the catalog, not to the writers: it is
	// still in place, or as good as free (what the catalog took since).
	kept := int64(0)
	if fi, err := os.Stat(filepath.Join(je.st.MetaPath(), catalog.DefaultFile+"-reserve")); err == nil {
		kept = fi.Size()
	}
	var sfs unix.Statfs_t
	must(t, unix.Statfs(dir, &sfs))
	if free := int64(sfs.Bavail) * sfs.Bsize; kept+free < catalog.DefaultReserve/2 {
		t.Fatalf("the writers took the catalog's reserve: %d bytes kept, %d free after the disk filled", kept, free)
	}
	// Export goes on while the disk is full (the catalog's own writes may
	// fail and are retried); every acknowledged file reaches the bucket.
	for rel, body := range acked {
		testutil.Eventually(t, 90*time.Second, rel+" (acknowledged before the disk filled) exported", func() bool {
			return bytes.Equal(je.s3Body(t, "data/"+rel[len("ExtData/"):]), body)
		})
	}
	// Free space (more than the catalog's reserve, which comes back
	// first); writing and exporting resume.
	n := 0
	for rel := range acked {
		must(t, os.Remove(je.m(rel)))
		if n++; n == 12 {
			break
		}
	}
	body := randBody(mib, 99)
	must(t, os.WriteFile(je.m("ExtData/after"), body, 0o644))
	je.wait(t)
	if got := je.s3Body(t, "data/after"); !bytes.Equal(got, body) {
		t.Fatal("a file written after space was freed was not exported")
	}
}

// writeClose creates path with body; a failed write or close is returned.
func writeClose(path string, body []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, werr := f.Write(body)
	return errors.Join(werr, f.Close())
}
