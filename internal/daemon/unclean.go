package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
)

// The mount journals close(2) and metadata calls relaxed: committed to the
// catalog but not fsynced (see "Write path" in docs/architecture.md). That
// survives kill -9 of the daemon, not a crash of the machine: a file whose
// data reached the disk while its journal entry did not is dirty but never
// journaled. So the daemon records, in the store's metadata folder, the
// boot it runs in, and removes the record at a clean stop. Found at start
// with another boot's id, the last daemon went down with its machine, and
// an EXPORT_TO_REPOSITORY task over every auto-exporting association picks
// up whatever dirty file the journal lost (dirty files are that task's
// input; clean ones cost only a state read).

// bootID returns the current boot's random id, read from file
// (Config.BootIDFile); "" when it cannot be read.
func bootID(file string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// runningMarker is the marker of the daemon serving the store on
// mountPoint from this host: one per node, as several daemons on one host
// (or on many nodes) serve one store, and each settles its own.
func runningMarker(meta, mountPoint string) string {
	sum := sha256.Sum256([]byte(mountPoint))
	return filepath.Join(meta, "running."+hostname()+"."+hex.EncodeToString(sum[:6]))
}

// readMarker returns the boot id in the marker ("" when there is none).
func readMarker(meta, mountPoint string) (string, error) {
	b, err := os.ReadFile(runningMarker(meta, mountPoint))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	return strings.TrimSpace(string(b)), err
}

// writeMarker replaces the marker with one holding boot.
func writeMarker(meta, mountPoint, boot string) error {
	p := runningMarker(meta, mountPoint)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(boot+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// markStopped removes the marker at a clean stop.
func markStopped(meta, mountPoint string) { _ = os.Remove(runningMarker(meta, mountPoint)) }

// runningMarkerState is what the running marker step found, and what the
// stop needs to know to settle the marker.
type runningMarkerState struct {
	prev string // the boot id the marker held at start ("" = none)
	// crashedBoot is prev when it is another boot's and the export task of
	// that unclean boot is not queued yet (recoverUncleanBoot queues it).
	crashedBoot   string
	catalogOpened bool // by this daemon
	catalogClosed bool // cleanly, at the stop
}

// writeRunningMarker writes the marker for this boot, noting a marker left
// by a daemon that did not stop cleanly in an earlier boot (a marker of
// this boot is a daemon crash, which loses no committed entry).
func (d *Daemon) writeRunningMarker() error {
	meta := d.store.MetaPath()
	prev, err := readMarker(meta, d.cfg.MountPoint)
	if err != nil {
		return fmt.Errorf("store %s: %w", d.cfg.Store, err)
	}
	now := bootID(d.cfg.BootIDFile)
	d.marker.prev = prev
	if prev != "" && prev != now {
		d.marker.crashedBoot = prev
	}
	if err := writeMarker(meta, d.cfg.MountPoint, now); err != nil {
		return fmt.Errorf("store %s: %w", d.cfg.Store, err)
	}
	d.closers.push("running marker", d.settleRunningMarker)
	return nil
}

// settleRunningMarker is the marker's closer. After a clean stop (the
// catalog closed without error) the marker goes. Otherwise it keeps what
// still holds: the id of a crashed boot whose export task was not queued,
// this boot's id when the catalog was opened but not closed cleanly
// (entries committed relaxed may not be on disk), or, when the catalog
// was never opened, what it held before this start
// (TestFailedStartKeepsCrashedBoot, TestUncleanBootExportTask).
func (d *Daemon) settleRunningMarker() error {
	meta := d.store.MetaPath()
	m := d.marker
	switch {
	case m.crashedBoot != "":
		return writeMarker(meta, d.cfg.MountPoint, m.crashedBoot)
	case m.catalogOpened && !m.catalogClosed:
		return nil
	case !m.catalogOpened && m.prev != "":
		return writeMarker(meta, d.cfg.MountPoint, m.prev)
	}
	markStopped(meta, d.cfg.MountPoint)
	return nil
}

// recoverUncleanBoot queues the export task of an unclean boot (see above).
// The token makes a restart during the same recovery queue it once.
// It never fails the start: what it cannot do, it logs, and the marker
// keeps the crashed boot's id so the next start tries again.
func (d *Daemon) recoverUncleanBoot() error {
	crashedBoot := d.marker.crashedBoot
	if crashedBoot == "" {
		return nil
	}
	ctx := context.Background()
	as, err := d.cat.Associations(ctx)
	if err != nil {
		d.log.Error("after an unclean shutdown of the machine: cannot list associations; run an export task by hand", "err", err)
		return nil
	}
	var paths []string // store directories of exporting associations
	exporting := false
	for _, a := range dra.NewTable(as, nil).All() {
		if !a.Exports(api.EventNew, api.EventChanged, api.EventDeleted) {
			continue // import-only: local changes are not the repository's
		}
		exporting = true
		if a.Dir == "." {
			paths = nil // the root association: the whole file system
			break
		}
		paths = append(paths, a.Dir)
	}
	if !exporting {
		d.marker.crashedBoot = "" // nothing to export
		return nil
	}
	tok := "unclean-boot-" + strings.ReplaceAll(crashedBoot, "-", "")
	if len(tok) > 63 {
		tok = tok[:63]
	}
	t, err := d.tasks.Create(ctx, api.CreateDataRepositoryTaskRequest{
		Type: api.TaskExportToRepository, FileSystemId: d.id.FileSystemId, Paths: paths,
		Report: &api.CompletionReport{Enabled: false}, ClientRequestToken: tok,
	})
	if err != nil {
		d.log.Error("after an unclean shutdown of the machine: cannot queue the export task; run one by hand", "err", err)
		return nil
	}
	d.marker.crashedBoot = ""
	d.log.Warn("the last mount ended with its machine; an export task checks for changes the journal may have lost", "task", t.DataRepositoryTask.TaskId)
	return nil
}
