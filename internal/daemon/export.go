package daemon

import (
	"context"
	"errors"
	"net/http"
	"os"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/s3x"
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
// transfer engine. Its Owner (the name of its claims in the catalog's journal,
// the node id) is stable across restarts of this mount, so a restarted
// daemon takes back the claims a crash left (exporter.Run releases them).
func (d *Daemon) newExporter() (*exporter.Exporter, error) {
	o := d.cfg.Export
	return exporter.New(exporter.Config{
		Store: d.store, Catalog: d.cat, S3: d.s3,
		Engine:  d.eng,
		Owner:   d.claimOwner(),
		Workers: o.Workers, RetryBase: o.RetryBase, RetryMax: o.RetryMax, Poll: o.Poll,
		Version:     d.cfg.Version,
		Logger:      d.log.With("component", "exporter"),
		VersionRead: d.versionRead,
		Restore:     d.restoreForMove,
		UnseenWriter: func(dev, ino uint64) bool {
			f := d.mounted.Load()
			return f != nil && f.UnseenWriter(dev, ino)
		},
	})
}

// hostname is the machine's name in claim owners ("localhost" when it has
// none).
func hostname() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return "localhost"
	}
	return host
}

// versionRead is the exporter's Config.VersionRead: the mount clears the
// file's "bumped" bit (store.BumpVersion's protocol), so that its next write
// through the mount bumps the content version again and an export never
// marks a file clean that changed after its version was read. Before the
// mount exists nothing writes through it.
func (d *Daemon) versionRead(dev, ino uint64) {
	if f := d.mounted.Load(); f != nil {
		f.VersionRead(dev, ino)
	}
}

// stopExporter stops the exporter (stop is its runner's) and waits for it:
// exports in flight are cut short and their claims released; everything
// not exported stays in the journal for the next mount (the journal is
// never dropped). It must return before the catalog closes.
func (d *Daemon) stopExporter(stop func()) {
	stop()
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

// restoreForMove makes a renamed released file local before a move writes
// the key its data is still under (exporter Config.Restore). A file whose
// object is already gone or replaced can never be made local: that is
// logged, and the move goes on (waiting would hold it forever).
func (d *Daemon) restoreForMove(ctx context.Context, rel string) error {
	err := d.imp.Restore(ctx, rel, nil)
	var re *importer.ReadError
	if errors.As(err, &re) && (re.Code == importer.CodeChanged || re.Code == s3x.CodeNoSuchKey) {
		d.log.Error("renamed released file cannot be made local: its object is gone or replaced", "path", rel, "err", err)
		return nil
	}
	return err
}
