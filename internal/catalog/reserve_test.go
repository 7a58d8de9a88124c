package catalog_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/catalog/catalogtest"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// TestFullDiskReserve: the catalog shares a small file system with data
// that fills it up; the exporter's bookkeeping (claims, completions) must
// still commit — the catalog gives up its reserve for it — and the reserve
// comes back once space is free again.
func TestFullDiskReserve(t *testing.T) {
	if os.Geteuid() != 0 {
		testutil.Need(t, errors.New("needs root to mount a tmpfs"))
	}
	dir := t.TempDir()
	if err := unix.Mount("ferry-test", dir, "tmpfs", 0, "size=16m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	ctx := context.Background()
	now := catalogtest.NewClock()
	c, err := catalog.OpenSQLite(ctx, filepath.Join(dir, "catalog.db"), catalog.Options{Reserve: 4 << 20, Now: now.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	reserve := filepath.Join(dir, "catalog.db-reserve")
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("reserve after open: %v %v", fi, err)
	}
	for i := range 64 {
		if err := c.Append(ctx, catalog.JournalAppend{Path: fmt.Sprintf("d/f%03d", i), Kind: catalog.KindNew}); err != nil {
			t.Fatal(err)
		}
	}
	// Fill the file system to the last byte.
	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := fill.Write(buf); err != nil {
			break
		}
	}
	for len(buf) > 1 {
		buf = buf[:len(buf)/2]
		for {
			if _, err := fill.Write(buf); err != nil {
				break
			}
		}
	}
	// The exporter's work goes on: every entry claimed and completed.
	for {
		es, err := c.Claim(ctx, "exporter", 16, time.Hour)
		if err != nil {
			t.Fatalf("claim on a full disk: %v", err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			if _, err := c.Complete(ctx, e); err != nil {
				t.Fatalf("complete on a full disk: %v", err)
			}
		}
	}
	if d, _ := c.Depth(ctx); d != 0 {
		t.Fatalf("depth %d after draining on a full disk", d)
	}
	if _, err := os.Stat(reserve); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reserve still there after the disk filled (%v): was it needed at all?", err)
	}
	// Until the reserve is back, other writers are refused: the space it
	// freed is the catalog's.
	sk, ok := c.(catalog.SpaceKeeper)
	if !ok {
		t.Fatal("the SQLite catalog is not a SpaceKeeper")
	}
	if err := sk.Room(); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Room with the reserve given up: %v, want ENOSPC", err)
	}
	// Space comes back, but less than the reserve: still refused.
	// (What the catalog left of the reserve's space counts as free.)
	fi, err := fill.Stat()
	if err != nil {
		t.Fatal(err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(dir, &sfs); err != nil {
		t.Fatal(err)
	}
	short := 4<<20 - int64(sfs.Bavail)*sfs.Bsize
	if short <= 64<<10 {
		t.Fatalf("%d bytes free after draining: the catalog used none of its reserve?", int64(sfs.Bavail)*sfs.Bsize)
	}
	if err := fill.Truncate(fi.Size() - short/2); err != nil {
		t.Fatal(err)
	}
	now.Advance(time.Second)
	if err := sk.Room(); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Room with less than the reserve free: %v, want ENOSPC", err)
	}
	// Enough space: the next Room makes the reserve again and lets writers on.
	fill.Close()
	if err := os.Remove(filepath.Join(dir, "fill")); err != nil {
		t.Fatal(err)
	}
	if err := sk.Room(); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Room within %v of its last look: %v, want ENOSPC (it looks at most that often)", 100*time.Millisecond, err)
	}
	now.Advance(time.Second)
	if err := sk.Room(); err != nil {
		t.Fatalf("Room with space back: %v", err)
	}
	if fi, err := os.Stat(reserve); err != nil || fi.Size() != 4<<20 {
		t.Fatalf("reserve after space came back: %v %v", fi, err)
	}
}
