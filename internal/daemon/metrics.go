package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/importer"
)

// The daemon's metrics (Prometheus text): on the control socket and, with
// --metrics-addr, on a TCP listener that serves /metrics only.

// newMetrics registers the daemon's metrics: FUSE counters, importer and
// exporter counters, the export journal's backlog, associations by
// lifecycle.
func (d *Daemon) newMetrics() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector())
	reg.MustRegister(metricsCollector{d})
	return reg
}

// metricsCollector reads the counters when scraped (an unchecked
// collector: the importer's counter names come from the importer).
type metricsCollector struct{ d *Daemon }

func (metricsCollector) Describe(chan<- *prometheus.Desc) {}

func (c metricsCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.d
	counter := func(name, help string, v uint64, labels ...string) {
		var keys, vals []string
		for i := 0; i+1 < len(labels); i += 2 {
			keys, vals = append(keys, labels[i]), append(vals, labels[i+1])
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, keys, nil), prometheus.CounterValue, float64(v), vals...)
	}
	if d.fsys != nil {
		s := &d.fsys.Stats
		counter("ferry_fuse_opens_total", "Opens served by the daemon.", s.Opens.Load())
		counter("ferry_fuse_passthrough_opens_total", "Opens handed to the kernel's FUSE passthrough.", s.PassthroughOpens.Load())
		counter("ferry_fuse_reads_total", "Reads served by the daemon (passthrough reads never reach it).", s.Reads.Load())
		counter("ferry_fuse_writes_total", "Writes served by the daemon.", s.Writes.Load())
	}
	is := d.imp.Stats()
	for name, v := range importerCounters(is) {
		counter("ferry_importer_"+name, "Importer counter "+name+".", v)
	}
	for name, v := range importerGauges(is) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("ferry_importer_"+name, importerGaugeHelp[name], nil, nil), prometheus.GaugeValue, v)
	}
	for code, v := range is.RefusedByCode {
		counter("ferry_importer_refused_keys_by_code_total", "S3 keys refused by the importer, by error code.", uint64(v), "code", code)
	}
	d.collectExport(ch, counter)
	d.collectAutoImport(ch, counter)
	d.collectSweep(ch, counter)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if all, err := d.cat.Associations(ctx); err == nil {
		n := map[api.DataRepositoryLifecycle]int{}
		for _, a := range all {
			n[a.Lifecycle]++
		}
		desc := prometheus.NewDesc("ferry_associations", "Data repository associations by lifecycle.", []string{"lifecycle"}, nil)
		for _, l := range []api.DataRepositoryLifecycle{api.LifecycleCreating, api.LifecycleAvailable, api.LifecycleMisconfigured, api.LifecycleUpdating, api.LifecycleDeleting, api.LifecycleFailed} {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n[l]), string(l))
		}
	}
}

// importerGaugeHelp describes the importer's gauges.
var importerGaugeHelp = map[string]string{
	"fetches_in_flight":     "Fetches of released files' data from the repository running now (demand reads, readahead, restores).",
	"fetches_stalled":       "Fetches that have received no byte from the repository for a whole attempt's timeout or longer; they fail with EIO after --fetch-timeout.",
	"fetch_stalled_seconds": "The longest time without a byte among the stalled fetches (0: none stalled).",
}

// importerCounters are the importer's counters for /metrics, by metric
// name without the ferry_importer_ prefix.
func importerCounters(s importer.Stats) map[string]uint64 {
	return map[string]uint64{
		"list_requests_total":    uint64(s.ListRequests),
		"head_requests_total":    uint64(s.HeadRequests),
		"listed_metadata_total":  uint64(s.ListedMetadata),
		"get_requests_total":     uint64(s.GetRequests),
		"bytes_fetched_total":    uint64(s.BytesFetched),
		"stubs_created_total":    uint64(s.StubsCreated),
		"dirs_created_total":     uint64(s.DirsCreated),
		"symlinks_created_total": uint64(s.SymlinksCreated),
		"dirs_listed_total":      uint64(s.DirsListed),
		"refused_keys_total":     uint64(s.Refused),
		"local_conflicts_total":  uint64(s.LocalConflicts),
		"reimports_total":        uint64(s.Reimports),
		"changed_reads_total":    uint64(s.Changed),
		"dedup_waits_total":      uint64(s.DedupWaits),
		"readahead_chunks_total": uint64(s.Readahead),
		"released_files_total":   uint64(s.Released),
		"fetch_retries_total":    uint64(s.FetchRetries),
		"fetch_timeouts_total":   uint64(s.FetchTimeouts),
	}
}

// importerGauges are the importer's values of the moment for /metrics
// (fetches in flight and stalled), by metric name without the prefix.
func importerGauges(s importer.Stats) map[string]float64 {
	return map[string]float64{
		"fetches_in_flight":     float64(s.FetchesInFlight),
		"fetches_stalled":       float64(s.FetchesStalled),
		"fetch_stalled_seconds": s.StalledSeconds,
	}
}

// collectExport adds the exporter's counters and the journal's backlog to
// a scrape.
func (d *Daemon) collectExport(ch chan<- prometheus.Metric, counter func(name, help string, v uint64, labels ...string)) {
	s := d.exp.Stats()
	counter("ferry_export_bytes_total", "Bytes uploaded by exports (copies and metadata updates count none).", uint64(s.BytesExported))
	counter("ferry_export_objects_total", "Objects written by exports (uploads, copies, directory and symlink objects).", uint64(s.ObjectsExported))
	counter("ferry_export_objects_deleted_total", "Objects removed by exports (DELETED policy, renames).", uint64(s.ObjectsDeleted))
	counter("ferry_export_entries_done_total", "Export journal entries completed.", uint64(s.EntriesDone))
	counter("ferry_export_entries_skipped_total", "Export journal entries completed without an export (outside exporting associations, event not in the policy, path gone).", uint64(s.Skipped))
	counter("ferry_export_parked_total", "Export journal entries parked after a permanent failure.", uint64(s.Parked))
	counter("ferry_export_writer_open_waits_total", "Export attempts that waited for a writer the mount cannot see (passthrough) to close; not failures.", uint64(s.WriterOpen))
	for code, v := range s.Failures {
		counter("ferry_export_failures_total", "Failed export attempts by error code.", uint64(v), "code", code)
	}
	gauge := func(name, help string, v float64) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v)
	}
	gauge("ferry_export_in_flight", "Exports running now.", float64(s.InFlight))
	buckets := make(map[float64]uint64, len(s.Lag.Bounds))
	for i, b := range s.Lag.Bounds {
		buckets[b] = s.Lag.Cumulative[i]
	}
	ch <- prometheus.MustNewConstHistogram(prometheus.NewDesc("ferry_export_lag_seconds",
		"Export lag: the latest close or fsync of a path to its object being visible.", nil, nil),
		s.Lag.Count, s.Lag.Sum, buckets)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := d.cat.Depth(ctx); err == nil {
		gauge("ferry_export_journal_depth", "Entries of the export journal not yet exported (parked ones included).", float64(n))
	}
	if age, err := d.cat.OldestAge(ctx); err == nil {
		gauge("ferry_export_journal_oldest_age_seconds", "How long the oldest entry of the export journal has waited (0 when none).", age.Seconds())
	}
}

// ParseMetricsAddr checks a --metrics-addr value and returns it as
// host:port. A port alone (9100 or :9100) listens on the loopback address
// 127.0.0.1: metrics are served to other machines only when a host is
// named (0.0.0.0:9100).
func ParseMetricsAddr(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	return parseListenAddr("--metrics-addr", s, "127.0.0.1:9100")
}

// parseListenAddr checks the TCP address s of flag and returns it as
// host:port; a port alone means 127.0.0.1. example is shown when s does
// not parse.
func parseListenAddr(flag, s, example string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if _, perr := strconv.Atoi(s); perr != nil {
			return "", fmt.Errorf("%s %q: expected HOST:PORT or PORT, e.g. %s", flag, s, example)
		}
		host, port = "", s
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("%s %q: the port must be a number from 0 to 65535", flag, s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// listenMetrics builds the metrics registry and, with --metrics-addr,
// opens its TCP listener (served from the metrics step), so a port in use
// fails the start before the daemon registers.
func (d *Daemon) listenMetrics() error {
	d.metrics = d.newMetrics()
	if d.cfg.MetricsAddr == "" {
		return nil
	}
	a, err := ParseMetricsAddr(d.cfg.MetricsAddr)
	if err != nil {
		return err
	}
	if d.metricsL, err = net.Listen("tcp", a); err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	d.closers.push("metrics listener", func() error {
		d.metricsL.Close() // closed already if the metrics server ran
		return nil
	})
	return nil
}

// MetricsAddr is the TCP address /metrics is served on ("" without
// --metrics-addr).
func (d *Daemon) MetricsAddr() string {
	if d.metricsL == nil {
		return ""
	}
	return d.metricsL.Addr().String()
}

// serveMetrics serves GET /metrics (and nothing else) on the
// --metrics-addr listener.
func (d *Daemon) serveMetrics() error {
	if d.metricsL == nil {
		return nil
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+api.MetricsPath, promhttp.HandlerFor(d.metrics, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(d.metricsL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics listener stopped", "err", err)
		}
	}()
	d.closers.push("metrics", func() error {
		shutdown(srv)
		<-served
		return nil
	})
	return nil
}
