package store

import (
	"context"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/hsm"
)

// Cost of one state read and one state write (getxattr/setxattr plus
// encoding) on a 1 GiB stub with 1 MiB chunks, half of them local.
func BenchmarkStateXattr(b *testing.B) {
	s, _ := newStore(b)
	if err := s.CreateStub("f", testStub(gib, mib)); err != nil {
		b.Fatal(err)
	}
	f, err := s.OpenFile("f", unix.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := s.FileState(f)
	for i := int64(0); i < 1024; i += 2 {
		st.Chunks.MarkChunks(i, i+1)
	}
	if err := s.SetFileState(f, st); err != nil {
		b.Fatal(err)
	}
	b.Run("GetFd", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.FileState(f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SetFd", func(b *testing.B) {
		for b.Loop() {
			if err := s.SetFileState(f, st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetPath", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetState("f"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UpdateFd", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.UpdateFileState(f, func(st *State) error { st.Version++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Mark and Has on the map of a 1 GiB file in 1 MiB chunks.
func BenchmarkBitmap1GiB(b *testing.B) {
	b.Run("Mark1Chunk", func(b *testing.B) {
		m := mustBitmap(b, gib, mib)
		i := int64(0)
		for b.Loop() {
			m.Mark(Range{(i % 1024) * mib, mib})
			i++
		}
	})
	b.Run("MarkAll", func(b *testing.B) {
		for b.Loop() {
			m := mustBitmap(b, gib, mib)
			m.Mark(Range{0, gib})
		}
	})
	b.Run("Has1MiBRead", func(b *testing.B) {
		m := mustBitmap(b, gib, mib)
		m.Mark(Range{0, gib / 2})
		i := int64(0)
		for b.Loop() {
			m.Has(Range{(i % 1024) * mib, 128 * kib})
			i++
		}
	})
	b.Run("HasWholeFileHalfLocal", func(b *testing.B) {
		m := mustBitmap(b, gib, mib)
		for i := int64(0); i < 1024; i += 2 {
			m.MarkChunks(i, i+1)
		}
		for b.Loop() {
			if len(m.Has(Range{0, gib})) != 512 {
				b.Fatal("wrong")
			}
		}
	})
	b.Run("HasWholeFileComplete", func(b *testing.B) {
		m := mustBitmap(b, gib, mib)
		m.Mark(Range{0, gib})
		for b.Loop() {
			if m.Has(Range{0, gib}) != nil {
				b.Fatal("wrong")
			}
		}
	})
	b.Run("EncodeDecode", func(b *testing.B) {
		m := mustBitmap(b, gib, mib)
		for i := int64(0); i < 1024; i += 3 {
			m.MarkChunks(i, i+1)
		}
		st := State{Flags: importedFlags, Size: gib, ETag: `"x"`, Chunks: m}
		for b.Loop() {
			p, _ := st.Encode()
			if _, err := DecodeState(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Cost of one CreateStub of a 64 MiB object in 1 MiB chunks: what the lazy
// import of a listing pays per object, in each way CreateStub can take
// (stubWays). Stubs go 1,000 to a directory, as in the mount benchmark's
// tree (5,000 files in 50 directories, bench/mount).
func BenchmarkCreateStub(b *testing.B) {
	for _, way := range stubWays {
		b.Run(way.name, func(b *testing.B) {
			s, _ := newStore(b)
			way.setup(s)
			st := testStub(64*mib, mib)
			st.UID, st.GID = -1, -1 // no chown: the benchmark need not run as root
			i := 0
			for b.Loop() {
				if i%1000 == 0 {
					if err := s.Mkdir(fmt.Sprintf("d%d", i/1000), 0o755); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.CreateStub(fmt.Sprintf("d%d/f%d", i/1000, i), st); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if !way.kept(s) {
				b.Fatalf("the store left the %s way", way.name)
			}
		})
	}
}

// BenchmarkMarkOrigins: what a directory rename through the mount adds per
// file below the directory (MarkOrigins before the rename: an lstat, a
// state read and, for a file the repository has, a state write), on a tree
// of 1,000 exported files in 10 directories. Each iteration marks the tree
// and clears the marks again, so the cost reported per file is of a mark
// plus a clear (the clear is the exporter's later write, which it makes
// anyway).
func BenchmarkMarkOrigins(b *testing.B) {
	s, _ := newStore(b)
	const dirs, per = 10, 100
	for d := range dirs {
		dir := fmt.Sprintf("t/d%d", d)
		if err := s.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for i := range per {
			p := fmt.Sprintf("%s/f%d", dir, i)
			f, err := s.OpenFile(p, unix.O_CREAT|unix.O_WRONLY, 0o644)
			if err != nil {
				b.Fatal(err)
			}
			f.Close()
			if err := s.SetState(p, State{Flags: hsm.Exists | hsm.Archived, Size: 0, ETag: `"d41d8cd98f00b204e9800998ecf8427e"`}); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	for b.Loop() {
		if err := s.MarkOrigins(ctx, "t"); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		for d := range dirs {
			for i := range per {
				if _, err := s.UpdateState(fmt.Sprintf("t/d%d/f%d", d, i), func(st *State) error { st.Origin = ""; return nil }); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*dirs*per), "µs/file")
}
