package transfer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestDownloadNoRoom downloads objects larger than the free space of a
// small tmpfs: the blocks are reserved before the first GET, so the
// download fails before any byte moves, names the directory and the size,
// and leaves nothing behind. (Without the reservation it failed in a write,
// after the space was used up.) An object that fits lands whole, in the
// blocks reserved for it.
func TestDownloadNoRoom(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Need(t, errors.New("needs root to mount a tmpfs"))
	}
	dir := t.TempDir()
	if err := unix.Mount("ferry-test", dir, "tmpfs", 0, "size=12m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	m := testutil.SharedMinIO(t)
	c := m.Client(t)
	bucket := m.Bucket(t)
	e := New(c, Options{PartSize: part})
	for _, tt := range []struct {
		name string
		size int64
		fits bool
	}{
		{"fits, one GET", 6 * mib, true},
		{"too large, one GET", 16 * mib, false},
		{"too large, ranges", 16 * mib, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m.Put(t, bucket, tt.name, make([]byte, tt.size))
			obj := head(t, c, bucket, tt.name)
			eng := e
			if strings.Contains(tt.name, "ranges") {
				eng = rangedMD5(New(c, Options{PartSize: part}))
			}
			var seen counter
			dst := filepath.Join(dir, "dst")
			err := eng.Download(context.Background(), DownloadInput{Bucket: bucket, Key: tt.name, Object: obj, Path: dst}, seen.add)
			if tt.fits {
				if err != nil {
					t.Fatal(err)
				}
				fi, err := os.Stat(dst)
				if err != nil || fi.Size() != tt.size {
					t.Fatalf("downloaded file: %v %v, want %d bytes", fi, err, tt.size)
				}
				if err := os.Remove(dst); err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "no room") || !strings.Contains(err.Error(), dir) {
				t.Fatalf("err = %v, want ENOSPC naming the room needed and %s", err, dir)
			}
			if n := seen.n.Load(); n != 0 {
				t.Errorf("%d bytes transferred before the download failed: the space was not reserved first", n)
			}
			if names := dirNames(t, dir); len(names) != 0 {
				t.Errorf("left behind %v", names)
			}
		})
	}
}
