package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/exporter"
)

// ExportOptions tune the daemon's exporter (zero fields take the
// exporter's defaults).
type ExportOptions struct {
	Workers             int           // exports in flight (default 8)
	RetryBase, RetryMax time.Duration // backoff of transient failures (1s, 60s)
	Poll                time.Duration // how often ready entries are looked for (1s)
	// Concurrency bounds the S3 requests of all exports at once (the
	// transfer engine's; default 16).
	Concurrency int
}

// newExporter builds the exporter of the file system on the daemon's
// transfer engine. Its Owner (the name of its claims in the catalog's journal) is
// stable across restarts of this file system on this host, so a restarted
// daemon takes back the claims a crash left (exporter.Run releases them).
func (d *Daemon) newExporter() (*exporter.Exporter, error) {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	o := d.cfg.Export
	return exporter.New(exporter.Config{
		Store: d.store, Catalog: d.cat, S3: d.s3,
		Engine:  d.eng,
		Owner:   d.id.FileSystemId + "@" + host,
		Workers: o.Workers, RetryBase: o.RetryBase, RetryMax: o.RetryMax, Poll: o.Poll,
		Version:     d.cfg.Version,
		Logger:      d.log.With("component", "exporter"),
		VersionRead: d.versionRead,
		UnseenWriter: func(dev, ino uint64) bool {
			f := d.mounted.Load()
			return f != nil && f.UnseenWriter(dev, ino)
		},
	})
}

// versionRead is the exporter's Config.VersionRead: the mount clears the
// file's "bumped" bit (store.BumpVersion's protocol), so that its next write
// through the mount bumps the content version again and an export never
// marks a file clean that changed after its version was read (invariant
// 2). Before the mount exists nothing writes through it.
func (d *Daemon) versionRead(dev, ino uint64) {
	if f := d.mounted.Load(); f != nil {
		f.VersionRead(dev, ino)
	}
}

// startExporter runs the exporter until stopExporter.
func (d *Daemon) startExporter() { d.stopExp = d.background("exporter", d.exp.Run) }

// stopExporter stops the exporter and waits for it: exports in flight are
// cut short and their claims released; everything not exported stays in
// the journal for the next mount (the journal is never dropped). It must
// return before the catalog closes.
func (d *Daemon) stopExporter() {
	if d.stopExp == nil {
		return
	}
	d.stopExp()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if n, err := d.cat.Depth(ctx); err == nil && n > 0 {
		d.log.Info("exports pending at stop; the next mount resumes them", "pending", n)
	}
}

// exportStatus is the export backlog (GET /export/Status; ferry umount).
func (d *Daemon) exportStatus(ctx context.Context) (api.ExportStatus, error) {
	var out api.ExportStatus
	n, err := d.cat.Depth(ctx)
	if err != nil {
		return out, err
	}
	age, err := d.cat.OldestAge(ctx)
	if err != nil {
		return out, err
	}
	s := d.exp.Stats()
	return api.ExportStatus{Pending: n, OldestAgeSeconds: age.Seconds(), InFlight: s.InFlight, Parked: s.Parked}, nil
}

func (d *Daemon) serveExportStatus(w http.ResponseWriter, r *http.Request) {
	s, err := d.exportStatus(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, s)
}

// collectExport adds the exporter's counters and the journal's backlog to
// a scrape (issue 4 item 6).
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
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		if _, perr := strconv.Atoi(s); perr != nil {
			return "", fmt.Errorf("--metrics-addr %q: expected HOST:PORT or PORT, e.g. 127.0.0.1:9100", s)
		}
		host, port = "", s
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return "", fmt.Errorf("--metrics-addr %q: the port must be a number from 0 to 65535", s)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

func listenMetrics(addr string) (net.Listener, error) {
	a, err := ParseMetricsAddr(addr)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", a)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr: %w", err)
	}
	return l, nil
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
// --metrics-addr listener until stopControl.
func (d *Daemon) serveMetrics() {
	if d.metricsL == nil {
		return
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+api.MetricsPath, promhttp.HandlerFor(d.metrics, promhttp.HandlerOpts{}))
	d.metricsS = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := d.metricsS.Serve(d.metricsL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("metrics listener stopped", "err", err)
		}
	}()
}

// catalogPrefix maps a store-relative path to the catalog's form ("." is
// the root, "").
func catalogPrefix(rel string) string {
	if rel == "." {
		return ""
	}
	return strings.TrimSuffix(rel, "/")
}

// PendingExports reads the export backlog from the catalog of a file
// system whose daemon is not running (ferry umount says how many exports
// the next mount resumes): entries not yet exported and how long the
// oldest has waited.
func PendingExports(catalogURL, storeDir string) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cat, err := catalog.Open(ctx, catalogURL, catalog.Options{StoreRoot: storeDir})
	if err != nil {
		return 0, 0, err
	}
	defer cat.Close()
	n, err := cat.Depth(ctx)
	if err != nil {
		return 0, 0, err
	}
	age, err := cat.OldestAge(ctx)
	return n, age, err
}
