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
// The daemon is built by named start steps (steps.go), one per layer, with
// one stack of closers that a failed start and a stop both run, last
// first: nothing a failed start opened stays open, and the stop order is
// the start order reversed.
//
// Around the mount the daemon owns the control plane: the catalog
// (internal/catalog, opened before anything serves), the S3 client, the
// association worker (internal/associations: create/update/delete
// requests worked one at a time, repository checks, batch import, recovery
// at start), the control API on a Unix socket (control.go), the hsm
// operations (hsm.go) and the metrics (metrics.go). The control API is
// started before the mount, so requests can be queued while it comes up,
// and stopped after it. Registrations and the mount table are
// internal/mounts'.
//
// The export side (export.go): one exporter (internal/exporter) consumes the
// catalog's export journal from before the mount until after it, with one
// transfer engine; `ferry hsm wait` and `ferry hsm archive` are its control
// operations, and its counters and the journal's backlog are in /metrics
// (on the socket, and on --metrics-addr when given). Stopping never drops
// pending exports: the journal stays in the catalog and the next mount
// resumes it.
//
// Auto-import (autoimport.go): the importer's Applier applies the import
// hints of the catalog's durable queue; with --events-listen an
// events.Intake serves POST /events for S3 event notifications, queues
// their hints and wakes the applier. Their counters and the import lag are
// in /metrics, and describe shows FerryStatus.AutoImport.
//
// Status (status.go, cachescan.go): POST /status gathers, in one call,
// the nodes, each association's export backlog and auto-import state, the
// import queue, the tasks not ended and the store's cache use (from a walk
// of the store that runs in the background) for `ferry status`.
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

	"github.com/ferry-hpc/ferry/internal/associations"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/events"
	"github.com/ferry-hpc/ferry/internal/exporter"
	"github.com/ferry-hpc/ferry/internal/fusefs"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/mounts"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/tasks"
	"github.com/ferry-hpc/ferry/internal/transfer"
	"github.com/ferry-hpc/ferry/internal/writepath"
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
	// ListAhead is how many listings of subdirectories run in the
	// background after a first listing (importer.Config.ListAhead; 0:
	// none). ferry mount passes importer.DefaultListAhead unless told.
	ListAhead int
	// EventsTargetARN, when set, makes the association worker put a
	// bucket notification configuration for each auto-import association
	// that sends its events there (associations.Config.EventsTargetARN).
	EventsTargetARN string
	// ImportSweepInterval is the pause between two import sweeps of the
	// auto-import associations (importer.Sweeper; ferry mount
	// --import-sweep-interval); 0: no sweep.
	ImportSweepInterval time.Duration
	// Export tunes the exporter (zero fields take its defaults).
	Export ExportOptions
	// AutoReleaseAbove, when set (0.8–1), makes the task runner start an
	// AUTO_RELEASE_DATA task by itself when the store's file system is
	// fuller than this (tasks.Config.AutoReleaseAbove).
	AutoReleaseAbove float64
	Version          string // reported by describe-file-systems
	// SessionTTL is how long the node's session in the catalog lives
	// without a heartbeat; the heartbeat runs every third of it (ferry
	// mount --session-ttl; 0 = DefaultSessionTTL).
	SessionTTL time.Duration
	// StepHook, when set, is called after each start step with the step's
	// name (Daemon.steps); an error fails the start there as if the step
	// had failed, and what was started is undone. For tests of a failed
	// start; nil in a real daemon.
	StepHook func(step string) error
	// CacheScanAge is how old the last walk of the store may be before a
	// status starts another (ferry status, Cache; default
	// DefaultCacheScanAge, and never less than ten times the last walk's
	// duration).
	CacheScanAge time.Duration
	// WaitProgressEvery is how often an `hsm wait` stream reports what
	// is still pending (default 1s).
	WaitProgressEvery time.Duration
	// BootIDFile is where the current boot's random id is read (default
	// DefaultBootIDFile). Tests point it at a file of their own to
	// simulate a reboot.
	BootIDFile string
	// EventsListen, when set, serves S3 event notifications (POST
	// /events) on this TCP address (ParseEventsAddr: a port alone listens
	// on 127.0.0.1; an address beyond loopback needs EventsToken).
	EventsListen string
	// EventsToken, when set, must come with every event request as
	// "Authorization: Bearer TOKEN".
	EventsToken string
	// EventsSQS, when set, is the URL of an SQS queue of S3 event
	// notifications that the daemon long-polls (events.SQSPoller, with
	// the account, region and endpoint of S3, AWS_ENDPOINT_URL_SQS for
	// another endpoint); a message is deleted once its hints are queued.
	EventsSQS string
	// UID and GID own imported files whose objects have no owner (group)
	// headers (ferry mount --uid, --gid); nil: root's for a daemon that
	// may chown (CAP_CHOWN), else the daemon's own (resolveOwners).
	UID, GID *uint32

	owners posixmeta.Owners // resolved from UID, GID and CAP_CHOWN
}

// DefaultBootIDFile is where Linux gives the current boot's random id.
const DefaultBootIDFile = "/proc/sys/kernel/random/boot_id"

// Daemon is one running mount.
type Daemon struct {
	cfg  Config
	id   Identity
	node string // node id: session and claim owner (session.go)
	// leader: this node is the live node with the smallest id, which does
	// the association work; peers: other live nodes (session.go, lead).
	leader   atomic.Bool
	peers    atomic.Int32
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
	jnl      *writepath.CatalogJournal // the mount's export journal
	assoc    *associations.Worker
	sweeper  *importer.Sweeper // --import-sweep-interval; nil when off
	http     *http.Server
	metrics  *prometheus.Registry
	metricsL net.Listener // --metrics-addr
	tasks    *tasks.Runner
	logFile  string        // a --background daemon's log
	started  time.Time     // when the daemon registered
	scan     *cacheScanner // the store's cache use (status.go)

	applier    *importer.Applier                // applies queued import hints (autoimport.go)
	ai         *autoImport                      // what the applier reported
	intake     atomic.Pointer[events.Intake]    // --events-listen, --events-sqs (read by scrapes)
	sqs        atomic.Pointer[events.SQSPoller] // --events-sqs (read by scrapes)
	eventsAddr string                           // where the intake listens
	log        *slog.Logger

	marker runningMarkerState // see unclean.go

	// closers undo the start steps that ran, last first: a failed start
	// and a stop share them (steps.go).
	closers closers
	// unmounted is set once the kernel has ended the mount (serve saw
	// server.Wait return), so the mount's closer does not unmount again.
	unmounted atomic.Bool
	done      chan struct{}
	stopOnce  sync.Once
	stopErr   error
}

// Start opens and, on its first mount, initialises the store, mounts it
// and registers the daemon. It returns when the mount is serving. It runs
// the daemon's start steps in order (steps.go); if one fails, what the
// steps before it started is undone, last first, and nothing stays open.
func Start(cfg Config) (*Daemon, error) {
	cfg, err := cfg.resolve()
	if err != nil {
		return nil, err
	}
	// Modes arrive from the kernel with the caller's umask applied; the
	// daemon must not apply its own on top.
	unix.Umask(0)
	d := &Daemon{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}
	for _, s := range d.steps() {
		err := s.run()
		if err == nil && cfg.StepHook != nil {
			err = cfg.StepHook(s.name)
		}
		if err != nil {
			d.closers.closeAll(d.log)
			return nil, err
		}
	}
	go d.serve()
	return d, nil
}

// resolve checks cfg and fills its defaults: absolute paths, the catalog
// URL in canonical form, a logger, the runtime directory, the wait stream's
// period and the boot id file.
func (cfg Config) resolve() (Config, error) {
	if cfg.S3.Access != (s3x.Access{}) {
		return cfg, fmt.Errorf("--no-sign-request and --request-payer are set per association on a mount: give them to `ferry fsx create-data-repository-association`, not to `ferry mount`")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RuntimeDir == "" {
		cfg.RuntimeDir = mounts.RuntimeDir()
	}
	if cfg.WaitProgressEvery <= 0 {
		cfg.WaitProgressEvery = time.Second
	}
	if cfg.BootIDFile == "" {
		cfg.BootIDFile = DefaultBootIDFile
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if err := CheckSessionTTL(cfg.SessionTTL); err != nil {
		return cfg, err
	}
	var err error
	if cfg.Store, err = filepath.Abs(cfg.Store); err != nil {
		return cfg, err
	}
	if cfg.MountPoint, err = filepath.Abs(cfg.MountPoint); err != nil {
		return cfg, err
	}
	if err := checkPaths(cfg.Store, cfg.MountPoint); err != nil {
		return cfg, err
	}
	if cfg.Catalog, err = ParseCatalog(cfg.Catalog, cfg.Store); err != nil {
		return cfg, err
	}
	if cfg.owners, err = resolveOwners(cfg.UID, cfg.GID, store.MayChown()); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// serve waits for the mount to end, however it ends (ferry umount, Stop, a
// signal), and then undoes every start step, last first.
func (d *Daemon) serve() {
	d.server.Wait()
	d.unmounted.Store(true)
	d.closers.closeAll(d.log)
	d.log.Info("unmounted", "mountpoint", d.cfg.MountPoint)
	close(d.done)
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
		if err := d.unmount(); err != nil && !errors.Is(err, ErrNotMounted) {
			d.stopErr = err
			return
		}
		<-d.done
	})
	return d.stopErr
}

// unmount unmounts the daemon's mount, or detaches it if it is busy.
func (d *Daemon) unmount() error {
	err := Unmount(d.cfg.MountPoint, false)
	if errors.Is(err, ErrBusy) {
		d.log.Warn("mount busy: detaching it; the daemon exits when the last open file is closed", "mountpoint", d.cfg.MountPoint)
		err = Unmount(d.cfg.MountPoint, true)
	}
	return err
}
