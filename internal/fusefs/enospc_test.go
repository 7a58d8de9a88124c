package fusefs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	for i := 0; full == nil && i < 200; i++ {
		rel := fmt.Sprintf("ExtData/f%03d", i)
		body := randBody(mib+i, uint64(i))
		f, err := os.Create(je.m(rel))
		if err != nil {
			full = err
			break
		}
		_, werr := f.Write(body)
		cerr := f.Close()
		if werr != nil || cerr != nil {
			full = errors.Join(werr, cerr)
			break
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
	// Export goes on while the disk is full (the catalog's own writes may
	// fail and are retried); every acknowledged file reaches the bucket.
	for rel, body := range acked {
		testutil.Eventually(t, 90*time.Second, rel+" (acknowledged before the disk filled) exported", func() bool {
			return bytes.Equal(je.s3Body(t, "data/"+rel[len("ExtData/"):]), body)
		})
	}
	// Free space; writing and exporting resume.
	n := 0
	for rel := range acked {
		must(t, os.Remove(je.m(rel)))
		if n++; n == 4 {
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
