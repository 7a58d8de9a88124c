package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-hpc/ferry/internal/importer"
)

// runSweep starts the import sweep (--import-sweep-interval; 0: none):
// every interval it lists each auto-import association's prefix and
// queues import hints for what its listed directories miss; the daemon's
// hint applier (the "auto-import" step, before this one) applies them. Sweeper.Stats is what describe and /metrics
// report of it.
func (d *Daemon) runSweep() error {
	if d.cfg.ImportSweepInterval <= 0 {
		return nil
	}
	d.sweeper = d.imp.NewSweeper(importer.SweepConfig{
		Interval: d.cfg.ImportSweepInterval,
		Notify:   d.applier.Notify,
	})
	stop := d.background("import sweep", d.sweeper.Run)
	d.closers.push("import sweep", func() error { stop(); return nil })
	return nil
}

// collectSweep adds the import sweep's counters to a scrape.
func (d *Daemon) collectSweep(ch chan<- prometheus.Metric, counter func(name, help string, v uint64, labels ...string)) {
	if d.sweeper == nil {
		return
	}
	s := d.sweeper.Stats()
	counter("ferry_import_sweeps_total", "Import sweeps of every auto-import association ended.", uint64(s.Sweeps))
	counter("ferry_import_sweep_failures_total", "Association sweeps that failed (tried again at the next sweep).", uint64(s.Failures))
	counter("ferry_import_sweep_objects_total", "Objects listed by import sweeps.", uint64(s.Total.Objects))
	counter("ferry_import_sweep_list_requests_total", "ListObjectsV2 requests of import sweeps.", uint64(s.Total.ListRequests))
	for kind, v := range map[string]int64{"new": s.Total.New, "changed": s.Total.Changed, "deleted": s.Total.Deleted} {
		counter("ferry_import_sweep_hints_total", "Import hints queued by sweeps, by what they found.", uint64(v), "kind", kind)
	}
	gauge := func(name, help string, v float64) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v)
	}
	gauge("ferry_import_sweep_last_duration_seconds", "Duration of the last import sweep ended.", s.LastDuration.Seconds())
	gauge("ferry_import_sweep_last_objects", "Objects listed by the last import sweep ended.", float64(s.Last.Objects))
	gauge("ferry_import_sweep_last_list_requests", "ListObjectsV2 requests of the last import sweep ended.", float64(s.Last.ListRequests))
	if !s.LastEnd.IsZero() {
		gauge("ferry_import_sweep_last_end_timestamp_seconds", "When the last import sweep ended (Unix time).", float64(s.LastEnd.UnixNano())/1e9)
	}
}
