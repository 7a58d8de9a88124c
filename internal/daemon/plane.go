package daemon

import (
	"context"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/importer"
)

// dataPlane is what the daemon asks of the importer (the contract in
// notes/importer-contract.md): association changes in, batch import, hsm
// restore/release/action, counters out. importerPlane adapts
// internal/importer to it.
type dataPlane interface {
	SetAssociations(as []api.DataRepositoryAssociation)
	EnsureListed(ctx context.Context, dir string) error
	ImportAll(ctx context.Context, a api.DataRepositoryAssociation, progress func(api.BatchImportStatus)) (api.BatchImportStatus, error)
	Restore(ctx context.Context, rel string, progress func(n int64)) error
	Release(ctx context.Context, rel string) error
	Action(rel string) hsm.CurrentAction
	// Counters are the importer's statistics for /metrics, by metric name
	// (without the ferry_importer_ prefix), and the refused keys by error
	// code (S3ObjectPathNotPosixCompliant, S3ObjectTypeMismatch…).
	Counters() (map[string]uint64, map[string]int64)
	// Gauges are the importer's values of the moment for /metrics, by
	// metric name (without the ferry_importer_ prefix): fetches in flight
	// and stalled.
	Gauges() map[string]float64
}

// importerPlane adapts internal/importer to dataPlane.
type importerPlane struct{ im *importer.Importer }

func (p importerPlane) SetAssociations(as []api.DataRepositoryAssociation) { p.im.SetAssociations(as) }
func (p importerPlane) EnsureListed(ctx context.Context, dir string) error {
	return p.im.EnsureListed(ctx, dir)
}
func (p importerPlane) Restore(ctx context.Context, rel string, progress func(int64)) error {
	return p.im.Restore(ctx, rel, progress)
}
func (p importerPlane) Release(ctx context.Context, rel string) error { return p.im.Release(ctx, rel) }
func (p importerPlane) Action(rel string) hsm.CurrentAction           { return p.im.Action(rel) }

func (p importerPlane) ImportAll(ctx context.Context, a api.DataRepositoryAssociation, progress func(api.BatchImportStatus)) (api.BatchImportStatus, error) {
	c, err := p.im.ImportAll(ctx, a, func(c importer.ImportCounts) { progress(batchStatus(c)) })
	return batchStatus(c), err
}

func batchStatus(c importer.ImportCounts) api.BatchImportStatus {
	return api.BatchImportStatus{Objects: c.Objects, Files: c.Files, Directories: c.Dirs, Symlinks: c.Symlinks, Refused: c.Refused, RefusedByCode: c.RefusedByCode}
}

func (p importerPlane) Counters() (map[string]uint64, map[string]int64) {
	s := p.im.Stats()
	return map[string]uint64{
		"list_requests_total":    uint64(s.ListRequests),
		"head_requests_total":    uint64(s.HeadRequests),
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
	}, s.RefusedByCode
}

func (p importerPlane) Gauges() map[string]float64 {
	s := p.im.Stats()
	return map[string]float64{
		"fetches_in_flight":     float64(s.FetchesInFlight),
		"fetches_stalled":       float64(s.FetchesStalled),
		"fetch_stalled_seconds": s.StalledSeconds,
	}
}
