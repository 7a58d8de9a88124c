package progress

import (
	"io"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"
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
			lines := benchLines()
			r := New(c.w, Options{Mode: c.mode, Interval: 100 * time.Millisecond, Label: "sync"})
			r.AddTotal(1<<20, 1<<40)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					r.Println(lines[i%len(lines)])
				}
			})
			r.Close() // the lines still queued are part of the work
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
		})
	}
}

// BenchmarkMpbWritePerLine is the design Bar mode avoids, for comparison:
// one (*mpb.Progress).Write per line, each a round trip to mpb's goroutine.
func BenchmarkMpbWritePerLine(b *testing.B) {
	lines := benchLines()
	refresh := make(chan any)
	p := mpb.New(mpb.WithOutput(io.Discard), mpb.WithManualRefresh(refresh))
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(barRefresh)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				refresh <- now
			}
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			_, _ = p.Write([]byte(lines[i%len(lines)] + "\n"))
		}
	})
	close(stop)
	p.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

func benchLines() []string {
	lines := make([]string, 1024)
	for i := range lines {
		name := "data/dir/file-" + strconv.Itoa(i) + ".bin"
		lines[i] = "upload: " + name + " to s3://bucket/prefix/" + name
	}
	return lines
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
