// Package tasks owns data repository tasks (docs/semantics.md §5): it runs the
// tasks the catalog holds — EXPORT_TO_REPOSITORY, IMPORT_METADATA_FROM_REPOSITORY,
// RELEASE_DATA_FROM_FILESYSTEM and AUTO_RELEASE_DATA — through their
// lifecycle, keeps their counters current and writes their completion reports.
//
// The catalog is the queue. The daemon validates and creates a task
// (dra.NormalizeCreateTask, catalog.CreateTask with its token, in PENDING)
// and calls Runner.Submit; Run picks PENDING tasks in creation order and runs
// them one at a time per file system (files inside a task run in parallel,
// at most Config.Workers at once). Cancel moves a task to CANCELING; the
// runner stops feeding it new files, lets the files in flight finish (nothing
// is undone) and ends it CANCELED.
//
// # Restart (invariant 7, docs/invariants.md)
//
// A task found EXECUTING when Run starts was cut short by a crash or a stop.
// It is run again from the start: every task type is idempotent (an exported
// file is clean and skipped, a released file is skipped, an import finds
// the entries it made or changed agreeing with the repository). SucceededCount is kept (that work is done and is not redone,
// so it would not be counted again); FailedCount is reset and TotalCount set
// back to SucceededCount, because the failed files are tried again and
// counted anew; the failure list restarts empty. A task found CANCELING ends
// CANCELED (its report, if enabled, holds the failures recorded so far).
//
// # Counting
//
// TotalCount counts the files a task acted on, not the files it looked at:
// an export task counts files, directories and symlinks whose content or
// metadata the repository lacks (clean archived files and released stubs are
// skipped and not counted); a release task counts the files that qualified
// for release; an import task counts the objects it imported (new,
// changed, deleted, or kept as a conflict) or refused, and the files it
// could not change.
// SucceededCount + FailedCount = TotalCount once the task ends. Counters are
// written to the catalog at most once per Config.FlushInterval, not per file.
package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
	"github.com/ferry-hpc/ferry/internal/transfer"
)

// Exporter exports one store path now, whatever the association's policy
// (exporter.Exporter). exported is false when there was nothing to export.
type Exporter interface {
	Export(ctx context.Context, rel string) (exported bool, err error)
}

// Importer imports an association's metadata and releases files
// (importer.Importer).
type Importer interface {
	ImportAll(ctx context.Context, a api.DataRepositoryAssociation, progress func(importer.ImportCounts)) (importer.ImportCounts, error)
	Release(ctx context.Context, rel string) error
}

// Applier makes the namespace agree with the repository for one key
// (importer.Applier, made with ApplyConfig.AllEvents): the one code path
// of events, the sweep and import tasks for changed and deleted objects.
type Applier interface {
	Apply(ctx context.Context, h catalog.ImportHint) (importer.HintOutcome, error)
}

// Defaults.
const (
	DefaultWorkers       = 8
	DefaultFlushInterval = time.Second
	// DefaultWatermark is the store usage (used/total of its file system)
	// AUTO_RELEASE_DATA releases down to: below 80% used, a store keeps
	// room for a burst of writes and of hydration before it fills.
	DefaultWatermark = 0.80
	// DefaultChangeBackoff is Config.ChangeBackoff's default.
	DefaultChangeBackoff = 100 * time.Millisecond
	// DefaultBusyWait is Config.BusyWait's default.
	DefaultBusyWait = 30 * time.Second
)

// Config wires a Runner. Catalog, Store, Exporter, Importer and Applier
// are required; S3 for import tasks; Engine (or S3) for reports written
// to S3.
type Config struct {
	Catalog  catalog.Catalog
	Store    *store.Store
	Exporter Exporter
	Importer Importer
	Applier  Applier          // import tasks: changed and deleted objects
	S3       *s3x.Client      // report uploads, import path checks, directory checks of export tasks
	Engine   *transfer.Engine // report uploads
	Logger   *slog.Logger
	// Workers bounds the files of a task worked on at once (default 8).
	Workers int
	// FlushInterval is how often counters reach the catalog while a task
	// runs (default 1s); the runner also notices a cancel from another
	// process then.
	FlushInterval time.Duration
	// Watermark is the fraction of the store's file system AUTO_RELEASE_DATA
	// releases down to (default DefaultWatermark).
	Watermark float64
	// AutoReleaseAbove, when set (between Watermark and 1), makes Run
	// create an AUTO_RELEASE_DATA task by itself whenever the store's usage
	// is above it and no such task is queued or running (FSx File Cache's
	// automatic release). 0 = off: AUTO_RELEASE_DATA runs only when asked.
	AutoReleaseAbove float64
	// Usage returns the used and total bytes of the store's file system
	// (default: statfs of the store, total = used + available as df counts
	// it, so Watermark compares with df's Use%).
	Usage func() (used, total uint64, err error)
	// Now replaces time.Now (tests).
	Now func() time.Time
	// ChangeBackoff is the wait before an export task retries a file
	// that changed while it was uploaded, doubled for each next retry
	// (default DefaultChangeBackoff).
	ChangeBackoff time.Duration
	// BusyWait is how long an import task waits for a file it must
	// change that is open through the mount or being exported before it
	// counts the file as failed, FileInUse (default DefaultBusyWait).
	BusyWait time.Duration
	// OnRetry, when set, is called before each such retry (rel, the
	// file's store path; retry, counting from 1). For tests, which make
	// a file settle through it; nil in a real daemon.
	OnRetry func(rel string, retry int)
}

// Runner runs the data repository tasks of one file system. Create it with
// New, then call Run.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	wake chan struct{}

	mu      sync.Mutex
	running string             // id of the task running now
	stop    context.CancelFunc // cancels the feed of the running task
	// autoQuiet: no automatic release task before this time (one failed:
	// nothing more could be released, so retrying at once would only
	// pile up failed tasks).
	autoQuiet time.Time
}

// autoRetryAfter is how long the runner waits after a failed automatic
// release before it creates another.
const autoRetryAfter = 10 * time.Minute

// New returns a Runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Catalog == nil || cfg.Store == nil || cfg.Exporter == nil || cfg.Importer == nil || cfg.Applier == nil {
		return nil, errors.New("tasks: Catalog, Store, Exporter, Importer and Applier are required")
	}
	if cfg.BusyWait <= 0 {
		cfg.BusyWait = DefaultBusyWait
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.Watermark <= 0 || cfg.Watermark >= 1 {
		cfg.Watermark = DefaultWatermark
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ChangeBackoff <= 0 {
		cfg.ChangeBackoff = DefaultChangeBackoff
	}
	if cfg.AutoReleaseAbove != 0 && (cfg.AutoReleaseAbove <= cfg.Watermark || cfg.AutoReleaseAbove >= 1) {
		return nil, fmt.Errorf("tasks: AutoReleaseAbove %.2f must be above the watermark %.2f and below 1", cfg.AutoReleaseAbove, cfg.Watermark)
	}
	if cfg.Usage == nil {
		st := cfg.Store
		cfg.Usage = func() (uint64, uint64, error) {
			sf, err := st.Statfs()
			if err != nil {
				return 0, 0, err
			}
			// As df computes Use%: blocks reserved for root count
			// neither as used nor as available.
			bs := uint64(sf.Bsize)
			used := (sf.Blocks - sf.Bfree) * bs
			return used, used + sf.Bavail*bs, nil
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{cfg: cfg, log: log.With("component", "tasks"), wake: make(chan struct{}, 1)}, nil
}

// Submit wakes Run: a task was created (PENDING) or canceled. It never
// blocks.
func (r *Runner) Submit() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Cancel is CancelDataRepositoryTask: it moves a PENDING or EXECUTING task to
// CANCELING (again CANCELING for a CANCELING one) and returns it; an ended
// task is DataRepositoryTaskEnded, an unknown one DataRepositoryTaskNotFound.
// The runner then ends it CANCELED: files in flight finish, nothing is undone.
func (r *Runner) Cancel(ctx context.Context, id string) (api.DataRepositoryTask, error) {
	if err := dra.ValidateTaskID(id); err != nil {
		return api.DataRepositoryTask{}, err
	}
	t, err := r.cfg.Catalog.UpdateTask(ctx, id, func(t *api.DataRepositoryTask) error {
		to, err := dra.CancelTask(*t)
		if err != nil {
			return err
		}
		if err := dra.TaskTransition(t.Lifecycle, to); err != nil {
			return err
		}
		t.Lifecycle = to
		return nil
	})
	if errors.Is(err, catalog.ErrNotFound) {
		return t, api.Errorf(api.CodeDataRepositoryTaskNotFound, "task %s does not exist on this file system: list tasks with describe-data-repository-tasks", id)
	}
	if err != nil {
		return t, err
	}
	r.mu.Lock()
	if r.running == id && r.stop != nil {
		r.stop()
	}
	r.mu.Unlock()
	r.Submit()
	return t, nil
}

// Run works tasks until ctx ends. A task cut short by ctx stays EXECUTING in
// the catalog and is run again by the next Run (see the package doc).
func (r *Runner) Run(ctx context.Context) error {
	poll := time.NewTicker(5 * r.cfg.FlushInterval)
	defer poll.Stop()
	for {
		if err := r.autoTrigger(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("automatic release check", "err", err)
		}
		for {
			t, ok, err := r.next(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.log.Error("task queue", "err", err)
				break
			}
			if !ok {
				break
			}
			if !r.run(ctx, t) {
				break // could not start it: try again at the next poll
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.wake:
		case <-poll.C:
		}
	}
}

// autoTrigger creates an AUTO_RELEASE_DATA task when the store is used
// above Config.AutoReleaseAbove and none is queued or running.
func (r *Runner) autoTrigger(ctx context.Context) error {
	r.mu.Lock()
	quiet := r.cfg.Now().Before(r.autoQuiet)
	r.mu.Unlock()
	if r.cfg.AutoReleaseAbove == 0 || quiet {
		return nil
	}
	used, total, err := r.cfg.Usage()
	if err != nil || float64(used) <= r.cfg.AutoReleaseAbove*float64(total) {
		return err
	}
	for _, l := range []api.DataRepositoryTaskLifecycle{api.TaskPending, api.TaskExecuting, api.TaskCanceling} {
		ts, err := r.tasksIn(ctx, l, dra.MaxTaskPage)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.Type == api.TaskAutoReleaseData {
				return nil
			}
		}
	}
	fs, err := r.cfg.Catalog.FileSystem(ctx)
	if err != nil {
		return err
	}
	as, err := r.cfg.Catalog.Associations(ctx)
	if err != nil || len(as) == 0 {
		return err
	}
	t := NewTask(api.CreateDataRepositoryTaskRequest{
		Type: api.TaskAutoReleaseData, FileSystemId: fs.FileSystemId, Report: &api.CompletionReport{Enabled: false},
	}, dra.NewTaskID(), r.cfg.Now())
	if _, _, err := r.cfg.Catalog.CreateTask(ctx, t, AssociationIDs(t, as), nil); err != nil {
		return err
	}
	r.log.Info("store usage above the automatic release mark: task created", "task", t.TaskId,
		"used", used, "total", total, "above", r.cfg.AutoReleaseAbove, "watermark", r.cfg.Watermark)
	return nil
}

// next ends CANCELING tasks that do not run and returns the task to run:
// one left EXECUTING by an earlier run first, then the oldest PENDING one.
func (r *Runner) next(ctx context.Context) (api.DataRepositoryTask, bool, error) {
	canceling, err := r.tasksIn(ctx, api.TaskCanceling, dra.MaxTaskPage)
	if err != nil {
		return api.DataRepositoryTask{}, false, err
	}
	for _, t := range canceling {
		if err := r.finish(ctx, t.TaskId, nil); err != nil {
			return api.DataRepositoryTask{}, false, err
		}
	}
	if ts, err := r.tasksIn(ctx, api.TaskExecuting, 1); err != nil || len(ts) > 0 {
		if len(ts) > 0 {
			return ts[0], true, nil
		}
		return api.DataRepositoryTask{}, false, err
	}
	pending, err := r.tasksIn(ctx, api.TaskPending, dra.MaxTaskPage)
	if err != nil || len(pending) == 0 {
		return api.DataRepositoryTask{}, false, err
	}
	as, err := r.cfg.Catalog.Associations(ctx)
	if err != nil {
		return api.DataRepositoryTask{}, false, err
	}
	settling := map[string]bool{}
	for _, a := range as {
		if a.Lifecycle == api.LifecycleCreating || a.Lifecycle == api.LifecycleUpdating {
			settling[a.AssociationId] = true
		}
	}
	for _, t := range pending {
		if len(settling) == 0 {
			return t, true, nil
		}
		ids, err := r.cfg.Catalog.TaskAssociations(ctx, t.TaskId)
		if err != nil {
			return api.DataRepositoryTask{}, false, err
		}
		// A task waits while an association it works on is being
		// created or updated (its repository is not checked yet); later
		// tasks on other associations go first meanwhile.
		if !slices.ContainsFunc(ids, func(id string) bool { return settling[id] }) {
			return t, true, nil
		}
	}
	return api.DataRepositoryTask{}, false, nil
}

func (r *Runner) tasksIn(ctx context.Context, l api.DataRepositoryTaskLifecycle, n int) ([]api.DataRepositoryTask, error) {
	max := int32(n)
	q, err := dra.ParseDescribeTasks(api.DescribeDataRepositoryTasksRequest{
		Filters:    []api.Filter{{Name: api.FilterTaskLifecycle, Values: []string{string(l)}}},
		MaxResults: &max,
	})
	if err != nil {
		return nil, err
	}
	ts, _, err := r.cfg.Catalog.DescribeTasks(ctx, q)
	return ts, err
}

// job is the state of the task running now.
type job struct {
	r    *Runner
	task api.DataRepositoryTask
	feed context.Context // ends on cancel: no new files
	// work is the context of file operations: only the runner's own
	// context ends it, so files in flight finish when the task is canceled.
	work context.Context

	total, ok, failed, released atomic.Int64 // not yet flushed
	failures                    *failureLog
	fail                        atomic.Pointer[string] // a task-level failure (FailureDetails)
}

func (j *job) done(err error, rel string, released int64) {
	j.total.Add(1)
	if err != nil {
		j.failed.Add(1)
		if werr := j.failures.add(rel, codeOf(err)); werr != nil {
			j.setFail(fmt.Sprintf("cannot record a failed file in the task's failure list: %v", werr))
		}
		j.r.log.Info("task file failed", "task", j.task.TaskId, "path", rel, "err", err)
		return
	}
	j.ok.Add(1)
	j.released.Add(released)
	j.r.log.Debug("task file done", "task", j.task.TaskId, "path", rel)
}

func (j *job) setFail(msg string) { j.fail.CompareAndSwap(nil, &msg) }

// flush writes the counters counted since the last flush.
func (j *job) flush(ctx context.Context) error {
	d := catalog.TaskCounts{Total: j.total.Swap(0), Succeeded: j.ok.Swap(0), Failed: j.failed.Swap(0), ReleasedBytes: j.released.Swap(0)}
	if d == (catalog.TaskCounts{}) {
		return nil
	}
	err := j.r.cfg.Catalog.AddTaskCounts(ctx, j.task.TaskId, d)
	if err != nil { // keep them for the next flush
		j.total.Add(d.Total)
		j.ok.Add(d.Succeeded)
		j.failed.Add(d.Failed)
		j.released.Add(d.ReleasedBytes)
	}
	return err
}

func (r *Runner) spillPath(id string) string {
	return filepath.Join(r.cfg.Store.MetaPath(), "tasks", id+".failures.csv")
}

// run moves t to EXECUTING, works it and ends it. It returns false when it
// could not start t.
func (r *Runner) run(ctx context.Context, t api.DataRepositoryTask) bool {
	log := r.log.With("task", t.TaskId, "type", t.Type)
	resumed := t.Lifecycle == api.TaskExecuting
	t, err := r.markExecuting(ctx, t.TaskId, resumed)
	if errors.Is(err, errSkip) {
		return true
	}
	if err != nil {
		log.Error("cannot start task", "err", err)
		return false
	}
	if resumed {
		log.Info("resuming a task cut short by a stop or crash: running it again from the start")
	} else {
		log.Info("task started")
	}
	fl, err := openFailureLog(r.spillPath(t.TaskId), true)
	if err != nil {
		msg := fmt.Sprintf("cannot create the task's failure list in %s: %v", r.cfg.Store.MetaPath(), err)
		if err := r.finish(ctx, t.TaskId, &msg); err != nil {
			log.Error("cannot end task", "err", err)
			return false
		}
		return true
	}
	feed, stop := context.WithCancel(ctx)
	defer stop()
	j := &job{r: r, task: t, feed: feed, work: ctx, failures: fl}
	r.mu.Lock()
	r.running, r.stop = t.TaskId, stop
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running, r.stop = "", nil
		r.mu.Unlock()
	}()
	stopFlusher := j.startFlusher(ctx, log, stop)
	werr := j.runType()
	stopFlusher()
	if ctx.Err() != nil {
		// Stopped, not ended: the task stays EXECUTING and the next Run
		// runs it again (package doc, "Restart").
		fl.close()
		log.Info("task interrupted by shutdown; it runs again at the next start")
		return true
	}
	return j.end(ctx, log, werr)
}

// markExecuting moves task id to EXECUTING and returns it. A resumed task
// (EXECUTING already, cut short by a stop or crash) counts its failures and
// total again from the files it succeeded with. It fails with errSkip when
// the task was canceled meanwhile.
func (r *Runner) markExecuting(ctx context.Context, id string, resumed bool) (api.DataRepositoryTask, error) {
	now := api.TimePtr(r.cfg.Now())
	return r.cfg.Catalog.UpdateTask(ctx, id, func(t *api.DataRepositoryTask) error {
		if t.Lifecycle != api.TaskPending && t.Lifecycle != api.TaskExecuting {
			return errSkip // canceled meanwhile
		}
		if err := dra.TaskTransition(t.Lifecycle, api.TaskExecuting); err != nil {
			return err
		}
		t.Lifecycle = api.TaskExecuting
		if t.StartTime == nil {
			t.StartTime = now
		}
		if t.Status == nil {
			t.Status = &api.DataRepositoryTaskStatus{}
		}
		if resumed {
			t.Status.FailedCount = 0
			t.Status.TotalCount = t.Status.SucceededCount
		}
		if releases(t.Type) && t.Status.ReleasedCapacity == nil {
			t.Status.ReleasedCapacity = new(int64)
		}
		t.Status.LastUpdatedTime = now
		return nil
	})
}

// startFlusher starts the flusher of j: its counters reach the catalog
// once per interval, and a cancel made by another process sharing the
// catalog calls stop. The returned function stops it and waits for it. It
// is stopped that way, not by a context: a write cut short by its context
// may still commit, and counting its increments again would count them
// twice.
func (j *job) startFlusher(ctx context.Context, log *slog.Logger, stop context.CancelFunc) func() {
	r := j.r
	fdone := make(chan struct{})
	quit := make(chan struct{})
	go func() {
		defer close(fdone)
		tk := time.NewTicker(r.cfg.FlushInterval)
		defer tk.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				return
			case <-tk.C:
			}
			if err := j.flush(ctx); err != nil && ctx.Err() == nil {
				log.Warn("cannot save task counters; retrying", "err", err)
			}
			if cur, err := r.cfg.Catalog.Task(ctx, j.task.TaskId); err == nil && cur.Lifecycle == api.TaskCanceling {
				stop()
			}
		}
	}()
	return func() {
		close(quit)
		<-fdone
	}
}

// runType works the task by its type.
func (j *job) runType() error {
	switch j.task.Type {
	case api.TaskExportToRepository:
		return j.export()
	case api.TaskImportMetadataFromRepository:
		return j.importMeta()
	case api.TaskReleaseDataFromFilesystem:
		return j.release()
	case api.TaskAutoReleaseData:
		return j.autoRelease()
	default:
		return fmt.Errorf("unknown task type %q", j.task.Type)
	}
}

// end saves the counters and the failure list of a task that ran to its
// end, then ends it: FAILED with werr, or with the failure the job
// recorded, else SUCCEEDED (or CANCELED). It returns false when the task
// could not be ended.
func (j *job) end(ctx context.Context, log *slog.Logger, werr error) bool {
	if err := j.flush(ctx); err != nil {
		log.Error("cannot save task counters", "err", err)
	}
	if err := j.failures.close(); err != nil {
		j.setFail(fmt.Sprintf("cannot write the task's failure list: %v", err))
	}
	msg := ""
	if werr != nil && !errors.Is(werr, context.Canceled) {
		msg = werr.Error()
	} else if p := j.fail.Load(); p != nil {
		msg = *p
	}
	if err := j.r.finish(ctx, j.task.TaskId, &msg); err != nil {
		log.Error("cannot end task", "err", err)
		return false
	}
	return true
}

var errSkip = errors.New("task not runnable")

func releases(t api.DataRepositoryTaskType) bool {
	return t == api.TaskReleaseDataFromFilesystem || t == api.TaskAutoReleaseData
}

// finish ends task id: a CANCELING one CANCELED, an EXECUTING one FAILED
// (msg, or failed files) or SUCCEEDED. With msg nil only CANCELING tasks
// are ended (the queue's sweep). The report is written first, so a task
// described as ended has its report in place.
func (r *Runner) finish(ctx context.Context, id string, msg *string) error {
	t, err := r.cfg.Catalog.Task(ctx, id)
	if err != nil {
		return err
	}
	if msg == nil && t.Lifecycle != api.TaskCanceling {
		return nil
	}
	m := ""
	if msg != nil {
		m = *msg
	}
	var failed int64
	if t.Status != nil {
		failed = t.Status.FailedCount
	}
	where := ""
	if t.StartTime != nil && t.Report != nil && t.Report.Enabled {
		var rerr error
		where, rerr = r.writeReport(ctx, t)
		if rerr != nil && m == "" {
			m = fmt.Sprintf("cannot write the completion report: %v", rerr)
		}
	}
	if m == "" && failed > 0 {
		m = fmt.Sprintf("%d of %d files failed", failed, t.Status.TotalCount)
		if where != "" {
			m += "; see the report " + where
		} else {
			m += "; create the task with --report Enabled=true,Path=... to list them"
		}
	}
	now := api.TimePtr(r.cfg.Now())
	ended, err := r.cfg.Catalog.UpdateTask(ctx, id, func(t *api.DataRepositoryTask) error {
		var to api.DataRepositoryTaskLifecycle
		switch {
		case dra.TaskEnded(t.Lifecycle):
			return nil
		case t.Lifecycle == api.TaskCanceling:
			to = api.TaskCanceled
		case m != "":
			to = api.TaskFailed
		default:
			to = api.TaskSucceeded
		}
		if err := dra.TaskTransition(t.Lifecycle, to); err != nil {
			return err
		}
		t.Lifecycle = to
		t.EndTime = now
		if to == api.TaskFailed {
			t.FailureDetails = &api.FailureDetails{Message: dra.NormalizeFailureMessage(m)}
		}
		if t.Status != nil {
			t.Status.LastUpdatedTime = now
		}
		return nil
	})
	if err == nil {
		os.Remove(r.spillPath(id))
		r.log.Info("task ended", "task", id, "lifecycle", ended.Lifecycle)
		if ended.Type == api.TaskAutoReleaseData && ended.Lifecycle == api.TaskFailed {
			r.mu.Lock()
			r.autoQuiet = r.cfg.Now().Add(autoRetryAfter)
			r.mu.Unlock()
		}
	}
	return err
}
