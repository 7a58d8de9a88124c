package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/events"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/writepath"
)

// Auto-import in the daemon (docs/architecture.md, "Auto-import: the
// daemon"):
//   - the "auto-import" step runs the importer's Applier, which applies
//     the hints of the catalog's durable queue — those a crash left
//     included — until the stop;
//   - with --events-listen, the "event intake" step serves events.Intake
//     (POST /events) on its own TCP listener: hints are queued durably
//     before the sender gets its 200, and each commit wakes the applier;
//   - the applier reports every hint it applied (importer.ApplyConfig.
//     Applied) to autoImport, which /metrics (counters by source, the
//     import lag) and describe (FerryStatus.AutoImport) read.
// Stopping closes the listener first (senders get connection refused and
// retry), then the intake commits what it accepted, then the applier
// stops; what is queued and not applied stays in the catalog for the next
// mount.

// EventsTokenEnv is the environment variable --events-token defaults to
// (a token on the command line shows in ps).
const EventsTokenEnv = "FERRY_EVENTS_TOKEN"

// ParseEventsAddr checks --events-listen and --events-token and returns
// the address as host:port ("" when addr is ""). A port alone (9010 or
// :9010) listens on 127.0.0.1. An address other machines can reach needs a
// token: without one, anyone who reaches the port could make the daemon
// check keys of the repository at will.
func ParseEventsAddr(addr, token string) (string, error) {
	if addr == "" {
		return "", nil
	}
	if err := checkEventsToken(token); err != nil {
		return "", err
	}
	a, err := parseListenAddr("--events-listen", addr, "127.0.0.1:9010")
	if err != nil {
		return "", err
	}
	host, _, _ := net.SplitHostPort(a)
	if token == "" && !loopbackHost(host) {
		return "", fmt.Errorf("--events-listen %s: an address other machines can reach needs a token; give --events-token TOKEN (or set %s), "+
			"which senders send as \"Authorization: Bearer TOKEN\" (MinIO: MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_<ID>), or listen on 127.0.0.1", addr, EventsTokenEnv)
	}
	return a, nil
}

// checkEventsToken refuses a token that cannot travel in an HTTP header
// as it is.
func checkEventsToken(token string) error {
	for _, r := range token {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("--events-token: use printable ASCII characters without spaces (for example the output of: openssl rand -hex 32)")
		}
	}
	return nil
}

// loopbackHost says whether host names this machine only.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// runAutoImport runs the applier of import hints. It runs whatever the
// sources: hints a previous mount queued are applied too.
func (d *Daemon) runAutoImport() error {
	d.ai = newAutoImport()
	d.applier = d.imp.NewApplier(importer.ApplyConfig{
		Owner: d.claimOwner(),
		// Conflict copies are journaled NEW, so an exporting association
		// exports them.
		Journal: writepath.New(writepath.Config{Store: d.store, Journal: d.jnl, Logger: d.log}),
		// The exporter's exports in flight (hsm archive and export tasks
		// too): a hint may be the echo of their own upload.
		Exporting: func(rel string) bool { _, ok := d.exp.Progress(rel); return ok },
		Applied:   d.ai.record,
	})
	stop := d.background("auto-import", d.applier.Run)
	d.closers.push("auto-import", func() error {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if n, err := d.cat.HintDepth(ctx); err == nil && n > 0 {
			d.log.Info("import events pending at stop; the next mount applies them", "pending", n)
		}
		return nil
	})
	return nil
}

// wakeQueue is the intake's queue: the catalog's, and each commit wakes
// the applier.
type wakeQueue struct {
	cat  catalog.Catalog
	wake func()
}

func (q wakeQueue) EnqueueHints(ctx context.Context, hints ...catalog.ImportHint) ([]catalog.HintOutcome, error) {
	out, err := q.cat.EnqueueHints(ctx, hints...)
	if err == nil {
		q.wake()
	}
	return out, err
}

// serveEvents serves the event intake: POST /events on --events-listen,
// and the SQS poller of --events-sqs, which queues through the same
// intake (its committer, its Covered filter, its counters).
func (d *Daemon) serveEvents() error {
	if d.cfg.EventsListen == "" && d.cfg.EventsSQS == "" {
		return nil
	}
	in, err := events.New(events.Config{
		Queue:   wakeQueue{d.cat, d.applier.Notify},
		Token:   d.cfg.EventsToken,
		Covered: d.applier.Covers,
		Logger:  d.log.With("component", "events"),
	})
	if err != nil {
		return err
	}
	d.intake.Store(in)
	d.closers.push("event intake", in.Close)
	if d.cfg.EventsListen != "" {
		if err := d.listenEvents(in); err != nil {
			return err
		}
	}
	if d.cfg.EventsSQS != "" {
		return d.pollSQS(in)
	}
	return nil
}

// listenEvents serves in on --events-listen.
func (d *Daemon) listenEvents(in *events.Intake) error {
	addr, err := ParseEventsAddr(d.cfg.EventsListen, d.cfg.EventsToken)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--events-listen: %w", err)
	}
	srv := &http.Server{
		Handler:           in,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second, // a sender that trickles its body holds a slot no longer
		WriteTimeout:      time.Minute,      // above the intake's commit timeout
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("event intake stopped", "err", err)
		}
	}()
	d.eventsAddr = l.Addr().String()
	d.log.Info("serving S3 event notifications", "url", "http://"+d.eventsAddr+"/events", "token", d.cfg.EventsToken != "")
	d.closers.push("event listener", func() error {
		shutdown(srv)
		<-served
		return nil
	})
	return nil
}

// pollSQS runs the SQS poller of --events-sqs; it stops before the intake
// closes (the closers run last first).
func (d *Daemon) pollSQS(in *events.Intake) error {
	p, err := events.NewSQSPoller(events.SQSConfig{
		QueueURL: d.cfg.EventsSQS, Intake: in,
		Profile: d.cfg.S3.Profile, Region: d.cfg.S3.Region,
		Logger: d.log.With("component", "events", "source", "sqs"),
	})
	if err != nil {
		return fmt.Errorf("--events-sqs: %w", err)
	}
	d.sqs.Store(p)
	stop := d.background("SQS poller", p.Run)
	d.closers.push("SQS poller", func() error { stop(); return nil })
	d.log.Info("polling S3 event notifications", "queue", d.cfg.EventsSQS)
	return nil
}

// EventsAddr is the address POST /events is served on ("" without
// --events-listen).
func (d *Daemon) EventsAddr() string { return d.eventsAddr }

// autoImportSources are the sources that feed auto-import now
// (api.AutoImportStatus.Sources).
func (d *Daemon) autoImportSources() []string {
	s := []string{}
	if d.cfg.EventsListen != "" {
		s = append(s, api.AutoImportSourceEvents)
	}
	if d.cfg.EventsSQS != "" {
		s = append(s, api.AutoImportSourceSQS)
	}
	if d.cfg.ImportSweepInterval > 0 {
		s = append(s, api.AutoImportSourceSweep)
	}
	return s
}

// withSweep sets s.LastSweep: when the last sweep (of every auto-import
// association at once) ended.
func (d *Daemon) withSweep(s *api.AutoImportStatus) *api.AutoImportStatus {
	if d.sweeper == nil {
		return s
	}
	if end := d.sweeper.Stats().LastEnd; !end.IsZero() {
		t := api.NewTime(end)
		s.LastSweep = &t
	}
	return s
}

// autoImport gathers what the applier reports: counts by source and by
// association, the newest event, and the import lag.
type autoImport struct {
	mu       sync.Mutex
	bySource map[string]map[importer.HintOutcome]int64
	byAssoc  map[string]*assocImport
	last     time.Time // newest event time applied
	lag      prometheus.Histogram
}

type assocImport struct {
	last               time.Time
	applied, conflicts int64
}

// lagBuckets are the import lag histogram's upper bounds, in seconds.
var lagBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800}

func newAutoImport() *autoImport {
	return &autoImport{
		bySource: map[string]map[importer.HintOutcome]int64{},
		byAssoc:  map[string]*assocImport{},
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "ferry_import_lag_seconds",
			Help:    "Import lag: from an event's time (the sender's; the time it was queued when the sender gave none) to its change applied to the namespace (new, changed, deleted, conflict).",
			Buckets: lagBuckets,
		}),
	}
}

// changedNamespace says whether outcome o changed the namespace.
func changedNamespace(o importer.HintOutcome) bool {
	switch o {
	case importer.HintNew, importer.HintChanged, importer.HintDeleted, importer.HintConflict:
		return true
	}
	return false
}

// record is the applier's ApplyConfig.Applied.
func (ai *autoImport) record(h importer.AppliedHint) {
	at := h.Hint.EventTime
	if at.IsZero() {
		at = h.Hint.EnqueuedAt
	}
	src := h.Hint.Source
	if src == "" {
		src = events.SourceUnknown
	}
	ai.mu.Lock()
	m := ai.bySource[src]
	if m == nil {
		m = map[importer.HintOutcome]int64{}
		ai.bySource[src] = m
	}
	m[h.Outcome]++
	if h.Association != "" {
		a := ai.byAssoc[h.Association]
		if a == nil {
			a = &assocImport{}
			ai.byAssoc[h.Association] = a
		}
		a.applied++
		if h.Outcome == importer.HintConflict {
			a.conflicts++
		}
		if at.After(a.last) {
			a.last = at
		}
	}
	if at.After(ai.last) {
		ai.last = at
	}
	ai.mu.Unlock()
	if changedNamespace(h.Outcome) && !at.IsZero() {
		ai.lag.Observe(max(h.At.Sub(at), 0).Seconds())
	}
}

// status is the AutoImportStatus of association id ("" for the file
// system: its conflicts are counted by the importer, whoever applied).
func (ai *autoImport) status(id string, sources []string) *api.AutoImportStatus {
	s := &api.AutoImportStatus{Sources: sources}
	ai.mu.Lock()
	defer ai.mu.Unlock()
	last := ai.last
	if id != "" {
		a := ai.byAssoc[id]
		if a == nil {
			return s
		}
		last, s.EventsApplied, s.Conflicts = a.last, a.applied, a.conflicts
	} else {
		for _, m := range ai.bySource {
			for _, n := range m {
				s.EventsApplied += n
			}
		}
	}
	if !last.IsZero() {
		t := api.NewTime(last)
		s.LastEventTime = &t
	}
	return s
}

// describeAssociations is the association worker's describe with
// FerryStatus.AutoImport filled in for the associations that auto-import.
func (d *Daemon) describeAssociations(ctx context.Context, req api.DescribeDataRepositoryAssociationsRequest) (api.DescribeDataRepositoryAssociationsResponse, error) {
	resp, err := d.assoc.Describe(ctx, req)
	if err != nil || d.ai == nil {
		return resp, err
	}
	sources := d.autoImportSources()
	for i := range resp.Associations {
		a := &resp.Associations[i]
		if a.S3 == nil || a.S3.AutoImportPolicy == nil || len(a.S3.AutoImportPolicy.Events) == 0 {
			continue
		}
		var st api.AssociationStatus
		if a.FerryStatus != nil {
			st = *a.FerryStatus
		}
		st.AutoImport = d.withSweep(d.ai.status(a.AssociationId, sources))
		st.AutoImport.RecentConflicts = d.recentConflicts(a.AssociationId)
		a.FerryStatus = &st
	}
	return resp, nil
}

// fileSystemAutoImport is describe-file-systems' FerryStatus.AutoImport.
func (d *Daemon) fileSystemAutoImport(ctx context.Context) *api.AutoImportStatus {
	if d.ai == nil {
		return nil
	}
	s := d.withSweep(d.ai.status("", d.autoImportSources()))
	s.Conflicts = d.imp.Stats().Hints.Conflicts()
	s.RecentConflicts = d.recentConflicts("")
	if n, err := d.cat.HintDepth(ctx); err == nil {
		s.PendingEvents = &n
	}
	return s
}

// recentConflicts is the importer's RecentConflicts of association id
// ("": all of them), as describe shows them (paths under the mount point).
func (d *Daemon) recentConflicts(id string) []api.ConflictRecord {
	var out []api.ConflictRecord
	for _, c := range d.imp.RecentConflicts() {
		if id != "" && c.Association != id {
			continue
		}
		r := api.ConflictRecord{Path: d.mountPath(c.Path), Kind: c.Kind, Time: api.NewTime(c.Time),
			AssociationId: c.Association, Key: c.Key}
		if c.CopyPath != "" {
			r.CopyPath = d.mountPath(c.CopyPath)
		}
		out = append(out, r)
	}
	return out
}

// collectAutoImport adds the event intake's and the applier's counters,
// the hint queue's backlog and the import lag to a scrape.
func (d *Daemon) collectAutoImport(ch chan<- prometheus.Metric, counter func(name, help string, v uint64, labels ...string)) {
	if in := d.intake.Load(); in != nil {
		st := in.Stats()
		for _, src := range slices.Sorted(maps.Keys(st.BySource)) {
			s := st.BySource[src]
			counter("ferry_events_received_total", "S3 event records received in well-formed payloads, by source.", uint64(s.Received), "source", src)
			counter("ferry_events_queued_total", "Events queued for import (a key made pending), by source.", uint64(s.Queued), "source", src)
			counter("ferry_events_duplicate_total", "Events for a key already pending (collapsed into it), by source.", uint64(s.Duplicate), "source", src)
			counter("ferry_events_ignored_total", "Events not queued: other event types, test events, keys no auto-import association covers, by source.", uint64(s.Ignored), "source", src)
			counter("ferry_events_malformed_total", "Event requests refused as malformed (400) or too large (413), by source.", uint64(s.Malformed), "source", src)
		}
		counter("ferry_events_unauthorized_total", "Event requests refused for a missing or wrong bearer token (401).", uint64(st.Unauthorized))
		counter("ferry_events_busy_total", "Event requests refused because too many were in flight (503; senders retry).", uint64(st.Busy))
		counter("ferry_events_queue_failed_total", "Event requests whose events could not be queued (503; senders retry).", uint64(st.QueueFailed))
		if p := d.sqs.Load(); p != nil {
			q := p.Stats()
			counter("ferry_events_sqs_messages_total", "SQS messages received (again when received again).", uint64(q.Messages))
			counter("ferry_events_sqs_deleted_total", "SQS messages deleted: their hints queued, or none in them.", uint64(q.Deleted))
			counter("ferry_events_sqs_retained_total", "SQS messages left in the queue because their hints could not be queued.", uint64(q.Retained))
			counter("ferry_events_sqs_errors_total", "Failed SQS calls, by call.", uint64(q.ReceiveErrors), "call", "ReceiveMessage")
			counter("ferry_events_sqs_errors_total", "Failed SQS calls, by call.", uint64(q.DeleteErrors), "call", "DeleteMessageBatch")
		}
		for result, v := range map[string]int64{"confirmed": st.SubscriptionsConfirmed, "failed": st.SubscriptionsFailed, "refused": st.SubscriptionsRefused} {
			counter("ferry_events_sns_subscriptions_total", "SNS subscription confirmations, by result.", uint64(v), "result", result)
		}
	}
	ai := d.ai
	if ai == nil {
		return
	}
	ai.mu.Lock()
	for src, m := range ai.bySource {
		for o, n := range m {
			counter("ferry_events_applied_total", "Queued events applied to the namespace, by source and by what they did (new, changed, deleted, conflict, noop, ignored-*).", uint64(n), "source", src, "outcome", o.String())
		}
	}
	ai.mu.Unlock()
	ai.lag.Collect(ch)
	hs := d.imp.Stats().Hints
	counter("ferry_import_conflicts_total", "Files with local changes whose object changed (a conflict copy keeps the local content) or was deleted (the file stays).", uint64(hs.ConflictsChanged), "kind", "changed")
	counter("ferry_import_conflicts_total", "Files with local changes whose object changed (a conflict copy keeps the local content) or was deleted (the file stays).", uint64(hs.ConflictsDeleted), "kind", "deleted")
	counter("ferry_import_hints_deferred_total", "Event applications put off a little (the file open, or its export in flight).", uint64(hs.Deferred))
	counter("ferry_import_hints_failed_total", "Event applications that failed and are retried with backoff (the repository did not answer).", uint64(hs.Failed))
	counter("ferry_import_dirs_removed_total", "Directories removed by auto-import once empty here and in the repository.", uint64(hs.DirsRemoved))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gauge := func(name, help string, v float64) {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, nil, nil), prometheus.GaugeValue, v)
	}
	if n, err := d.cat.HintDepth(ctx); err == nil {
		gauge("ferry_import_events_pending", "Events queued and not yet applied.", float64(n))
	}
	if age, err := d.cat.HintOldestAge(ctx); err == nil {
		gauge("ferry_import_events_oldest_age_seconds", "How long the oldest queued event has waited (0 when none).", age.Seconds())
	}
}
