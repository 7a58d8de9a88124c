package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// DefaultRecheckInterval is how often a MISCONFIGURED association checks
// its repository again (semantics §1: ferry recovers within a minute).
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

// associations answers the association requests of one file system and
// works them in the background.
//
// The catalog is the work queue: a request only records the association in
// CREATING, UPDATING or DELETING (with its token, in one transaction) and
// wakes the worker; the one worker goroutine takes the oldest association in
// such a state, does the work and moves it on. So requests are worked one at
// a time per file system, any number may be queued (at most 8 associations
// exist), none ever FAILs for being queued, and a daemon restarted after a
// crash finds the unfinished work where it was left (invariant 7).
type associations struct {
	fsID    string
	cat     catalog.Catalog
	st      *store.Store
	s3      *s3x.Client
	plane   dataPlane
	log     *slog.Logger
	recheck time.Duration
	probe   func() string // name suffix of write probes (tests)
	// invalidate tells the kernel that rel changed behind the mount (the
	// association's directory made or removed); nil before the mount.
	invalidate func(rel string)
	// listeners learn every association after each change, as the
	// importer does (the exporter's SetAssociations).
	listeners []func([]api.DataRepositoryAssociation)
	// availableCheck is the period of the cheap check of AVAILABLE
	// associations (0: DefaultAvailableCheckInterval; negative: never).
	availableCheck time.Duration
	// exportFailures returns the exporter's failed attempts by code (nil:
	// no exporter); a growing repository code triggers full checks.
	exportFailures func() map[string]int64

	createMu sync.Mutex    // overlap check + insert of creates
	kick     chan struct{} // wakes the worker (capacity 1)

	mu        sync.Mutex
	runningID string             // association the worker works on
	cancelRun context.CancelFunc // stops that work (a delete arrived)
	lastCheck map[string]time.Time
	lastFull  map[string]time.Time // full checks of AVAILABLE ones after export failures
	// lastFailures is the exporter's failure counts at the last look (the
	// worker's only).
	lastFailures map[string]int64
}

func newAssociations(fsID string, cat catalog.Catalog, st *store.Store, s3 *s3x.Client, plane dataPlane, log *slog.Logger, recheck time.Duration) *associations {
	if recheck <= 0 {
		recheck = DefaultRecheckInterval
	}
	return &associations{fsID: fsID, cat: cat, st: st, s3: s3, plane: plane, log: log, recheck: recheck,
		kick: make(chan struct{}, 1), lastCheck: map[string]time.Time{}, lastFull: map[string]time.Time{},
		lastFailures: map[string]int64{}, probe: probeSuffix}
}

func (m *associations) wake() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// cancel stops the worker's work on id, if that is what it does now.
func (m *associations) cancel(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runningID == id && m.cancelRun != nil {
		m.cancelRun()
	}
}

// publish gives the importer (and the listeners: the exporter) every
// association as it is now.
func (m *associations) publish(ctx context.Context) {
	all, err := m.cat.Associations(ctx)
	if err != nil {
		m.log.Error("read associations", "err", err)
		return
	}
	m.plane.SetAssociations(all)
	for _, f := range m.listeners {
		f(all)
	}
}

func (m *associations) checkFS(id string) error {
	if id != m.fsID {
		return api.Errorf(api.CodeFileSystemNotFound, "file system %s is not served by this daemon (it serves %s): check --file-system-id, or mount that file system first with `ferry mount --store DIR MOUNTPOINT`", id, m.fsID)
	}
	return nil
}

func notFound(id string, err error) error {
	if errors.Is(err, catalog.ErrNotFound) {
		return api.Errorf(api.CodeDataRepositoryAssociationNotFound, "association %s does not exist: check the AssociationId (describe-data-repository-associations lists them)", id)
	}
	return err
}

// Create records a new association in CREATING and returns it at once.
func (m *associations) Create(ctx context.Context, req api.CreateDataRepositoryAssociationRequest) (api.CreateDataRepositoryAssociationResponse, error) {
	var out api.CreateDataRepositoryAssociationResponse
	n, err := dra.NormalizeCreate(req)
	if err != nil {
		return out, err
	}
	if err := m.checkFS(n.FileSystemId); err != nil {
		return out, err
	}
	fp := dra.CreateFingerprint(n)
	replay := func(id string) (api.CreateDataRepositoryAssociationResponse, error) {
		a, err := m.cat.Association(ctx, id)
		if err != nil {
			return out, notFound(id, err)
		}
		return api.CreateDataRepositoryAssociationResponse{Association: &a}, nil
	}
	if id, ok, err := dra.CheckToken(ctx, m.cat, api.OpCreateAssociation, n.ClientRequestToken, fp); err != nil {
		return out, err
	} else if ok {
		return replay(id)
	}
	m.createMu.Lock()
	existing, err := m.cat.Associations(ctx)
	if err == nil {
		err = dra.CheckCreate(existing, n)
	}
	if err != nil {
		m.createMu.Unlock()
		return out, err
	}
	a := dra.NewAssociation(n, dra.NewAssociationID(), api.Now())
	if a.BatchImportMetaDataOnCreate {
		a.FerryStatus = &api.AssociationStatus{BatchImport: &api.BatchImportStatus{State: api.BatchImportPending}}
	}
	var tok *dra.TokenRecord
	if n.ClientRequestToken != "" {
		tok = &dra.TokenRecord{Operation: api.OpCreateAssociation, Token: n.ClientRequestToken, Fingerprint: fp, ResourceID: a.AssociationId}
	}
	_, created, err := m.cat.CreateAssociation(ctx, a, tok)
	m.createMu.Unlock()
	if err != nil {
		return out, err
	}
	if !created { // the same token won a race: answer as its replay
		id, _, err := dra.CheckToken(ctx, m.cat, api.OpCreateAssociation, n.ClientRequestToken, fp)
		if err != nil {
			return out, err
		}
		return replay(id)
	}
	m.log.Info("association created", "dra", a.AssociationId, "path", a.FileSystemPath, "repository", a.DataRepositoryPath)
	m.publish(ctx)
	m.wake()
	return api.CreateDataRepositoryAssociationResponse{Association: &a}, nil
}

// Describe answers a describe request from the catalog.
func (m *associations) Describe(ctx context.Context, req api.DescribeDataRepositoryAssociationsRequest) (api.DescribeDataRepositoryAssociationsResponse, error) {
	out := api.DescribeDataRepositoryAssociationsResponse{Associations: []api.DataRepositoryAssociation{}}
	q, err := dra.ParseDescribeAssociations(req)
	if err != nil {
		return out, err
	}
	items, cur, err := m.cat.DescribeAssociations(ctx, q)
	if err != nil {
		return out, err
	}
	if items != nil {
		out.Associations = items
	}
	if cur != nil {
		out.NextToken = q.NextToken(*cur)
	}
	return out, nil
}

// Update records the new policies and chunk size in UPDATING; the worker
// checks the repository again and moves it to AVAILABLE or MISCONFIGURED.
func (m *associations) Update(ctx context.Context, req api.UpdateDataRepositoryAssociationRequest) (api.UpdateDataRepositoryAssociationResponse, error) {
	var out api.UpdateDataRepositoryAssociationResponse
	if err := dra.ValidateAssociationID(req.AssociationId); err != nil {
		return out, err
	}
	if err := dra.ValidateToken(req.ClientRequestToken); err != nil {
		return out, err
	}
	if _, err := dra.NormalizeS3(req.S3); err != nil {
		return out, err
	}
	fp := dra.UpdateFingerprint(req)
	var tok *dra.TokenRecord
	if req.ClientRequestToken != "" {
		tok = &dra.TokenRecord{Operation: api.OpUpdateAssociation, Token: req.ClientRequestToken, Fingerprint: fp, ResourceID: req.AssociationId}
	}
	a, prev, updated, err := m.cat.UpdateAssociation(ctx, req.AssociationId, tok, func(a *api.DataRepositoryAssociation) error {
		if err := dra.CanUpdate(*a); err != nil {
			return err
		}
		na, err := dra.ApplyUpdate(*a, req)
		if err != nil {
			return err
		}
		na.Lifecycle = api.LifecycleUpdating
		na.FailureDetails = nil
		*a = na
		return nil
	})
	if err != nil {
		return out, notFound(req.AssociationId, err)
	}
	if !updated {
		if prev.Fingerprint != fp || prev.ResourceID != req.AssociationId {
			_, _, err := dra.CheckToken(ctx, m.cat, api.OpUpdateAssociation, req.ClientRequestToken, fp)
			if err == nil {
				err = api.Errorf(api.CodeIncompatibleParameterError, "ClientRequestToken %q was used for another request", req.ClientRequestToken)
			}
			return out, err
		}
		if a.AssociationId == "" {
			return out, notFound(req.AssociationId, catalog.ErrNotFound)
		}
		return api.UpdateDataRepositoryAssociationResponse{Association: &a}, nil
	}
	m.log.Info("association updating", "dra", a.AssociationId)
	m.cancel(a.AssociationId) // a re-check in progress works on the old policy
	m.publish(ctx)
	m.wake()
	return api.UpdateDataRepositoryAssociationResponse{Association: &a}, nil
}

// Delete moves the association to DELETING; the worker removes its files
// (DeleteDataInFileSystem) and then the association.
func (m *associations) Delete(ctx context.Context, req api.DeleteDataRepositoryAssociationRequest) (api.DeleteDataRepositoryAssociationResponse, error) {
	var out api.DeleteDataRepositoryAssociationResponse
	if err := dra.ValidateAssociationID(req.AssociationId); err != nil {
		return out, err
	}
	if err := dra.ValidateToken(req.ClientRequestToken); err != nil {
		return out, err
	}
	fp := dra.DeleteFingerprint(req)
	var tok *dra.TokenRecord
	if req.ClientRequestToken != "" {
		tok = &dra.TokenRecord{Operation: api.OpDeleteAssociation, Token: req.ClientRequestToken, Fingerprint: fp, ResourceID: req.AssociationId}
	}
	del := req.DeleteDataInFileSystem != nil && *req.DeleteDataInFileSystem
	a, prev, updated, err := m.cat.UpdateAssociation(ctx, req.AssociationId, tok, func(a *api.DataRepositoryAssociation) error {
		if a.Lifecycle == api.LifecycleDeleting {
			return nil // idempotent: the first delete's choice stands
		}
		if err := dra.CanDelete(*a); err != nil {
			return err
		}
		if err := dra.Transition(a.Lifecycle, api.LifecycleDeleting); err != nil {
			return api.BadRequestf("association %s is %s and cannot be deleted now", a.AssociationId, a.Lifecycle)
		}
		a.Lifecycle = api.LifecycleDeleting
		if a.FerryStatus == nil {
			a.FerryStatus = &api.AssociationStatus{}
		}
		a.FerryStatus.DeleteDataInFileSystem = &del
		return nil
	})
	if err != nil {
		return out, notFound(req.AssociationId, err)
	}
	if !updated && (prev.Fingerprint != fp || prev.ResourceID != req.AssociationId) {
		_, _, err := dra.CheckToken(ctx, m.cat, api.OpDeleteAssociation, req.ClientRequestToken, fp)
		if err == nil {
			err = api.Errorf(api.CodeIncompatibleParameterError, "ClientRequestToken %q was used for another request", req.ClientRequestToken)
		}
		return out, err
	}
	out = api.DeleteDataRepositoryAssociationResponse{AssociationId: req.AssociationId, Lifecycle: api.LifecycleDeleting, DeleteDataInFileSystem: del}
	if a.AssociationId != "" && a.FerryStatus != nil && a.FerryStatus.DeleteDataInFileSystem != nil {
		out.DeleteDataInFileSystem = *a.FerryStatus.DeleteDataInFileSystem
	}
	m.log.Info("association deleting", "dra", req.AssociationId, "delete_data", out.DeleteDataInFileSystem)
	m.cancel(req.AssociationId)
	m.publish(ctx)
	m.wake()
	return out, nil
}

// run is the worker: it owns all background work on associations and
// stops with ctx.
func (m *associations) run(ctx context.Context) {
	tick := time.NewTicker(m.recheck / 4)
	defer tick.Stop()
	for {
		m.work(ctx)
		select {
		case <-ctx.Done():
			return
		case <-m.kick:
		case <-tick.C:
		}
	}
}

// work does every pending request, oldest first, then the re-checks that
// are due.
func (m *associations) work(ctx context.Context) {
	for ctx.Err() == nil {
		all, err := m.cat.Associations(ctx)
		if err != nil {
			m.log.Error("read associations", "err", err)
			return
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

// recheckDue checks the repositories whose check is due: a MISCONFIGURED
// association every recheck interval (fully: it returns to AVAILABLE once
// the cause is gone); an AVAILABLE one cheaply every availableCheck, and
// fully at once (at most once per recheck interval) after the exporter
// failed with a code that says a repository is unusable (semantics §1:
// MISCONFIGURED pauses auto-import and auto-export until it recovers).
func (m *associations) recheckDue(ctx context.Context, all []api.DataRepositoryAssociation) {
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
			}
			if broken && now.Sub(m.lastFull[a.AssociationId]) >= m.recheck {
				due = true
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
func (m *associations) exportBroke() bool {
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
func (m *associations) process(ctx context.Context, a api.DataRepositoryAssociation, full bool) error {
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
func (m *associations) establish(ctx, jobCtx context.Context, a api.DataRepositoryAssociation, log *slog.Logger) error {
	from := a.Lifecycle
	rel := storeRel(a.FileSystemPath)
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
		log.Info("association available")
	}
	return m.settle(ctx, a.AssociationId, from, to, cerr, now)
}

// settle moves id from→to after a repository check that ended with cerr
// (its FailureDetails) at now.
func (m *associations) settle(ctx context.Context, id string, from, to api.DataRepositoryLifecycle, cerr error, now api.Time) error {
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
func (m *associations) verify(ctx, jobCtx context.Context, a api.DataRepositoryAssociation, full bool, log *slog.Logger) error {
	m.mu.Lock()
	m.lastCheck[a.AssociationId] = time.Now()
	m.mu.Unlock()
	probe := m.probe
	if !full {
		probe = nil // the listing only
	}
	cerr := checkRepository(jobCtx, m.s3, a, probe)
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
func (m *associations) batchImport(ctx, jobCtx context.Context, a api.DataRepositoryAssociation, log *slog.Logger) error {
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
	res, err := m.plane.ImportAll(jobCtx, a, func(s api.BatchImportStatus) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < time.Second {
			return
		}
		last = time.Now()
		s.State = api.BatchImportRunning
		save(s)
	})
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

// remove finishes a delete: with DeleteDataInFileSystem the association's
// files in the store go (FSx deletes them), without it they stay as
// ordinary files; the listed-directory records go either way, then the
// association.
func (m *associations) remove(ctx context.Context, a api.DataRepositoryAssociation, log *slog.Logger) error {
	rel := storeRel(a.FileSystemPath)
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
	m.publish(ctx)
	return nil
}

// changed tells the mount that rel changed behind it.
func (m *associations) changed(rel string) {
	if m.invalidate != nil && rel != "." {
		m.invalidate(rel)
	}
}

// move changes id's lifecycle from→to (and whatever fn sets) if it is still
// in from; otherwise errMoved.
func (m *associations) move(ctx context.Context, id string, from, to api.DataRepositoryLifecycle, fn func(*api.DataRepositoryAssociation)) (api.DataRepositoryAssociation, error) {
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
		m.publish(ctx)
	}
	return a, err
}

// storeRel maps a FileSystemPath to its store-relative directory
// ("/ExtData" → "ExtData", "/" → ".").
func storeRel(p string) string {
	p = strings.Trim(p, "/")
	if p == "" {
		return "."
	}
	return p
}

// removeTree removes rel and everything below it from the store (without
// following symlinks: the store refuses to).
func removeTree(ctx context.Context, st *store.Store, rel string) error {
	if rel != "." {
		fi, err := st.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode&unix.S_IFMT != unix.S_IFDIR {
			return st.Unlink(rel)
		}
	}
	if err := removeChildren(ctx, st, rel); err != nil {
		return err
	}
	if rel == "." {
		return nil
	}
	err := st.Rmdir(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func removeChildren(ctx context.Context, st *store.Store, dir string) error {
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d, err := st.Readdir(dir)
		if err != nil {
			return err
		}
		ents, err := d.Next(256)
		d.Close()
		if len(ents) == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		for _, e := range ents {
			child := e.Name
			if dir != "." {
				child = dir + "/" + e.Name
			}
			if err := removeTree(ctx, st, child); err != nil {
				return err
			}
		}
	}
}
