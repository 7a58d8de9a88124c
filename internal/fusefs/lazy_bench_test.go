package fusefs

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/testutil"
)

// BenchmarkLazyColdRead reads a 256 MiB object once through the mount,
// cold (released, nothing local, kernel cache dropped), in 1 MiB reads, as
// `cat` or `dd bs=1M` would. Compare with internal/importer's BenchmarkRawGET
// (the parallel ranged GET ceiling on the same MinIO).
//
//	go test -run '^$' -bench LazyColdRead -benchtime 3x ./internal/fusefs
func BenchmarkLazyColdRead(b *testing.B) {
	const size = 256 << 20
	for _, c := range []struct {
		chunk int64
		ra    int
	}{{4 << 20, 16}, {8 << 20, 8}, {16 << 20, 8}} {
		b.Run(fmt.Sprintf("chunk=%dMiB/readahead=%d", c.chunk>>20, c.ra), func(b *testing.B) {
			le := mountLazy(b, Options{}, importer.Config{ChunkSize: c.chunk, Readahead: c.ra})
			le.put(b, "data/big", randBody(size, 5), nil)
			if _, err := os.Stat(le.m("ExtData/big")); err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			b.SetBytes(size)
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				f, err := os.Open(le.m("ExtData/big"))
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
				f.Close()
				if err != nil || n != size {
					b.Fatalf("read %d bytes: %v", n, err)
				}
				b.StopTimer()
				testutilWaitClosed(b, le, "ExtData/big")
				if err := le.im.Release(context.Background(), "ExtData/big"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/size*(1<<20), "cpu-ns/MiB")
		})
	}
}

// cpuTime is the user+system CPU time of this process (daemon and reader:
// the mount runs in the test process; MinIO does not).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func testutilWaitClosed(b *testing.B, le *lazyEnv, rel string) {
	testutil.Eventually(b, 5*time.Second, "the file closed", func() bool { return !le.fsys.InUse(rel) })
}

// BenchmarkDaemonRead reads a local 256 MiB file through the mount with
// passthrough off: the FUSE round trips alone, the floor under
// BenchmarkLazyColdRead's reads once data is local.
func BenchmarkDaemonRead(b *testing.B) {
	const size = 256 << 20
	e := mount(b, Options{NoPassthrough: true})
	if err := os.WriteFile(e.s("local"), randBody(size, 2), 0o644); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	cpu0 := cpuTime()
	b.ResetTimer()
	defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/size*(1<<20), "cpu-ns/MiB") }()
	for range b.N {
		f, err := os.Open(e.m("local"))
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf); err != nil || n != size {
			b.Fatal(n, err)
		}
		f.Close()
		b.StopTimer()
		e.fsys.Invalidate("local")
		b.StartTimer()
	}
}
