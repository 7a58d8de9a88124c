package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/ferry-hpc/ferry/internal/associations"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/fusefs"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/tasks"
	"github.com/ferry-hpc/ferry/internal/transfer"
	"github.com/ferry-hpc/ferry/internal/writepath"
)

// A daemon is built by named steps, one per layer, run in order by Start
// (Daemon.steps). A step that starts something pushes, at once, the closer
// that stops it; a failed start and a stop run the same closers, last
// pushed first. So the stop order is the start order reversed, and the
// list in Daemon.steps is the one place the code keeps either
// (docs/architecture.md, "Start order", describes it). A step whose closer
// forgets something fails TestFailedStartLeavesNothing, which makes each
// step fail in turn (Config.StepHook) and looks for what stayed open.
//
// The orderings that matter, and why:
//   - the catalog is opened (SQLite recovers its WAL) before anything
//     serves, and closed after everything that uses it has stopped;
//   - every association is published to the importer, the exporter and the
//     mount's journal before anything uses them;
//   - renames the last mount made but did not journal are journaled before
//     the exporter runs, or it would complete the pending entries of their
//     old names as gone;
//   - the task runner starts after the exporter (export tasks use it) and
//     stops before it;
//   - the control API serves before the mount and after it (requests can be
//     queued while the mount comes up), and the registration is written
//     before the mount, so two mounts of one store race on the
//     registration, not on the mountpoint;
//   - the association worker resumes work a crash left CREATING, UPDATING
//     or DELETING before the mount serves;
//   - the applier of import hints (auto-import) starts after the unclean
//     boot is settled and stops before the importer closes; the event
//     intake, which wakes it, serves after it starts and stops before it
//     (hints accepted at a stop are committed to the catalog, and the next
//     mount applies them);
//   - nothing writes through the mount before the FUSE step, and the
//     running marker (unclean.go) is written before it and removed only
//     after the catalog closed.

// step is one named start step.
type step struct {
	name string
	run  func() error
}

// steps are the daemon's start steps, in order.
func (d *Daemon) steps() []step {
	return []step{
		{"store", d.openStore},
		{"identity", d.loadIdentity},
		{"running marker", d.writeRunningMarker},
		{"catalog", d.openCatalog},
		{"session", d.startSession},
		{"S3 client", d.connectS3},
		{"importer", d.startImporter},
		{"exporter", d.buildExporter},
		{"task runner", d.buildTasks},
		{"associations", d.buildAssociations},
		{"metrics listener", d.listenMetrics},
		{"registration", d.register},
		{"renames", d.recoverMoves},
		{"export", d.runExporter},
		{"tasks", d.runTasks},
		{"unclean boot", d.recoverUncleanBoot},
		{"auto-import", d.runAutoImport},
		{"status", d.startStatus},
		{"control API", d.serveControl},
		{"metrics", d.serveMetrics},
		{"event intake", d.serveEvents},
		{"association worker", d.runAssociations},
		{"import sweep", d.runSweep},
		{"FUSE mount", d.mountFUSE},
		{"ready", d.notifyReady},
	}
}

// closers is a stack of functions that undo start steps.
type closers struct {
	mu   sync.Mutex
	list []closer
}

type closer struct {
	name string
	fn   func() error
}

// push adds fn, which undoes what name started.
func (c *closers) push(name string, fn func() error) {
	c.mu.Lock()
	c.list = append(c.list, closer{name, fn})
	c.mu.Unlock()
}

// closeAll runs every closer, last pushed first, logging failures: a
// closer that fails does not keep the ones below it from running.
func (c *closers) closeAll(log *slog.Logger) {
	for {
		c.mu.Lock()
		if len(c.list) == 0 {
			c.mu.Unlock()
			return
		}
		cl := c.list[len(c.list)-1]
		c.list = c.list[:len(c.list)-1]
		c.mu.Unlock()
		if err := cl.fn(); err != nil {
			log.Error("stop "+cl.name, "err", err)
		}
	}
}

func (d *Daemon) openStore() (err error) {
	if d.store, err = store.Open(d.cfg.Store); err != nil {
		return err
	}
	d.closers.push("store", d.store.Close)
	return nil
}

func (d *Daemon) loadIdentity() (err error) {
	if d.id, d.created, err = LoadIdentity(d.store); err != nil {
		return err
	}
	d.node = nodeID(d.id.FileSystemId, hostname(), d.cfg.MountPoint)
	d.log = d.cfg.Logger.With("fs", d.id.FileSystemId)
	if d.created {
		d.log.Info("initialised a new file system", "store", d.cfg.Store)
	}
	return nil
}

// openCatalog opens the catalog (SQLite recovers its WAL) before anything
// serves, and makes it the store's chunk map store. An SQLite catalog is
// locked first (lockSQLite): a second daemon over it is refused.
func (d *Daemon) openCatalog() (err error) {
	ctx := context.Background()
	unlock, err := lockSQLite(d.cfg.Catalog, d.cfg.Store, d.cfg.MountPoint)
	if err != nil {
		return err
	}
	d.closers.push("catalog lock", unlock)
	if d.cat, err = catalog.Open(ctx, d.cfg.Catalog, catalog.Options{StoreRoot: d.cfg.Store, Logger: d.log.With("component", "catalog")}); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	d.marker.catalogOpened = true
	d.closers.push("catalog", func() error {
		err := d.cat.Close()
		d.marker.catalogClosed = err == nil
		return err
	})
	if _, err = d.cat.InitFileSystem(ctx, catalog.FileSystemInfo{FileSystemId: d.id.FileSystemId, CreationTime: d.id.CreationTime, StorePath: d.cfg.Store}); err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	d.store.SetMapStore(d.cat)
	return nil
}

// connectS3 builds the daemon's one S3 client (one connection pool).
// Nothing is requested here: a daemon starts without credentials, and
// each association's requests use the client of its Access
// (s3x.Client.For): an unsigned association never needs any.
func (d *Daemon) connectS3() (err error) {
	s3cfg := d.cfg.S3
	if s3cfg.MaxConns == 0 {
		s3cfg.MaxConns = 64
	}
	d.s3, err = s3x.New(context.Background(), s3cfg)
	return err
}

// startImporter builds the importer that serves lazy import behind the
// mount; it learns of the mount (open files, kernel cache invalidation)
// once the mount exists.
func (d *Daemon) startImporter() error {
	d.imp = importer.New(importer.Config{
		Store: d.store, Catalog: d.cat, S3: d.s3, Logger: d.log,
		FetchTimeout: d.cfg.FetchTimeout,
		ListAhead:    d.cfg.ListAhead,
		Owners:       d.cfg.owners,
		InUse: func(rel string) bool {
			f := d.mounted.Load()
			return f != nil && f.InUse(rel)
		},
		Invalidate: d.invalidate,
	})
	d.closers.push("importer", d.imp.Close)
	if o := d.cfg.owners; o.Restricted {
		d.log.Info("no CAP_CHOWN: imported files belong to this daemon's user; owner headers naming others are replaced",
			"uid", o.UID, "gid", o.GID)
	}
	return nil
}

// invalidate tells the kernel that rel changed behind the mount; before
// the mount exists there is nothing to tell.
func (d *Daemon) invalidate(rel string) {
	if f := d.mounted.Load(); f != nil {
		f.Invalidate(rel)
	}
}

// buildExporter builds the exporter on the daemon's one transfer engine
// (one bound on S3 requests in flight for exports and task reports); it
// runs from the export step.
func (d *Daemon) buildExporter() (err error) {
	d.eng = transfer.New(d.s3, transfer.Options{Concurrency: d.cfg.Export.Concurrency})
	d.exp, err = d.newExporter()
	return err
}

func (d *Daemon) buildTasks() (err error) {
	d.tasks, err = tasks.New(tasks.Config{
		Catalog: d.cat, Store: d.store, Exporter: d.exp, Importer: d.imp, S3: d.s3,
		Engine: d.eng, Logger: d.log,
		// Import tasks apply every event, whatever the policy; their
		// conflict copies are journaled for export like a mount's.
		Applier:          d.imp.NewApplier(importer.ApplyConfig{AllEvents: true, Journal: conflictJournal{d}}),
		AutoReleaseAbove: d.cfg.AutoReleaseAbove,
	})
	return err
}

// conflictJournal journals the conflict copies an import makes (NEW), in
// the mount's export journal, once buildAssociations has made it.
type conflictJournal struct{ d *Daemon }

func (c conflictJournal) Made(ctx context.Context, rel string) error {
	if c.d.jnl == nil {
		return nil
	}
	return writepath.New(writepath.Config{Store: c.d.store, Journal: c.d.jnl, Logger: c.d.log}).Made(ctx, rel)
}

// buildAssociations builds the mount's export journal (its write hooks
// append below associations that auto-export, and wake the exporter) and
// the association worker, and gives every association to the importer,
// the exporter and the journal.
func (d *Daemon) buildAssociations() error {
	d.jnl = writepath.NewCatalogJournal(d.cat, d.exp.Notify)
	d.assoc = associations.New(associations.Config{
		FileSystemId: d.id.FileSystemId, Catalog: d.cat, Store: d.store, S3: d.s3, Importer: d.imp, Logger: d.log,
		RecheckInterval:        d.cfg.RecheckInterval,
		AvailableCheckInterval: d.cfg.AvailableCheckInterval,
		ExportFailures:         func() map[string]int64 { return d.exp.Stats().Failures },
		Invalidate:             d.invalidate,
		Listeners:              []func(*dra.Table){d.exp.SetAssociations, d.jnl.SetAssociations},
		EventsTargetARN:        d.cfg.EventsTargetARN,
		Leader:                 d.leader.Load,
		Settle:                 d.settle,
	})
	d.assoc.Publish(context.Background())
	return nil
}

// register writes the registration <runtime dir>/<fs-id>.json.
func (d *Daemon) register() (err error) {
	d.logFile = backgroundLog(d.cfg.RuntimeDir, d.id.FileSystemId)
	d.reg, err = mounts.Register(d.cfg.RuntimeDir, mounts.Registration{
		FileSystemId: d.id.FileSystemId,
		Pid:          os.Getpid(),
		Store:        d.cfg.Store,
		MountPoint:   d.cfg.MountPoint,
		Catalog:      d.cfg.Catalog,
		StartTime:    d.started.UTC(),
		LogFile:      d.logFile,
		Socket:       mounts.SocketPath(d.cfg.RuntimeDir, d.id.FileSystemId),
	})
	if err != nil {
		return err
	}
	d.closers.push("registration", func() error {
		mounts.Unregister(d.reg, os.Getpid())
		return nil
	})
	return nil
}

// recoverMoves journals the renames the last mount made but did not
// journal (it died in between), before the exporter could drop the
// pending entries of their old names as gone.
func (d *Daemon) recoverMoves() error {
	n, err := writepath.RecoverMoves(context.Background(), writepath.Config{Store: d.store, Journal: d.jnl, Logger: d.log, Listed: d.imp})
	if err != nil {
		return fmt.Errorf("catalog %s: settling renames left by the last mount: %w", d.cfg.Catalog, err)
	}
	if n > 0 {
		d.log.Warn("journaled renames the last mount left unjournaled", "renames", n)
	}
	return nil
}

// runExporter runs the exporter: it resumes the journal left by the last
// mount (or a crash), so what was not exported then is exported now.
func (d *Daemon) runExporter() error {
	stop := d.background("exporter", d.exp.Run)
	d.closers.push("exporter", func() error { d.stopExporter(stop); return nil })
	return nil
}

// runTasks runs the task runner: tasks left PENDING, EXECUTING or
// CANCELING by the last mount (or a crash) go on now. A task it is running
// at a stop stays EXECUTING in the catalog and runs again at the next
// mount.
func (d *Daemon) runTasks() error {
	stop := d.background("task runner", d.tasks.Run)
	d.closers.push("task runner", func() error { stop(); return nil })
	return nil
}

// runAssociations runs the association worker: work a crash left
// CREATING, UPDATING or DELETING resumes now.
func (d *Daemon) runAssociations() error {
	stop := d.background("association worker", d.assoc.Run)
	d.closers.push("association worker", func() error { stop(); return nil })
	return nil
}

// serveControl serves the control API on its socket.
func (d *Daemon) serveControl() error {
	l, sock, err := listenControl(d.cfg.RuntimeDir, d.id.FileSystemId)
	if err != nil {
		return err
	}
	d.sock = sock
	d.http = &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		if err := d.http.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("control API stopped", "err", err)
		}
	}()
	d.closers.push("control API", func() error {
		shutdown(d.http)
		<-served
		mounts.RemoveSocket(d.sock, d.reg, os.Getpid())
		return nil
	})
	return nil
}

// shutdown stops srv, waiting up to 5 seconds for requests in progress
// before it closes their connections.
func shutdown(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		srv.Close()
	}
}

// mountFUSE mounts the file system with the importer and the export
// journal; from now on the importer and the exporter reach the mount.
func (d *Daemon) mountFUSE() (err error) {
	opt := d.cfg.FUSE
	opt.Logger = d.log
	if opt.FsName == "" {
		opt.FsName = "ferry:" + d.id.FileSystemId
	}
	opt.Importer = d.imp
	opt.Journal = d.jnl
	opt.Access = d.cat // open times for AUTO_RELEASE_DATA's order
	if d.server, d.fsys, err = fusefs.Mount(d.cfg.MountPoint, d.store, opt); err != nil {
		return err
	}
	d.mounted.Store(d.fsys)
	d.closers.push("FUSE mount", func() error {
		if !d.unmounted.Load() { // a failed start: the mount is still there
			if err := d.unmount(); err != nil && !errors.Is(err, ErrNotMounted) {
				return err
			}
			d.server.Wait()
		}
		d.fsys.Close() // the last access records, before the catalog closes
		return nil
	})
	d.log.Info("mounted", "store", d.cfg.Store, "mountpoint", d.cfg.MountPoint)
	return nil
}
