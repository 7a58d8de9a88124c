// Package exporter owns auto-export: it consumes the export journal in the
// catalog and makes every acknowledged write reach the repository
// (invariant 1; every "invariant N" in this package is in docs/invariants.md), never as a torn object (invariant 2), and never
// deletes an object unless the association's policy includes DELETED
// (invariant 5). It also exports single paths on request (export tasks,
// hsm archive) regardless of the policy.
//
// # Loop
//
// Run claims batches of journal entries with a lease (catalog.Claim), hands
// them to at most Config.Workers concurrent exports, extends the lease of an
// entry while its export runs, and ends every entry with exactly one of:
//
//   - Complete: exported, or nothing to do (outside every exporting
//     association, event not in the policy, path gone locally — a later
//     entry covers it). The catalog keeps the entry if a newer append
//     arrived meanwhile, so a file written during its upload goes out
//     again.
//   - Fail with a retry time: transient failures (the repository down,
//     throttled, the file changing under the upload) back off
//     exponentially from Config.RetryBase to Config.RetryMax; the entry
//     stays pending, so an outage of any length loses nothing and the
//     backlog stays visible (catalog Depth, OldestAge). A file open by a
//     writer the mount cannot see (passthrough) waits the same way,
//     without backoff and not counted as a failure (ErrWriterOpen,
//     Config.UnseenWriter): invariant 1 needs its entry pending and the
//     file dirty until that writer's close.
//   - Park: permanent failures (PathSizeTooLong, FileSizeTooLarge, a local
//     name S3 cannot hold, metadata over 2 KB): the entry stays in the
//     journal with its cause but is not retried until the path is written
//     again, and `hsm wait` does not wait for it (catalog.Park).
//
// A lost lease (another exporter took the entry after this one stalled)
// cancels the export in flight: only the claim holder may make an object
// visible.
//
// # Versions (invariant 2)
//
// A regular file's upload reads the content version from its state xattr
// (V) through the open descriptor it uploads from, after telling the mount
// (Config.VersionRead) so that the next write bumps the version again; the
// transfer engine refuses to complete if size or mtime moved; afterwards
// the state becomes hsm.Exported(V, current): clean only if nothing changed.
//
// # Renames
//
// A move is resolved from the file's identity, never from a name: each
// file's state says where its object is (store.State.Origin), and the
// exporter moves it from there to the file's current name (move.go).
package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// Config configures an Exporter. Store, Catalog, S3 and Engine are
// required.
type Config struct {
	Store   *store.Store
	Catalog catalog.Catalog
	S3      *s3x.Client
	Engine  *transfer.Engine
	// Owner names this exporter's claims in the catalog; it must be stable
	// across restarts of the same daemon (Run releases its old claims) and
	// unique among daemons sharing a catalog. Default "ferry".
	Owner string
	// Workers bounds the exports in flight (default 8).
	Workers int
	// Lease is how long a claim lasts without renewal (default 30s); it is
	// renewed every Lease/3 while the export runs.
	Lease time.Duration
	// RetryBase and RetryMax bound the exponential backoff of transient
	// failures (defaults 1s and 60s).
	RetryBase, RetryMax time.Duration
	// Poll is how often Run looks for ready entries when not notified
	// (default 1s): retries coming due and appends of other nodes.
	Poll time.Duration
	// WaitPoll is how often Wait counts what is still pending (default
	// 50ms).
	WaitPoll time.Duration
	// Version is ferry's version, for the user-agent metadata.
	Version string
	Logger  *slog.Logger
	// Progress, when set, is called as each upload reads the file (rel,
	// its store path; n, the bytes read so far). Tests change a file or
	// slow an upload down through it.
	Progress func(rel string, n int64)
	// Restore, when set, makes the released file rel local (the importer's
	// Restore: its data fetched from its object). A move calls it before it
	// writes a key that a renamed released file's data is still under
	// (move.go, rescue). It returns nil once the file is local, or when
	// its data can never be (the object is gone: the importer logs it).
	// Without it such a move waits for the other one, which a cycle of
	// renames (two released files swapped) never ends.
	Restore func(ctx context.Context, rel string) error
	// VersionRead, when set, is called with the device and inode of a
	// regular file just before an export reads its content version. The
	// mount clears the file's "bumped" bit there so that its next write
	// bumps the version again (store.BumpVersion's protocol); it must not
	// return while a write that saw the bit set is still in progress.
	VersionRead func(dev, ino uint64)
	// UnseenWriter, when set, reports whether a regular file (device and
	// inode) is open by a writer whose writes the mount cannot see (FUSE
	// passthrough: it bumps the version and journals at that writer's open
	// and release, not per write). While it is, an export of the file
	// neither starts nor marks it clean, and its entry is not completed: it
	// waits (ErrWriterOpen), retried every RetryBase without backoff and
	// without counting as a failure, pending as ever.
	UnseenWriter func(dev, ino uint64) bool
}

// Exporter consumes the export journal. Create it with New.
type Exporter struct {
	cfg   Config
	log   *slog.Logger
	wake  chan struct{}
	stats stats

	assocs atomic.Pointer[dra.Table]

	// inflight maps a path being uploaded to its bytes moved so far
	// (hsm action).
	inflight sync.Map // string → *atomic.Int64
	// busy holds the journal paths this process is exporting: a path
	// claimed again while its earlier export still runs (a lease that
	// expired under a stalled catalog) waits, so two uploads of one file
	// never race each other.
	busy sync.Map // string → struct{}
	// keys serialises writes and conditional deletes of one object key
	// (move.go).
	keys keyLocks
	rmu  sync.Mutex // moves of released files, one at a time (move.go, rescue)
}

// New returns an Exporter; call SetAssociations, then Run.
func New(cfg Config) (*Exporter, error) {
	if cfg.Store == nil || cfg.Catalog == nil || cfg.S3 == nil || cfg.Engine == nil {
		return nil, errors.New("exporter: Store, Catalog, S3 and Engine are required")
	}
	if cfg.Owner == "" {
		cfg.Owner = "ferry"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax < cfg.RetryBase {
		cfg.RetryMax = max(60*time.Second, cfg.RetryBase)
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.WaitPoll <= 0 {
		cfg.WaitPoll = 50 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{cfg: cfg, log: cfg.Logger, wake: make(chan struct{}, 1)}
	e.stats.init()
	return e, nil
}

// SetAssociations gives the exporter every association of the file system
// (call it again on every change). Only associations in AVAILABLE or
// UPDATING export; auto-export obeys each one's AutoExportPolicy. Entries
// under an association still CREATING or MISCONFIGURED wait (they are
// retried with backoff); entries under one DELETING or FAILED, or under
// none, are dropped and counted as skipped.
func (e *Exporter) SetAssociations(t *dra.Table) {
	was := make(map[string]bool)
	for _, a := range e.table().All() {
		was[a.ID()] = a.Serves()
	}
	e.assocs.Store(t)
	// An association that exports again (CREATING or MISCONFIGURED →
	// AVAILABLE): its entries that waited with a growing backoff go now,
	// so export resumes at once, not up to RetryMax later.
	for _, a := range t.All() {
		if !a.Serves() || was[a.ID()] {
			continue
		}
		prefix := keypath.ToCatalog(a.Dir)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := e.cfg.Catalog.Reschedule(ctx, prefix)
		cancel()
		if err != nil {
			e.log.Error("export entries not rescheduled; they resume after their backoff", "dra", a.ID(), "err", err)
		} else if n > 0 {
			e.log.Info("association exports again; waiting entries resume", "dra", a.ID(), "entries", n)
		}
	}
	e.Notify()
}

// assocFor returns the association holding rel and rel's path inside it.
func (e *Exporter) assocFor(rel string) (*dra.Assoc, string, bool) {
	return e.table().Holder(rel)
}

// table is the associations as last given (an empty table before).
func (e *Exporter) table() *dra.Table { return e.assocs.Load() }

// Notify wakes Run to claim at once (the mount calls it after an Append).
// It never blocks.
func (e *Exporter) Notify() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run exports journal entries until ctx ends. At start it returns the
// claims a previous run under the same Owner left (a restart). On return
// every export it started has ended; claims of exports cut short by ctx are
// released so that another exporter can take them at once.
func (e *Exporter) Run(ctx context.Context) error {
	if n, err := e.cfg.Catalog.ReleaseClaims(ctx, e.cfg.Owner); err != nil {
		return fmt.Errorf("exporter: release old claims: %w", err)
	} else if n > 0 {
		e.log.Info("export claims of a previous run released", "owner", e.cfg.Owner, "entries", n)
	}
	slots := make(chan struct{}, e.cfg.Workers)
	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		// Entries cut short stay claimed until their lease ends; give
		// them back now (best effort: the next start does it anyway).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		e.cfg.Catalog.ReleaseClaims(rctx, e.cfg.Owner)
	}()
	poll := time.NewTimer(0)
	defer poll.Stop()
	for {
		// Wait for a free worker, then take every other free one.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		n := 1
	more:
		for n < e.cfg.Workers {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		es, err := e.cfg.Catalog.Claim(ctx, e.cfg.Owner, n, e.cfg.Lease)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, catalog.ErrClosed) {
				return fmt.Errorf("exporter: %w", err)
			}
			e.log.Error("export journal claim failed", "err", err)
			es = nil
		}
		for range n - len(es) {
			<-slots
		}
		for _, je := range es {
			wg.Go(func() {
				defer func() { <-slots }()
				e.handle(ctx, je)
			})
		}
		if len(es) == n && err == nil {
			continue // more may be ready
		}
		poll.Reset(e.cfg.Poll)
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		case <-poll.C:
		}
	}
}

// ErrWriterOpen: a writer the mount cannot see (passthrough) has the file
// open, so its content may be changing unseen; the export waits for that
// writer's close (Config.UnseenWriter).
var ErrWriterOpen = errors.New("busy: a writer the daemon cannot see (passthrough) has the file open; it is exported after that writer closes")

// errDeferred: the entry must wait for another one in flight (a rename
// whose old path is still being uploaded).
var errDeferred = errors.New("waiting for the export in flight of the old name")

// errRenamePending: an upload to a key whose object a pending rename is
// still to move away (for example a released file renamed, and its old name
// written again) waits for that move, or the released file's data would be
// overwritten before it is copied.
var errRenamePending = fmt.Errorf("%w: the object under this name is still to be moved to the name it was renamed to", errDeferred)

// PermanentError is a failure that retrying cannot cure; its entry is
// parked (see package doc).
type PermanentError struct {
	Code string // FSx error code: PathSizeTooLong, FileSizeTooLarge, …
	Err  error
}

func (p *PermanentError) Error() string { return p.Code + ": " + p.Err.Error() }
func (p *PermanentError) Unwrap() error { return p.Err }

func permanent(code string, err error) error { return &PermanentError{Code: code, Err: err} }

// Error codes of failures that are not S3's own.
const (
	CodeFileSizeTooLarge = "FileSizeTooLarge"
	CodeMetadataTooLarge = "MetadataTooLarge"
	CodeFileChanged      = "FileChanged"
	CodeCorruptState     = "CorruptState"
	// CodeInvalidObjectName: the server refuses the key (a name it cannot
	// store, though within S3's 1,024 bytes).
	CodeInvalidObjectName = "InvalidObjectName"
	CodeNotReady          = "AssociationNotAvailable" // waiting: CREATING or MISCONFIGURED
	CodeUnknown           = "InternalError"
)

// MaxObjectSize is S3's largest object (5 TiB).
const MaxObjectSize = 5 << 40

// handle exports one claimed entry and settles it in the catalog.
func (e *Exporter) handle(ctx context.Context, je catalog.JournalEntry) {
	if _, dup := e.busy.LoadOrStore(je.Path, struct{}{}); dup {
		// Busy, not failed: no attempt counted (catalog Defer).
		e.cfg.Catalog.Defer(context.WithoutCancel(ctx), je, errDeferred.Error(), time.Now().Add(e.cfg.RetryBase))
		return
	}
	defer e.busy.Delete(je.Path)
	ectx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lost := make(chan struct{})
	stop := make(chan struct{})
	var lw sync.WaitGroup
	lw.Go(func() { e.keepLease(ectx, je, cancel, lost, stop) })
	e.stats.inflight.Add(1)
	skipped, err := e.exportEntry(ectx, je)
	e.stats.inflight.Add(-1)
	close(stop)
	lw.Wait()
	select {
	case <-lost:
		e.log.Warn("export lease lost; another exporter has the entry", "path", je.Path)
		return
	default:
	}
	if ctx.Err() != nil {
		return // shutting down: the claim is released by Run
	}
	cctx := context.WithoutCancel(ctx)
	switch {
	case err == nil:
		removed, cerr := e.cfg.Catalog.Complete(cctx, je)
		if cerr != nil {
			e.log.Error("export done but not recorded; it will run again", "path", je.Path, "err", cerr)
			return
		}
		e.stats.finish(skipped, je)
		e.log.Debug("export entry done", "path", je.Path, "kind", je.Kind, "old_path", je.OldPath,
			"seq", je.Seq, "first_seq", je.FirstSeq, "skipped", skipped, "removed", removed)
		if !removed {
			e.Notify() // written meanwhile: its entry is ready again now
		}
	default:
		var pe *PermanentError
		if errors.As(err, &pe) {
			e.stats.fail(pe.Code)
			e.stats.parked.Add(1)
			e.log.Error("export failed permanently; it is retried when the file changes", "path", je.Path, "code", pe.Code, "err", err)
			if perr := e.cfg.Catalog.Park(cctx, je, err.Error()); perr != nil {
				e.log.Error("park export entry", "path", je.Path, "err", perr)
			}
			return
		}
		// Busy files are not failures: their entries wait RetryBase and
		// their backoff does not grow (catalog Defer).
		busy := true
		switch {
		case errors.Is(err, errDeferred):
		case errors.Is(err, ErrWriterOpen):
			// The file is open for writing; its entry stays pending
			// (visible in Pending).
			e.stats.writerOpen.Add(1)
			e.log.Debug("export waits for a passthrough writer to close", "path", je.Path)
		case errors.Is(err, transfer.ErrChanged):
			// The file is being written; its close appends again.
			e.stats.fail(CodeFileChanged)
		default:
			busy = false
		}
		if busy {
			if ferr := e.cfg.Catalog.Defer(cctx, je, err.Error(), time.Now().Add(e.cfg.RetryBase)); ferr != nil {
				e.log.Error("record deferred export", "path", je.Path, "err", ferr)
			}
			return
		}
		delay := e.backoff(je.Attempts)
		e.stats.fail(codeOf(err))
		e.log.Warn("export failed; retrying", "path", je.Path, "attempts", je.Attempts+1, "retry_in", delay, "err", err)
		if ferr := e.cfg.Catalog.Fail(cctx, je, err.Error(), time.Now().Add(delay)); ferr != nil {
			e.log.Error("record export failure", "path", je.Path, "err", ferr)
		}
	}
}

// keepLease renews je's lease every Lease/3 until stop closes; if the
// claim is gone it closes lost and cancels the export.
func (e *Exporter) keepLease(ctx context.Context, je catalog.JournalEntry, cancel context.CancelCauseFunc, lost, stop chan struct{}) {
	t := time.NewTicker(e.cfg.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
		}
		held, err := e.cfg.Catalog.ExtendLease(ctx, e.cfg.Owner, []catalog.JournalEntry{je}, e.cfg.Lease)
		if err != nil {
			continue // the catalog is busy or closing; try again next tick
		}
		if held == 0 {
			close(lost)
			cancel(errors.New("export lease lost"))
			return
		}
	}
}

// backoff is the retry delay after attempts failed attempts: RetryBase
// doubled per attempt, capped at RetryMax, with ±20% jitter so that a
// backlog does not retry in lockstep after an outage.
func (e *Exporter) backoff(attempts int) time.Duration {
	d := e.cfg.RetryBase
	for range min(attempts, 30) {
		d *= 2
		if d >= e.cfg.RetryMax {
			d = e.cfg.RetryMax
			break
		}
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// codeOf names a failure for the failures-by-code counter.
func codeOf(err error) string {
	var pe *PermanentError
	if errors.As(err, &pe) {
		return pe.Code
	}
	if c := keypath.CodeOf(err); c != "" {
		return c
	}
	if c := s3x.CodeOf(err); c != "" {
		return c
	}
	if errors.Is(err, transfer.ErrChanged) {
		return CodeFileChanged
	}
	if errors.As(err, new(errNotReady)) {
		return CodeNotReady
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return "Timeout"
	}
	return CodeUnknown
}
