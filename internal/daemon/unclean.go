package daemon

import (
	"context"
	"errors"
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

// bootIDFile is where Linux gives the current boot's random id.
var bootIDFile = "/proc/sys/kernel/random/boot_id"

func bootID() string {
	b, err := os.ReadFile(bootIDFile)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// runningMarker is the marker of a daemon serving the store from this host.
func runningMarker(meta string) string {
	host, _ := os.Hostname()
	return filepath.Join(meta, "running."+host)
}

// markRunning writes the marker for this boot and reports the boot id of
// a marker left by a daemon that did not stop cleanly in an earlier boot
// ("" when there is none, or it was this boot: a daemon crash, which loses
// no committed entry).
func markRunning(meta string) (crashedBoot string, err error) {
	p, now := runningMarker(meta), bootID()
	if b, err := os.ReadFile(p); err == nil {
		if prev := strings.TrimSpace(string(b)); prev != now {
			crashedBoot = prev
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(now+"\n"), 0o600); err != nil {
		return "", err
	}
	return crashedBoot, os.Rename(tmp, p)
}

// markStopped removes the marker at a clean stop.
func markStopped(meta string) { _ = os.Remove(runningMarker(meta)) }

// recoverUncleanBoot queues the export task of an unclean boot (see above).
// The token makes a restart during the same recovery queue it once.
func (d *Daemon) recoverUncleanBoot(ctx context.Context, crashedBoot string) {
	as, err := d.cat.Associations(ctx)
	if err != nil {
		d.log.Error("after an unclean shutdown of the machine: cannot list associations; run an export task by hand", "err", err)
		return
	}
	var paths []string // store directories of exporting associations
	exporting := false
	for _, a := range as {
		if a.S3 == nil || a.S3.AutoExportPolicy == nil || len(a.S3.AutoExportPolicy.Events) == 0 {
			continue // import-only: local changes are not the repository's
		}
		loc, err := dra.Locate(a)
		if err != nil {
			continue
		}
		exporting = true
		if loc.Dir == "." {
			paths = nil // the root association: the whole file system
			break
		}
		paths = append(paths, loc.Dir)
	}
	if !exporting {
		return
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
		return
	}
	d.log.Warn("the last mount ended with its machine; an export task checks for changes the journal may have lost", "task", t.DataRepositoryTask.TaskId)
}
