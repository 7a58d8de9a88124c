package progress

import (
	"io"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkPrintln measures Println throughput from many goroutines, the
// shape of a sync printing "upload: …" for every small file.
func BenchmarkPrintln(b *testing.B) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	cases := []struct {
		name string
		w    io.Writer
		mode Mode
	}{
		{"bar", io.Discard, Bar},
		{"bar-devnull", devnull, Bar},
		{"plain", io.Discard, Plain},
		{"plain-devnull", devnull, Plain},
		{"none-devnull", devnull, None},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			r := New(c.w, Options{Mode: c.mode, Interval: 100 * time.Millisecond, Label: "sync"})
			r.AddTotal(1<<20, 1<<40)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					r.Println("upload: data/dir/file-" + strconv.Itoa(i) + ".bin to s3://bucket/prefix/data/dir/file-" + strconv.Itoa(i) + ".bin")
				}
			})
			r.Close() // the lines still queued are part of the work
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkAdd measures the hot-path counter from many goroutines.
func BenchmarkAdd(b *testing.B) {
	for _, mode := range []Mode{Bar, Plain} {
		b.Run(mode.String(), func(b *testing.B) {
			r := New(io.Discard, Options{Mode: mode, Interval: 10 * time.Millisecond})
			r.AddTotal(1, 1<<50)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r.Add(256 << 10)
				}
			})
			r.Close()
		})
	}
}
