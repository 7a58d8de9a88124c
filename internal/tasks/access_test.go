package tasks

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/fusefs"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestAutoReleaseLeastRecentlyOpened: files opened through a mount are
// released least recently opened first, by the access records the mount
// writes — opened here in the reverse of the order their own times would
// give, so a release by file times picks another file.
func TestAutoReleaseLeastRecentlyOpened(t *testing.T) {
	testutil.NeedFUSE(t)
	var e *env
	e = newEnv(t, func(c *Config) {
		c.Watermark = 0.35 // 3.5 of 10 MiB: one of the four 1 MiB files goes
		c.Usage = func() (uint64, uint64, error) { return e.usage() }
	})
	e.fourFiles()
	mnt := t.TempDir()
	testutil.DetachOnCleanup(t, mnt)
	srv, fsys, err := fusefs.Mount(mnt, e.st, fusefs.Options{Access: e.cat})
	must(t, err)
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		fsys.Close()
	})

	// Newest of atime/mtime/ctime first: the release walk would take the
	// last of these, which is opened first here.
	names := []string{"a", "b", "c", "d"}
	used := map[string]time.Time{}
	for _, n := range names {
		st, err := e.st.Lstat("ExtData/" + n + ".bin")
		must(t, err)
		used[n] = lastUse(&st)
	}
	slices.SortFunc(names, func(x, y string) int { return used[y].Compare(used[x]) })
	for _, n := range names {
		f, err := os.Open(filepath.Join(mnt, "ExtData", n+".bin"))
		must(t, err)
		must(t, f.Close())
	}
	testutil.Eventually(t, 20*time.Second, "the mount's access records", func() bool {
		as, err := e.cat.LeastRecentlyAccessed(ctx, nil, 10)
		must(t, err)
		return len(as) == len(names)
	})

	id := e.create(api.CreateDataRepositoryTaskRequest{Type: api.TaskAutoReleaseData})
	tk := e.wait(id, api.TaskSucceeded)
	if tot, ok, _ := counts(tk); tot != 1 || ok != 1 {
		t.Fatalf("auto release: %+v", tk.Status)
	}
	for i, n := range names {
		if got, want := e.flags("ExtData/"+n+".bin").Has(hsm.Released), i == 0; got != want {
			t.Errorf("%s (opened %d of %d) released = %v, want %v", n, i+1, len(names), got, want)
		}
	}
}
