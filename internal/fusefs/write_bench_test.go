package fusefs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkSmallFileClose measures create + 64 KiB write + close through
// the mount, one file after another (a `cp -r` of small files): with the
// export journal every close waits for its durable append (catalog group
// commit: one fsync per batch, and a single writer makes batches of one),
// without it only the store file system's work remains. Run:
// go test -run x -bench SmallFileClose ./internal/fusefs/
func BenchmarkSmallFileClose(b *testing.B) {
	body := randBody(64<<10, 1)
	for _, journal := range []bool{false, true} {
		b.Run(fmt.Sprintf("journal=%v", journal), func(b *testing.B) {
			var dir string
			if journal {
				je := mountJournal(b, Options{}, false)
				dir = je.m("ExtData")
			} else {
				e := mount(b, Options{})
				dir = e.mnt
			}
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), body, 0o644); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriteThroughput: 1 MiB writes into one file through the mount
// (served by the daemon: one version bump per open, none per write).
func BenchmarkWriteThroughput(b *testing.B) {
	je := mountJournal(b, Options{}, false)
	f, err := os.Create(je.m("ExtData/big"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := randBody(1<<20, 2)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, int64(i%256)<<20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSmallWrites: 4 KiB writes into one open file through the mount.
func BenchmarkSmallWrites(b *testing.B) {
	je := mountJournal(b, Options{}, false)
	f, err := os.Create(je.m("ExtData/small"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := randBody(4096, 3)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, int64(i%4096)*4096); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteTmpRename: the `write tmp; rename tmp final` pattern of
// model outputs, one file after another, inside an exporting association:
// create + 64 KiB write + close + rename (the rename takes a move record
// and appends its RENAME, both committed relaxed). Run:
// go test -run x -bench WriteTmpRename ./internal/fusefs/
func BenchmarkWriteTmpRename(b *testing.B) {
	body := randBody(64<<10, 4)
	je := mountJournal(b, Options{}, false)
	dir := je.m("ExtData")
	b.SetBytes(int64(len(body)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tmp, final := filepath.Join(dir, fmt.Sprintf(".f%d.tmp", i)), filepath.Join(dir, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(tmp, body, 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, final); err != nil {
			b.Fatal(err)
		}
	}
}
