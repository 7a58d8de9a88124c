// Package associations owns the data repository associations of one file
// system: it answers the control API's create, describe, update and delete
// requests, and one worker goroutine (Worker.Run) does what they ask in the
// background — the association's directory in the store, repository checks,
// batch import, deletes — and re-checks repositories while the daemon runs.
// The rules (validation, overlaps, limits, lifecycles, tokens) are
// internal/dra's; this package applies them to the catalog, the store and
// S3. The daemon wires it like tasks.Runner: New with a Config, Run until
// the daemon stops.
//
// The catalog is the work queue: a request only records the association in
// CREATING, UPDATING or DELETING (with its token, in one transaction) and
// wakes the worker; the one worker goroutine takes the oldest association in
// such a state, does the work and moves it on. So requests are worked one at
// a time per file system, any number may be queued (at most 8 associations
// exist), none ever FAILs for being queued, and a daemon restarted after a
// crash finds the unfinished work where it was left: the catalog, not the
// process, holds it.
package associations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// DefaultRecheckInterval is how often a MISCONFIGURED association checks
// its repository again: a cause that goes away (a bucket created, a
// permission granted) is noticed within a minute.
const DefaultRecheckInterval = 20 * time.Second

// DefaultAvailableCheckInterval is how often an AVAILABLE association's
// repository gets a cheap check (one ListObjectsV2 of at most one key), so
// that a bucket deleted or a permission withdrawn is noticed even while
// nothing is imported or exported.
const DefaultAvailableCheckInterval = 5 * time.Minute

// repositoryCodes are the failure codes of exports that say the repository
// cannot be used at all (rather than one file failing, or the endpoint
// being down for a while): after one, every AVAILABLE association gets the
// full repository check at once, which turns the broken ones MISCONFIGURED.
var repositoryCodes = []string{
	s3x.CodeNoSuchBucket, s3x.CodeAccessDenied, "Forbidden", "AllAccessDisabled",
	s3x.CodeBadCredentials, "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", s3x.CodeNoCredentials,
}

// Importer is what the worker asks of the importer (importer.Importer):
// every association after each change, and the batch import of one.
type Importer interface {
	SetAssociations(t *dra.Table)
	ImportAll(ctx context.Context, a api.DataRepositoryAssociation, progress func(importer.ImportCounts)) (importer.ImportCounts, error)
}

// Config wires a Worker. FileSystemId, Catalog, Store and Importer are
// required; without S3 every repository check fails (MISCONFIGURED).
type Config struct {
	FileSystemId string
	Catalog      catalog.Catalog
	Store        *store.Store
	S3           *s3x.Client
	Importer     Importer
	Logger       *slog.Logger
	// RecheckInterval is how often a MISCONFIGURED association checks its
	// repository again (default DefaultRecheckInterval); the worker looks
	// for due checks four times per interval.
	RecheckInterval time.Duration
	// AvailableCheckInterval is the period of the cheap check of AVAILABLE
	// associations (0: DefaultAvailableCheckInterval; negative: never).
	AvailableCheckInterval time.Duration
	// ExportFailures returns the exporter's failed attempts by code (nil:
	// no exporter); a growing repository code triggers full checks.
	ExportFailures func() map[string]int64
	// Invalidate tells the kernel that rel changed behind the mount (the
	// association's directory made or removed); it must do nothing before
	// the mount exists. Nil: no mount.
	Invalidate func(rel string)
	// Listeners learn every association after each change, as the
	// importer does (the exporter's and the mount journal's
	// SetAssociations).
	Listeners []func(*dra.Table)
	// EventsTargetARN, when set (ParseTargetARN), is where the bucket
	// notification configuration of each auto-import association sends
	// its events (notify.go); "" leaves bucket notifications alone.
	EventsTargetARN string
	// Leader reports whether this node does the association work (the
	// requests and the repository checks) of a file system served by
	// several nodes: one at a time does it. Nil: always (one node).
	// Other nodes only follow the catalog: they publish what changed.
	Leader func() bool
	// Settle is how long the leader waits before it turns an association
	// AVAILABLE (from CREATING or UPDATING), so that every other node has
	// published it by then — a node follows the catalog every
	// RecheckInterval/4 — and journals the writes it serves under it.
	// Nil or 0: no wait (one node).
	Settle func() time.Duration
}

// Worker answers the association requests of one file system and works
// them in the background. Create it with New, then call Run.
type Worker struct {
	fsID    string
	cat     catalog.Catalog
	st      *store.Store
	s3      *s3x.Client
	imp     Importer
	log     *slog.Logger
	recheck time.Duration
	probe   func() string // name suffix of write probes
	// The Config's hooks (see there).
	invalidate     func(rel string)
	listeners      []func(*dra.Table)
	availableCheck time.Duration
	exportFailures func() map[string]int64
	targetARN      string
	leader         func() bool
	settleWait     func() time.Duration

	createMu sync.Mutex // overlap check + insert of creates
	// pub is held (write) from a change of an association in the catalog
	// to its Publish, and (read) by Describe: a describe never shows a
	// state (AVAILABLE, a new policy) that the importer, the exporter and
	// the journal have not been given yet, so an `hsm archive` right after
	// describe shows AVAILABLE finds the association serving.
	pub  sync.RWMutex
	kick chan struct{} // wakes the worker (capacity 1)

	mu        sync.Mutex
	runningID string             // association the worker works on
	cancelRun context.CancelFunc // stops that work (a delete arrived)
	lastCheck map[string]time.Time
	lastFull  map[string]time.Time // full checks of AVAILABLE ones after export failures
	// lastFailures is the exporter's failure counts at the last look (the
	// worker's only).
	lastFailures map[string]int64
	// published is what the last Publish gave out (follow compares).
	published []api.DataRepositoryAssociation
}

// New returns the worker of cfg's file system; nothing runs before Run.
func New(cfg Config) *Worker {
	recheck := cfg.RecheckInterval
	if recheck <= 0 {
		recheck = DefaultRecheckInterval
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Worker{fsID: cfg.FileSystemId, cat: cfg.Catalog, st: cfg.Store, s3: cfg.S3, imp: cfg.Importer, log: log,
		recheck: recheck, probe: probeSuffix, invalidate: cfg.Invalidate, listeners: cfg.Listeners,
		availableCheck: cfg.AvailableCheckInterval, exportFailures: cfg.ExportFailures, targetARN: cfg.EventsTargetARN,
		leader: cfg.Leader, settleWait: cfg.Settle,
		kick: make(chan struct{}, 1), lastCheck: map[string]time.Time{}, lastFull: map[string]time.Time{},
		lastFailures: map[string]int64{}}
}

func (m *Worker) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// cancel stops the worker's work on id, if that is what it does now.
func (m *Worker) cancel(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runningID == id && m.cancelRun != nil {
		m.cancelRun()
	}
}

// Publish gives the importer and the listeners one table of every
// association as it is now (dra.Table: an immutable snapshot, the same for
// all of them). The daemon calls it once before anything uses them (the
// mount's journal, the exporter); the worker calls it after every change.
func (m *Worker) Publish(ctx context.Context) {
	all, err := m.cat.Associations(ctx)
	if err != nil {
		m.log.Error("read associations", "err", err)
		return
	}
	m.publish(all)
}

// publish is Publish of all, as just read from the catalog.
func (m *Worker) publish(all []api.DataRepositoryAssociation) {
	m.mu.Lock()
	m.published = all
	m.mu.Unlock()
	t := dra.NewTable(all, func(a api.DataRepositoryAssociation, err error) {
		m.log.Error("association ignored: its paths do not parse", "dra", a.AssociationId, "err", err)
	})
	m.imp.SetAssociations(t)
	for _, f := range m.listeners {
		f(t)
	}
}

// Run is the worker: it resumes the work a stopped or crashed daemon left
// (associations CREATING, UPDATING or DELETING), then works each request as
// it arrives and the repository checks as they fall due, until ctx ends.
// It returns nil then: work cut short stays in the catalog for the next
// Run.
func (m *Worker) Run(ctx context.Context) error {
	tick := time.NewTicker(m.recheck / 4)
	defer tick.Stop()
	for {
		m.work(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-m.kick:
		case <-tick.C:
		}
	}
}

// work does every pending request, oldest first, then the re-checks that
// are due.
func (m *Worker) work(ctx context.Context) {
	for ctx.Err() == nil {
		all, err := m.cat.Associations(ctx)
		if err != nil {
			m.log.Error("read associations", "err", err)
			return
		}
		m.follow(all)
		if m.leader != nil && !m.leader() {
			return // another node does the work
		}
		var next *api.DataRepositoryAssociation
		for i := range all {
			switch all[i].Lifecycle {
			case api.LifecycleCreating, api.LifecycleUpdating, api.LifecycleDeleting:
				if next == nil {
					next = &all[i]
				}
			}
		}
		if next == nil {
			m.recheckDue(ctx, all)
			return
		}
		if err := m.process(ctx, *next, true); err != nil {
			if ctx.Err() == nil {
				m.log.Error("association work failed; retrying later", "dra", next.AssociationId, "err", err)
			}
			return
		}
	}
}

// follow publishes all when it differs from what was published last:
// another node changed an association (with several nodes, only the
// leader's worker makes changes; every node follows them here, within a
// tick of Run).
func (m *Worker) follow(all []api.DataRepositoryAssociation) {
	m.mu.Lock()
	same := reflect.DeepEqual(all, m.published)
	m.mu.Unlock()
	if same {
		return
	}
	m.pub.Lock()
	defer m.pub.Unlock()
	m.publish(all)
}

// recheckDue checks the repositories whose check is due: a MISCONFIGURED
// association every recheck interval (fully: it returns to AVAILABLE once
// the cause is gone); an AVAILABLE one cheaply every availableCheck, and
// fully at once (at most once per recheck interval) after the exporter
// failed with a code that says a repository is unusable (MISCONFIGURED
// pauses auto-import and auto-export until it recovers). With
// --events-target-arn an AVAILABLE auto-import association also gets the
// cheap check when the worker first sees it (a daemon just started): its
// bucket notification is put if an earlier daemon did not.
func (m *Worker) recheckDue(ctx context.Context, all []api.DataRepositoryAssociation) {
	broken := m.exportBroke()
	every := m.availableCheck
	if every == 0 {
		every = DefaultAvailableCheckInterval
	}
	for _, a := range all {
		if ctx.Err() != nil {
			return
		}
		due, full := false, true
		now := time.Now()
		m.mu.Lock()
		last, seen := m.lastCheck[a.AssociationId]
		switch a.Lifecycle {
		case api.LifecycleMisconfigured:
			due = now.Sub(last) >= m.recheck
		case api.LifecycleAvailable:
			if !seen { // just created or just started: its check is recent enough
				m.lastCheck[a.AssociationId] = now
				last = now
				// ...except that of its bucket notification, which an
				// earlier daemon may not have put.
				due, full = m.targetARN != "" && autoImports(a), false
			}
			if broken && now.Sub(m.lastFull[a.AssociationId]) >= m.recheck {
				due, full = true, true
				m.lastFull[a.AssociationId] = now
			} else if every > 0 && now.Sub(last) >= every {
				due, full = true, false
			}
		}
		m.mu.Unlock()
		if due {
			if err := m.process(ctx, a, full); err != nil && ctx.Err() == nil {
				m.log.Error("re-check failed", "dra", a.AssociationId, "err", err)
			}
		}
	}
}

// exportBroke reports whether the exporter failed with a repository code
// since the last call.
func (m *Worker) exportBroke() bool {
	if m.exportFailures == nil {
		return false
	}
	cur := m.exportFailures()
	broke := false
	for _, c := range repositoryCodes {
		if cur[c] > m.lastFailures[c] {
			broke = true
		}
	}
	m.lastFailures = cur
	return broke
}

// errMoved: the association changed state under the worker (a delete or an
// update arrived); the worker looks again.
var errMoved = errors.New("association changed meanwhile")

// process does the work of a's current state (for an AVAILABLE one, the
// re-check: full or only a listing). An error means the work must be tried
// again later (the catalog failed); outcomes for the user (a repository
// that cannot be used) are states, not errors.
func (m *Worker) process(ctx context.Context, a api.DataRepositoryAssociation, full bool) error {
	jobCtx, cancel := context.WithCancel(ctx)
	m.mu.Lock()
	m.runningID, m.cancelRun = a.AssociationId, cancel
	m.mu.Unlock()
	defer func() {
		cancel()
		m.mu.Lock()
		m.runningID, m.cancelRun = "", nil
		m.mu.Unlock()
	}()
	log := m.log.With("dra", a.AssociationId, "path", a.FileSystemPath)
	var err error
	switch a.Lifecycle {
	case api.LifecycleDeleting:
		err = m.remove(jobCtx, a, log)
	case api.LifecycleCreating, api.LifecycleUpdating, api.LifecycleMisconfigured:
		err = m.establish(ctx, jobCtx, a, log)
	case api.LifecycleAvailable:
		err = m.verify(ctx, jobCtx, a, full, log)
	}
	if errors.Is(err, errMoved) || (err != nil && jobCtx.Err() != nil && ctx.Err() == nil) {
		return nil // superseded: look again
	}
	return err
}

// establish brings a CREATING, UPDATING or MISCONFIGURED association to
// AVAILABLE: its directory, the repository checks, a pending batch import.
// Any failure of the repository leaves it MISCONFIGURED with the reason.
func (m *Worker) establish(ctx, jobCtx context.Context, a api.DataRepositoryAssociation, log *slog.Logger) error {
	from := a.Lifecycle
	rel := keypath.FromFSx(a.FileSystemPath)
	if from == api.LifecycleCreating {
		if err := m.st.MkdirAll(rel, 0o755); err != nil {
			msg := fmt.Sprintf("cannot create the directory %s in the store: %v", a.FileSystemPath, err)
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EEXIST) {
				msg = fmt.Sprintf("FileSystemPath %s is taken by a file that is not a directory: delete this association, move the file away and create it again", a.FileSystemPath)
			}
			log.Error("association failed", "err", err)
			_, err := m.move(ctx, a.AssociationId, from, api.LifecycleFailed, func(x *api.DataRepositoryAssociation) {
				x.FailureDetails = &api.FailureDetails{Message: dra.NormalizeFailureMessage(msg)}
			})
			return err
		}
		m.changed(rel)
	}
	m.mu.Lock()
	m.lastCheck[a.AssociationId] = time.Now()
	m.mu.Unlock()
	cerr := checkRepository(jobCtx, m.s3, a, m.probe)
	if cerr == nil {
		// Before the batch import: no change made during it is missed.
		cerr = m.notify(jobCtx, a, log)
	}
	if jobCtx.Err() != nil {
		return jobCtx.Err()
	}
	now := api.Now()
	if cerr == nil && needsBatchImport(a) {
		// Serve lazily meanwhile? No: the association stays in its state
		// until its metadata is in, as FSx keeps it CREATING.
		cerr = m.batchImport(ctx, jobCtx, a, log)
		if jobCtx.Err() != nil {
			return jobCtx.Err()
		}
	}
	to := api.LifecycleAvailable
	if cerr != nil {
		to = api.LifecycleMisconfigured
		if from != to {
			log.Warn("repository cannot be used", "err", cerr)
		}
	} else if from != to {
		if err := m.waitFollowers(jobCtx, from); err != nil {
			return err
		}
		log.Info("association available")
	}
	return m.settle(ctx, a.AssociationId, from, to, cerr, now)
}

// waitFollowers waits Config.Settle before an association moves from
// CREATING or UPDATING to AVAILABLE: the other nodes publish it meanwhile.
func (m *Worker) waitFollowers(ctx context.Context, from api.DataRepositoryLifecycle) error {
	if m.settleWait == nil || (from != api.LifecycleCreating && from != api.LifecycleUpdating) {
		return nil
	}
	d := m.settleWait()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// settle moves id from→to after a repository check that ended with cerr
// (its FailureDetails) at now.
func (m *Worker) settle(ctx context.Context, id string, from, to api.DataRepositoryLifecycle, cerr error, now api.Time) error {
	_, err := m.move(ctx, id, from, to, func(x *api.DataRepositoryAssociation) {
		x.FailureDetails = nil
		if cerr != nil {
			x.FailureDetails = &api.FailureDetails{Message: dra.NormalizeFailureMessage(cerr.Error())}
		}
		if x.FerryStatus == nil {
			x.FerryStatus = &api.AssociationStatus{}
		}
		x.FerryStatus.LastCheckTime = &now
	})
	return err
}

// verify re-checks the repository of an AVAILABLE association: fully (the
// checks of create) or cheaply (one ListObjectsV2 of at most one key). A
// failure makes it MISCONFIGURED with the reason; from there it is
// re-checked every recheck interval like any MISCONFIGURED association.
func (m *Worker) verify(ctx, jobCtx context.Context, a api.DataRepositoryAssociation, full bool, log *slog.Logger) error {
	m.mu.Lock()
	m.lastCheck[a.AssociationId] = time.Now()
	m.mu.Unlock()
	probe := m.probe
	if !full {
		probe = nil // the listing only
	}
	cerr := checkRepository(jobCtx, m.s3, a, probe)
	if cerr == nil && autoImports(a) {
		cerr = m.notify(jobCtx, a, log) // put again if it went missing
	}
	if jobCtx.Err() != nil {
		return jobCtx.Err()
	}
	now := api.Now()
	to := api.LifecycleAvailable
	if cerr != nil {
		to = api.LifecycleMisconfigured
		log.Warn("repository can no longer be used; auto-import and auto-export pause until it can", "err", cerr)
	}
	return m.settle(ctx, a.AssociationId, api.LifecycleAvailable, to, cerr, now)
}

func needsBatchImport(a api.DataRepositoryAssociation) bool {
	return a.BatchImportMetaDataOnCreate && a.FerryStatus != nil && a.FerryStatus.BatchImport != nil &&
		a.FerryStatus.BatchImport.State != api.BatchImportSucceeded
}

// batchImport runs the importer over the whole prefix, saving its progress
// in FerryStatus.BatchImport about once a second.
func (m *Worker) batchImport(ctx, jobCtx context.Context, a api.DataRepositoryAssociation, log *slog.Logger) error {
	start := api.Now()
	save := func(s api.BatchImportStatus) {
		_, err := m.move(ctx, a.AssociationId, a.Lifecycle, a.Lifecycle, func(x *api.DataRepositoryAssociation) {
			if x.FerryStatus == nil {
				x.FerryStatus = &api.AssociationStatus{}
			}
			s.StartTime = &start
			x.FerryStatus.BatchImport = &s
		})
		if err != nil && !errors.Is(err, errMoved) {
			log.Warn("save batch import progress", "err", err)
		}
	}
	save(api.BatchImportStatus{State: api.BatchImportRunning})
	log.Info("batch import started")
	var mu sync.Mutex
	last := time.Now()
	counts, err := m.imp.ImportAll(jobCtx, a, func(c importer.ImportCounts) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		s := batchStatus(c)
		s.State = api.BatchImportRunning
		save(s)
	})
	res := batchStatus(counts)
	mu.Lock() // no progress save after the final one
	defer mu.Unlock()
	if jobCtx.Err() != nil {
		return jobCtx.Err()
	}
	end := api.Now()
	res.EndTime = &end
	res.State = api.BatchImportSucceeded
	if err != nil {
		res.State = api.BatchImportFailed
		res.Message = dra.NormalizeFailureMessage(err.Error())
		err = fmt.Errorf("batch import of %s: %w", a.DataRepositoryPath, err)
	}
	save(res)
	log.Info("batch import ended", "state", res.State, "objects", res.Objects, "files", res.Files, "dirs", res.Directories, "refused", res.Refused)
	return err
}

// batchStatus is the FerryStatus.BatchImport form of the importer's counts.
func batchStatus(c importer.ImportCounts) api.BatchImportStatus {
	return api.BatchImportStatus{Objects: c.Objects, Files: c.Files, Directories: c.Dirs, Symlinks: c.Symlinks, Refused: c.Refused, RefusedByCode: c.RefusedByCode}
}

// remove finishes a delete: with DeleteDataInFileSystem the association's
// files in the store go (FSx deletes them), without it they stay as
// ordinary files; the listed-directory records go either way, then the
// association.
func (m *Worker) remove(ctx context.Context, a api.DataRepositoryAssociation, log *slog.Logger) error {
	rel := keypath.FromFSx(a.FileSystemPath)
	m.dropNotification(ctx, a, log)
	if a.FerryStatus != nil && a.FerryStatus.DeleteDataInFileSystem != nil && *a.FerryStatus.DeleteDataInFileSystem {
		err := removeTree(ctx, m.st, rel)
		m.changed(rel)
		if err != nil {
			return fmt.Errorf("delete the files under %s: %w", a.FileSystemPath, err)
		}
	}
	prefix := rel
	if prefix == "." {
		prefix = ""
	}
	if _, err := m.cat.ForgetListed(ctx, prefix); err != nil {
		return err
	}
	if err := m.cat.DeleteAssociation(ctx, a.AssociationId); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	m.mu.Lock()
	delete(m.lastCheck, a.AssociationId)
	delete(m.lastFull, a.AssociationId)
	m.mu.Unlock()
	log.Info("association deleted")
	m.Publish(ctx)
	return nil
}

// changed tells the mount that rel changed behind it.
func (m *Worker) changed(rel string) {
	if m.invalidate != nil && rel != "." {
		m.invalidate(rel)
	}
}

// move changes id's lifecycle from→to (and whatever fn sets) if it is still
// in from; otherwise errMoved.
func (m *Worker) move(ctx context.Context, id string, from, to api.DataRepositoryLifecycle, fn func(*api.DataRepositoryAssociation)) (api.DataRepositoryAssociation, error) {
	m.pub.Lock()
	defer m.pub.Unlock()
	a, _, _, err := m.cat.UpdateAssociation(ctx, id, nil, func(x *api.DataRepositoryAssociation) error {
		if x.Lifecycle != from {
			return errMoved
		}
		if err := dra.Transition(from, to); err != nil {
			return err
		}
		x.Lifecycle = to
		fn(x)
		return nil
	})
	if errors.Is(err, catalog.ErrNotFound) {
		return a, errMoved
	}
	if err == nil && from != to {
		m.Publish(ctx)
	}
	return a, err
}
