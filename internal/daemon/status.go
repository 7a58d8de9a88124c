package daemon

import (
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/keypath"
)

// The status operation (POST /status; ferry status): one view of the file
// system, gathered here in one call from what the daemon already keeps —
// the nodes (nodes), the associations with describe's auto-import state
// and the export journal's backlog under each (statusAssociations), the
// import hint queue and fetches (the importer's counters), the tasks not
// ended (runningTasks) and the store's cache use (cacheStatus). Nothing
// here writes; each part reads the catalog once or a few times, never the
// whole namespace (the cache walk runs in the background, cachescan.go).

// backlogScanLimit bounds the journal entries read to find the oldest
// entry under one association; a larger backlog reports the whole
// journal's oldest as a bound (StatusAssociationBacklog.OldestAgeBound).
const backlogScanLimit = 10000

// maxStatusTasks bounds the tasks a status lists.
const maxStatusTasks = 100

// startStatus makes the store's cache scanner, which the status operation
// uses; its walk stops with the daemon.
func (d *Daemon) startStatus() error {
	d.scan = newCacheScanner(d.store, d.cfg.CacheScanAge)
	d.closers.push("cache scan", d.scan.close)
	return nil
}

// status is the status operation.
func (d *Daemon) status(ctx context.Context, _ api.StatusRequest) (api.Status, error) {
	out := api.Status{
		FileSystemId:  d.ID(),
		Time:          api.Now(),
		StorePath:     d.cfg.Store,
		CatalogEngine: strings.SplitN(d.cfg.Catalog, "://", 2)[0],
	}
	var err error
	if out.Nodes, err = d.nodes(ctx); err != nil {
		return out, err
	}
	if out.Export, err = d.exportStatus(ctx); err != nil {
		return out, err
	}
	if out.Associations, err = d.statusAssociations(ctx, out.Export); err != nil {
		return out, err
	}
	if out.Import, err = d.importStatus(ctx); err != nil {
		return out, err
	}
	if out.Tasks, err = d.runningTasks(ctx); err != nil {
		return out, err
	}
	out.Cache = d.cacheStatus()
	return out, nil
}

// nodes gathers the nodes serving the file system: the live sessions in
// the catalog (session.go), this daemon's marked Self.
func (d *Daemon) nodes(ctx context.Context) ([]api.StatusNode, error) {
	ss, err := d.liveNodes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.StatusNode, 0, len(ss))
	for _, s := range ss {
		out = append(out, api.StatusNode{
			NodeId: s.NodeID, Host: s.Host, MountPoint: s.MountPoint, Pid: s.PID, Version: s.Version,
			StartTime: api.NewTime(s.Started), LastHeartbeat: api.NewTime(s.Heartbeat), Self: s.NodeID == d.node,
		})
	}
	return out, nil
}

// statusAssociations describes every association (with describe's
// FerryStatus.AutoImport) and counts the export journal's backlog under
// each; total is the whole journal's.
func (d *Daemon) statusAssociations(ctx context.Context, total api.ExportStatus) ([]api.StatusAssociation, error) {
	var all []api.DataRepositoryAssociation
	req := api.DescribeDataRepositoryAssociationsRequest{}
	for {
		resp, err := d.describeAssociations(ctx, req)
		if err != nil {
			return nil, err
		}
		all = append(all, resp.Associations...)
		if resp.NextToken == "" {
			break
		}
		req.NextToken = resp.NextToken
	}
	out := make([]api.StatusAssociation, 0, len(all))
	for _, a := range all {
		s := api.StatusAssociation{
			AssociationId: a.AssociationId, FileSystemPath: a.FileSystemPath, DataRepositoryPath: a.DataRepositoryPath,
			Lifecycle: a.Lifecycle, FailureDetails: a.FailureDetails,
			AutoImport: []api.EventType{}, AutoExport: []api.EventType{},
		}
		if a.S3 != nil && a.S3.AutoImportPolicy != nil {
			s.AutoImport = a.S3.AutoImportPolicy.Events
		}
		if a.S3 != nil && a.S3.AutoExportPolicy != nil {
			s.AutoExport = a.S3.AutoExportPolicy.Events
		}
		if fs := a.FerryStatus; fs != nil {
			s.ImportActivity = fs.AutoImport
			if b := fs.BatchImport; b != nil && b.State != api.BatchImportSucceeded {
				s.BatchImport = b
			}
		}
		var err error
		s.Export, err = d.journalBacklog(ctx, keypath.ToCatalog(keypath.FromFSx(a.FileSystemPath)), total)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// journalBacklog is the export journal's backlog under prefix (store path
// in the catalog's form, "" = everything): pending and parked entries and
// the oldest one's age. The catalog counts entries under a prefix by its
// path index; the oldest is found by reading them, up to
// backlogScanLimit, unless the prefix holds the whole journal (then the
// journal's oldest is it).
func (d *Daemon) journalBacklog(ctx context.Context, prefix string, total api.ExportStatus) (api.StatusAssociationBacklog, error) {
	var b api.StatusAssociationBacklog
	var err error
	if b.Pending, err = d.cat.PendingCount(ctx, prefix, 0); err != nil {
		return b, err
	}
	parked, err := d.cat.ParkedEntries(ctx, prefix, "", backlogScanLimit+1)
	if err != nil {
		return b, err
	}
	b.Parked = int64(len(parked))
	n := b.Pending + b.Parked
	switch {
	case n == 0:
		return b, nil
	case n >= total.Pending || n > backlogScanLimit:
		// The whole journal is under prefix, or too much of it to read:
		// its oldest is exact, or a bound.
		b.OldestAgeSeconds = total.OldestAgeSeconds
		b.OldestAgeBound = n < total.Pending
		return b, nil
	}
	oldest := time.Time{}
	after := ""
	for read := 0; read < backlogScanLimit; {
		page, err := d.cat.Pending(ctx, prefix, after, 1000)
		if err != nil {
			return b, err
		}
		for _, e := range page {
			if oldest.IsZero() || e.EnqueuedAt.Before(oldest) {
				oldest = e.EnqueuedAt
			}
		}
		read += len(page)
		if len(page) < 1000 {
			break
		}
		after = page[len(page)-1].Path
	}
	if !oldest.IsZero() {
		b.OldestAgeSeconds = max(time.Since(oldest), 0).Seconds()
	}
	return b, nil
}

// importStatus is the file system's import side: the hint queue and the
// importer's fetches.
func (d *Daemon) importStatus(ctx context.Context) (api.StatusImport, error) {
	var s api.StatusImport
	var err error
	if s.PendingEvents, err = d.cat.HintDepth(ctx); err != nil {
		return s, err
	}
	age, err := d.cat.HintOldestAge(ctx)
	if err != nil {
		return s, err
	}
	s.OldestAgeSeconds = age.Seconds()
	is := d.imp.Stats()
	s.FetchesInFlight, s.FetchesStalled, s.Conflicts = is.FetchesInFlight, is.FetchesStalled, is.Hints.Conflicts()
	s.RecentConflicts = d.recentConflicts("")
	return s, nil
}

// runningTasks lists the tasks not ended (at most maxStatusTasks), oldest
// first.
func (d *Daemon) runningTasks(ctx context.Context) ([]api.StatusTask, error) {
	out := []api.StatusTask{}
	req := api.DescribeDataRepositoryTasksRequest{Filters: []api.Filter{{Name: api.FilterTaskLifecycle,
		Values: []string{string(api.TaskPending), string(api.TaskExecuting), string(api.TaskCanceling)}}}}
	for len(out) < maxStatusTasks {
		resp, err := d.tasks.Describe(ctx, req)
		if err != nil {
			return nil, err
		}
		for _, t := range resp.DataRepositoryTasks {
			s := api.StatusTask{TaskId: t.TaskId, Type: t.Type, Lifecycle: t.Lifecycle, Paths: t.Paths,
				CreationTime: t.CreationTime, StartTime: t.StartTime}
			if t.Status != nil {
				s.Status = *t.Status
			}
			out = append(out, s)
		}
		if resp.NextToken == "" {
			break
		}
		req.NextToken = resp.NextToken
	}
	slices.SortStableFunc(out, func(a, b api.StatusTask) int { return a.CreationTime.Compare(b.CreationTime.Time) })
	return out[:min(len(out), maxStatusTasks)], nil
}

// cacheStatus is the store's cache use: the last walk of the store, the
// bytes fetched since the start and the store's file system as df shows
// it.
func (d *Daemon) cacheStatus() api.StatusCache {
	c := api.StatusCache{FetchedBytes: d.imp.Stats().BytesFetched, AutoReleaseAbove: d.cfg.AutoReleaseAbove}
	if r, ok := d.scan.get(); ok {
		c.LocalBytes, c.ReleasedBytes, c.Files, c.ReleasedFiles = r.local, r.released, r.files, r.rel
		c.ScanTime = api.TimePtr(r.end)
		c.ScanSeconds = r.took.Seconds()
		if r.err != nil {
			c.ScanError = r.err.Error()
		}
	}
	if sf, err := d.store.Statfs(); err == nil {
		bs := uint64(sf.Bsize)
		c.StoreSizeBytes = sf.Blocks * bs
		c.StoreUsedBytes = (sf.Blocks - sf.Bfree) * bs
		c.StoreAvailableBytes = sf.Bavail * bs
		if total := c.StoreUsedBytes + c.StoreAvailableBytes; total > 0 {
			c.StoreUsedPercent = math.Round(1000*float64(c.StoreUsedBytes)/float64(total)) / 10
		}
	}
	return c
}
