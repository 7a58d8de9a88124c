package exporter

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
)

// BenchmarkExport measures the exporter alone (no mount: entries are
// appended as the mount appends them) against the shared MinIO:
//
//   - burst: 500 files of 64 KiB written at once, then drained by 16
//     workers; files/s. Each file costs a PUT and a HEAD (for the ETag).
//   - steady: 100 files of 64 KiB per second for 5 s; the export lag
//     (append → object visible) p50 and p99 from the lag histogram.
func BenchmarkExport(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 64<<10)
	b.Run("burst-500x64KiB", func(b *testing.B) {
		const n = 500
		for range b.N {
			b.StopTimer()
			e := newEnv(b, nil, allEvents...)
			for i := range n {
				e.write(fmt.Sprintf("ExtData/f%04d", i), body, catalog.KindNew)
			}
			e.ex.cfg.Workers = 16 // as the engine's request bound
			b.StartTimer()
			t0 := time.Now()
			e.start()
			e.drain()
			b.ReportMetric(n/time.Since(t0).Seconds(), "files/s")
			b.StopTimer()
			e.stop()
		}
	})
	b.Run("steady-100files/s", func(b *testing.B) {
		for range b.N {
			e := newEnv(b, nil, allEvents...)
			e.start()
			tick := time.NewTicker(10 * time.Millisecond)
			deadline := time.Now().Add(5 * time.Second)
			for i := 0; time.Now().Before(deadline); i++ {
				<-tick.C
				e.write(fmt.Sprintf("ExtData/s%05d", i), body, catalog.KindNew)
			}
			tick.Stop()
			e.drain()
			lag := e.ex.Stats().Lag
			b.ReportMetric(lag.Quantile(0.5)*1000, "lag-p50-ms")
			b.ReportMetric(lag.Quantile(0.99)*1000, "lag-p99-ms")
			e.stop()
		}
	})
}
