// Package daemon owns the life of a ferry mount: it opens the store, gives
// a new store its FileSystemId, mounts the FUSE view (internal/fusefs),
// registers the running daemon in the machine's runtime directory, and
// undoes all of it when the mount goes away — by `ferry umount`, a signal,
// or Stop.
//
// Start returns once the kernel has answered the FUSE handshake, so a
// caller (the CLI, or the parent of a --background daemon) can tell the
// user the mount is ready.
//
// Around the mount the daemon owns the control plane: the catalog
// (internal/catalog, opened before anything serves), the S3 client, the
// association worker (associations.go: create/update/delete requests
// worked one at a time, repository checks, batch import, recovery at
// start), the control API on a Unix socket (control.go) and the hsm
// operations (hsm.go). The control API is started before the mount, so
// requests can be queued while it comes up, and stopped after it.
//
// The export side (export.go): one exporter (internal/exporter) consumes the
// catalog's export journal from before the mount until after it, with one
// transfer engine; `ferry hsm wait` and `ferry hsm archive` are its control
// operations, and its counters and the journal's backlog are in /metrics
// (on the socket, and on --metrics-addr when given). Stopping never drops
// pending exports: the journal stays in the catalog and the next mount
// resumes it.
//
// Data repository tasks (tasks.go) are run by internal/tasks' Runner from
// the catalog, started after the exporter (export tasks use it) and stopped
// before it; a task cut short by a stop runs again at the next mount.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/associations"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/fusefs"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/tasks"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// Config says what to mount where.
type Config struct {
	Store      string // store directory
	MountPoint string
	Catalog    string // catalog URL (ParseCatalog); "" = the default SQLite file
	FUSE       fusefs.Options
	Logger     *slog.Logger
	RuntimeDir string // default mounts.RuntimeDir()
	// S3 selects the repository's account, region and endpoint (the
	// standard AWS chain fills what is empty), as for ferry s3.
	S3 s3x.Config
	// RecheckInterval is how often a MISCONFIGURED association checks its
	// repository again (default associations.DefaultRecheckInterval).
	RecheckInterval time.Duration
	// AvailableCheckInterval is how often an AVAILABLE association's
	// repository is checked cheaply (one ListObjectsV2 of one key), so a
	// bucket that disappears is noticed (default
	// associations.DefaultAvailableCheckInterval; negative: never).
	AvailableCheckInterval time.Duration
	// MetricsAddr, when set, also serves /metrics over TCP on this
	// address (ParseMetricsAddr: a port alone listens on 127.0.0.1).
	MetricsAddr string
	// FetchTimeout bounds a repository outage as a reader of a released
	// file sees it: a fetch that received no byte for this long fails the
	// reads waiting for it with EIO (importer.Config.FetchTimeout; 0 =
	// importer.DefaultFetchTimeout).
	FetchTimeout time.Duration
	// Export tunes the exporter (zero fields take its defaults).
	Export ExportOptions
	// AutoReleaseAbove, when set (0.8–1), makes the task runner start an
	// AUTO_RELEASE_DATA task by itself when the store's file system is
	// fuller than this (tasks.Config.AutoReleaseAbove).
	AutoReleaseAbove float64
	Version          string // reported by describe-file-systems
}

// Daemon is one running mount.
type Daemon struct {
	cfg      Config
	id       Identity
	created  bool
	store    *store.Store
	fsys     *fusefs.FS
	server   *fuse.Server
	reg      string // registration file
	sock     string // control socket
	cat      catalog.Catalog
	s3       *s3x.Client
	imp      *importer.Importer
	mounted  atomic.Pointer[fusefs.FS] // set once the mount exists
	eng      *transfer.Engine
	exp      *exporter.Exporter
	assoc    *associations.Worker
	http     *http.Server
	metrics  *prometheus.Registry
	metricsL net.Listener // --metrics-addr
	metricsS *http.Server
	stopWork context.CancelFunc // stops the association worker
	workDone chan struct{}
	stopExp  func() // stops the exporter and waits for it
	tasks    *tasks.Runner
	stopTask func() // stops the task runner and waits for it
	logFile  string // a --background daemon's log
	log      *slog.Logger
	done     chan struct{}
	stopOnce sync.Once
	stopErr  error
}

// Start opens and, on its first mount, initialises the store, mounts it
// and registers the daemon. It returns when the mount is serving.
func Start(cfg Config) (_ *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RuntimeDir == "" {
		cfg.RuntimeDir = mounts.RuntimeDir()
	}
	if cfg.Store, err = filepath.Abs(cfg.Store); err != nil {
		return nil, err
	}
	if cfg.MountPoint, err = filepath.Abs(cfg.MountPoint); err != nil {
		return nil, err
	}
	if err := checkPaths(cfg.Store, cfg.MountPoint); err != nil {
		return nil, err
	}
	if cfg.Catalog, err = ParseCatalog(cfg.Catalog, cfg.Store); err != nil {
		return nil, err
	}
	// Modes arrive from the kernel with the caller's umask applied; the
	// daemon must not apply its own on top.
	unix.Umask(0)

	d := &Daemon{cfg: cfg, done: make(chan struct{})}
	if d.store, err = store.Open(cfg.Store); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			d.store.Close()
		}
	}()
	if d.id, d.created, err = LoadIdentity(d.store); err != nil {
		return nil, err
	}
	d.log = cfg.Logger.With("fs", d.id.FileSystemId)
	if d.created {
		d.log.Info("initialised a new file system", "store", cfg.Store)
	}
	// Invariant 7: the catalog is opened (and SQLite recovers its WAL)
	// before anything serves.
	ctx := context.Background()
	if d.cat, err = catalog.Open(ctx, cfg.Catalog, catalog.Options{StoreRoot: cfg.Store, Logger: d.log.With("component", "catalog")}); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	crashedBoot, err := markRunning(d.store.MetaPath())
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", cfg.Store, err)
	}
	defer func() {
		if err != nil {
			d.cat.Close()
		}
	}()
	if _, err = d.cat.InitFileSystem(ctx, catalog.FileSystemInfo{FileSystemId: d.id.FileSystemId, CreationTime: d.id.CreationTime, StorePath: cfg.Store}); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	d.store.SetMapStore(d.cat)
	s3cfg := cfg.S3
	if s3cfg.MaxConns == 0 {
		s3cfg.MaxConns = 64
	}
	if d.s3, err = s3x.New(ctx, s3cfg); err != nil {
		return nil, err
	}
	// The importer serves lazy import behind the mount; it learns of the
	// mount (open files, kernel cache invalidation) once it exists.
	mounted := &d.mounted
	invalidate := func(rel string) {
		if f := mounted.Load(); f != nil {
			f.Invalidate(rel)
		}
	}
	d.imp = importer.New(importer.Config{
		Store: d.store, Catalog: d.cat, S3: d.s3, Logger: d.log,
		FetchTimeout: cfg.FetchTimeout,
		InUse: func(rel string) bool {
			f := mounted.Load()
			return f != nil && f.InUse(rel)
		},
		Invalidate: invalidate,
	})
	defer func() {
		if err != nil {
			d.imp.Close()
		}
	}()
	// One transfer engine (one bound on S3 requests in flight) for exports
	// and task reports.
	d.eng = transfer.New(d.s3, transfer.Options{Concurrency: cfg.Export.Concurrency})
	if d.exp, err = d.newExporter(); err != nil {
		return nil, err
	}
	if d.tasks, err = tasks.New(tasks.Config{
		Catalog: d.cat, Store: d.store, Exporter: d.exp, Importer: d.imp, S3: d.s3,
		Engine: d.eng, Logger: d.log,
		AutoReleaseAbove: cfg.AutoReleaseAbove,
	}); err != nil {
		return nil, err
	}
	// The mount's write hooks append to the export journal below
	// associations that auto-export, and wake the exporter.
	jnl := fusefs.NewCatalogJournal(d.cat, d.exp.Notify)
	d.assoc = associations.New(associations.Config{
		FileSystemId: d.id.FileSystemId, Catalog: d.cat, Store: d.store, S3: d.s3, Importer: d.imp, Logger: d.log,
		RecheckInterval:        cfg.RecheckInterval,
		AvailableCheckInterval: cfg.AvailableCheckInterval,
		ExportFailures:         func() map[string]int64 { return d.exp.Stats().Failures },
		Invalidate:             invalidate,
		Listeners:              []func([]api.DataRepositoryAssociation){d.exp.SetAssociations, jnl.SetAssociations},
	})
	d.metrics = d.newMetrics()
	if cfg.MetricsAddr != "" {
		if d.metricsL, err = listenMetrics(cfg.MetricsAddr); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				d.metricsL.Close()
			}
		}()
	}
	d.logFile = backgroundLog(cfg.RuntimeDir, d.id.FileSystemId)
	// Register before mounting, so two mounts of one store race on the
	// registration, not on the mountpoint.
	if d.reg, err = mounts.Register(cfg.RuntimeDir, mounts.Registration{
		FileSystemId: d.id.FileSystemId,
		Pid:          os.Getpid(),
		Store:        cfg.Store,
		MountPoint:   cfg.MountPoint,
		Catalog:      cfg.Catalog,
		StartTime:    time.Now().UTC(),
		LogFile:      d.logFile,
		Socket:       mounts.SocketPath(cfg.RuntimeDir, d.id.FileSystemId),
	}); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			mounts.Unregister(d.reg, os.Getpid())
		}
	}()
	// The control API and the association worker start before the mount:
	// work left CREATING, UPDATING or DELETING by a crash resumes now
	// (invariant 7), and clients can queue requests while the mount comes up.
	ctl, sock, err := listenControl(cfg.RuntimeDir, d.id.FileSystemId)
	if err != nil {
		return nil, err
	}
	d.sock = sock
	d.http = &http.Server{Handler: d.handler(), ReadHeaderTimeout: 10 * time.Second}
	go d.serveControl(ctl)
	wctx, stopWork := context.WithCancel(context.Background())
	d.stopWork, d.workDone = stopWork, make(chan struct{})
	d.assoc.Publish(wctx)
	go func() {
		defer close(d.workDone)
		d.assoc.Run(wctx)
	}()
	// Renames the last mount made but did not journal (it died in
	// between) are journaled before the exporter could drop the pending
	// entries of their old names as gone (invariant 1).
	if n, rerr := fusefs.RecoverMoves(ctx, d.store, jnl, d.log); rerr != nil {
		d.stopControl()
		return nil, fmt.Errorf("catalog %s: settling renames left by the last mount: %w", cfg.Catalog, rerr)
	} else if n > 0 {
		d.log.Warn("journaled renames the last mount left unjournaled", "renames", n)
	}
	// The exporter resumes the journal left by the last mount (or a
	// crash) now: invariant 1 holds across restarts.
	d.startExporter()
	d.startTasks()
	if crashedBoot != "" {
		d.recoverUncleanBoot(ctx, crashedBoot)
	}
	d.serveMetrics()
	defer func() {
		if err != nil {
			d.stopControl()
			d.stopTasks()
			d.stopExporter()
		}
	}()
	opt := cfg.FUSE
	opt.Logger = d.log
	if opt.FsName == "" {
		opt.FsName = "ferry:" + d.id.FileSystemId
	}
	opt.Importer = d.imp
	opt.Journal = jnl
	opt.Access = d.cat // open times for AUTO_RELEASE_DATA's order
	if d.server, d.fsys, err = fusefs.Mount(cfg.MountPoint, d.store, opt); err != nil {
		return nil, err
	}
	mounted.Store(d.fsys)
	d.log.Info("mounted", "store", cfg.Store, "mountpoint", cfg.MountPoint)
	go d.serve()
	if err := d.notifyReady(); err != nil {
		d.Stop()
		return nil, fmt.Errorf("background daemon: %w", err)
	}
	return d, nil
}

// serve waits for the mount to end, however it ends, and cleans up.
func (d *Daemon) serve() {
	d.server.Wait()
	d.fsys.Close() // the last access records, before the catalog closes
	d.stopControl()
	d.stopTasks()
	d.stopExporter()
	mounts.Unregister(d.reg, os.Getpid())
	d.imp.Close()
	if err := d.cat.Close(); err != nil {
		d.log.Error("close catalog", "err", err)
	}
	markStopped(d.store.MetaPath())
	d.store.Close()
	d.log.Info("unmounted", "mountpoint", d.cfg.MountPoint)
	close(d.done)
}

// stopControl stops the control API and the association worker and
// removes the socket.
func (d *Daemon) stopControl() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.stopWork()
	if err := d.http.Shutdown(ctx); err != nil {
		d.http.Close()
	}
	if d.metricsS != nil {
		if err := d.metricsS.Shutdown(ctx); err != nil {
			d.metricsS.Close()
		}
	}
	<-d.workDone
	mounts.RemoveSocket(d.sock, d.reg, os.Getpid())
}

// background runs fn in a goroutine; the returned stop cancels its
// context and waits until fn has returned.
func (d *Daemon) background(what string, fn func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			d.log.Error(what+" stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// checkPaths refuses a mountpoint inside the store: the daemon would look
// up its own mount through the store and wait for itself. Mounting over the
// store directory itself works (the daemon holds the store open from
// before the mount) and hides the raw store from users.
func checkPaths(st, mp string) error {
	for _, p := range []struct{ what, path string }{{"store", st}, {"mountpoint", mp}} {
		fi, err := os.Stat(p.path)
		if err != nil {
			return fmt.Errorf("%s: %w", p.what, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s %s is not a directory", p.what, p.path)
		}
	}
	if strings.HasPrefix(mp, st+"/") {
		return fmt.Errorf("mountpoint %s is inside the store %s; choose a directory outside it (or the store directory itself)", mp, st)
	}
	return nil
}

// ID is the file system's FileSystemId.
func (d *Daemon) ID() string { return d.id.FileSystemId }

// Created reports whether this mount initialised the store.
func (d *Daemon) Created() bool { return d.created }

// MountPoint is the absolute mountpoint.
func (d *Daemon) MountPoint() string { return d.cfg.MountPoint }

// FS is the mounted file system (its counters, for tests and metrics).
func (d *Daemon) FS() *fusefs.FS { return d.fsys }

// Done is closed when the mount has gone away and the daemon cleaned up.
func (d *Daemon) Done() <-chan struct{} { return d.done }

// Stop unmounts and waits for the daemon to finish. If files are still
// open under the mount, it detaches the mount instead (MNT_DETACH): the
// name disappears at once, open files keep working, and the daemon ends
// when the last of them is closed.
func (d *Daemon) Stop() error {
	d.stopOnce.Do(func() {
		err := Unmount(d.cfg.MountPoint, false)
		if errors.Is(err, ErrBusy) {
			d.log.Warn("mount busy: detaching it; the daemon exits when the last open file is closed", "mountpoint", d.cfg.MountPoint)
			err = Unmount(d.cfg.MountPoint, true)
		}
		if err != nil && !errors.Is(err, ErrNotMounted) {
			d.stopErr = err
			return
		}
		<-d.done
	})
	return d.stopErr
}
