package importer

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
)

// The import sweep (auto-import without events, and the catch-all for the
// events a sender lost): docs/architecture.md, "Auto-import: the sweep".
//
//   - Each auto-import association's prefix is listed flat (ListObjectsV2
//     without a delimiter), page by page, paced (SweepConfig.PagesPerSecond)
//     and yielding to the mount's reads (pace).
//   - The listing is merged in key order with a walk of the directories
//     that were listed (localWalk: each directory's entries sorted in key
//     order, a big one through spill files), so neither side is ever held
//     whole: memory is one page, one batch of hints, and the sorted
//     entries of the directories on the walk's path (at most
//     MemEntries of them in memory).
//   - A difference becomes an import hint in the catalog's queue (source
//     "sweep"), which the Applier applies like an event's: it checks the
//     object again, keeps the policy and the conflict rule. The sweep
//     itself changes nothing in the namespace.
//   - A directory that was never listed needs no work: its first listing
//     sees the repository as it is then. Its keys are passed over, and the
//     listing jumps past them (StartAfter) when they fill a page.

// DefaultSweepInterval is the pause between two sweeps (ferry mount
// --import-sweep-interval).
const DefaultSweepInterval = 5 * time.Minute

// Defaults of SweepConfig.
const (
	defaultSweepPage      = 1000 // S3's largest page
	defaultSweepRate      = 20   // LIST pages per second: 20,000 keys/s
	defaultSweepMaxQueued = 10_000
	defaultSweepMem       = 1 << 17
	// sweepHintBatch: hints queued per catalog commit.
	sweepHintBatch = 256
	// maxYield bounds how long one LIST page waits for the mount's reads
	// to leave request slots free: a sweep slows down under a read load,
	// it does not stop.
	maxYield = time.Second
	// sweepSource is the Source of the hints a sweep queues.
	sweepSource = "sweep"
)

// SweepConfig configures a Sweeper.
type SweepConfig struct {
	// Interval is the pause between the end of one sweep of every
	// auto-import association and the start of the next (default
	// DefaultSweepInterval). Run sweeps once at its start.
	Interval time.Duration
	// PageSize is the number of keys asked per ListObjectsV2 page
	// (default, and at most, 1000).
	PageSize int
	// PagesPerSecond bounds the LIST pages a sweep sends per second
	// (default 20); negative: no bound (benchmarks).
	PagesPerSecond float64
	// MaxQueued pauses a sweep while the catalog's hint queue holds more
	// hints than this (default 10,000): the sweep does not run ahead of
	// the applier.
	MaxQueued int64
	// MemEntries bounds the directory entries a sweep holds in memory,
	// sorted, for its walk of the listed directories (default 131,072);
	// a directory that does not fit is sorted through a spill file in the
	// store's metadata folder.
	MemEntries int
	// Notify is called after hints were queued (Applier.Notify); nil:
	// the applier finds them at its next poll.
	Notify func()
}

// SweepResult counts one sweep of one association (or, from SweepAll, of
// every one).
type SweepResult struct {
	Objects      int64 // objects listed
	ListRequests int64 // ListObjectsV2 requests sent (pages, retries included)
	Jumps        int64 // of those, listings restarted past keys passed over
	LocalFiles   int64 // files of listed directories compared
	// Hints queued, by what the sweep found: an object without a file
	// (or a new directory: one hint for its whole prefix), a file whose
	// object has another ETag, a file from the repository whose object
	// is gone.
	New, Changed, Deleted int64
	// Skipped: objects passed over (under a directory never listed, a
	// new directory, or a local non-directory of a parent's name).
	Skipped int64
	Refused int64 // keys no path can have (the listing of their directory counts them)
}

func (r *SweepResult) add(o SweepResult) {
	r.Objects += o.Objects
	r.ListRequests += o.ListRequests
	r.Jumps += o.Jumps
	r.LocalFiles += o.LocalFiles
	r.New += o.New
	r.Changed += o.Changed
	r.Deleted += o.Deleted
	r.Skipped += o.Skipped
	r.Refused += o.Refused
}

// Hints is the number of hints queued.
func (r SweepResult) Hints() int64 { return r.New + r.Changed + r.Deleted }

// SweepStats are a Sweeper's counters, for describe and /metrics.
type SweepStats struct {
	Sweeps    int64 // sweeps of every auto-import association ended
	Failures  int64 // association sweeps that failed (tried again at the next sweep)
	Running   bool
	LastStart time.Time // the last sweep's start (zero: none yet)
	LastEnd   time.Time // the last sweep's end (zero: none ended yet)
	// LastDuration and Last are of the last sweep ended.
	LastDuration time.Duration
	Last         SweepResult
	LastError    string      // the last failure of that sweep ("" when none)
	Total        SweepResult // every sweep
}

// Sweeper sweeps the prefixes of the auto-import associations (see the
// rules above). Its owner starts Run and stops it through the context
// before closing the Importer.
type Sweeper struct {
	im  *Importer
	cfg SweepConfig

	pmu  sync.Mutex
	next time.Time // when the next LIST page may be sent

	mu    sync.Mutex
	stats SweepStats
}

// NewSweeper returns a Sweeper of im's associations. The hints it queues
// are applied by an Applier (NewApplier), which cfg.Notify should wake.
func (im *Importer) NewSweeper(cfg SweepConfig) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSweepInterval
	}
	if cfg.PageSize <= 0 || cfg.PageSize > defaultSweepPage {
		cfg.PageSize = defaultSweepPage
	}
	if cfg.PagesPerSecond == 0 {
		cfg.PagesPerSecond = defaultSweepRate
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = defaultSweepMaxQueued
	}
	if cfg.MemEntries <= 0 {
		cfg.MemEntries = defaultSweepMem
	}
	return &Sweeper{im: im, cfg: cfg}
}

// Stats returns a snapshot of the counters.
func (sw *Sweeper) Stats() SweepStats {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.stats
}

// Run sweeps every auto-import association at once, then again Interval
// after each sweep ended, until ctx ends or the Importer closes. A failed
// association sweep is logged and counted; the next sweep tries again.
func (sw *Sweeper) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(sw.im.ctx, cancel)
	defer stop()
	for {
		_, _ = sw.SweepAll(ctx)
		t := time.NewTimer(sw.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Sweeps says whether a is swept: it serves and its AutoImportPolicy has
// an event.
func Sweeps(a *dra.Assoc) bool {
	return a.Serves() && a.Imports(api.EventNew, api.EventChanged, api.EventDeleted)
}

// SweepAll sweeps every association that Sweeps, one after the other, and
// returns the sum of their results; the error joins their failures.
func (sw *Sweeper) SweepAll(ctx context.Context) (SweepResult, error) {
	start := time.Now()
	sw.mu.Lock()
	sw.stats.Running, sw.stats.LastStart = true, start
	sw.mu.Unlock()
	var total SweepResult
	var errs []error
	for _, a := range sw.im.table().All() {
		if ctx.Err() != nil {
			break
		}
		if !Sweeps(a) {
			continue
		}
		res, err := sw.SweepOnce(ctx, a)
		total.add(res)
		if err != nil && ctx.Err() == nil {
			errs = append(errs, err)
			sw.im.log.Warn("import sweep failed; the next sweep tries again", "dra", a.ID(),
				"prefix", "s3://"+a.Bucket+"/"+a.Prefix, "err", err)
		}
	}
	end := time.Now()
	err := errors.Join(errs...)
	sw.mu.Lock()
	s := &sw.stats
	s.Running = false
	if ctx.Err() == nil {
		s.Sweeps++
		s.LastEnd, s.LastDuration, s.Last = end, end.Sub(start), total
		s.LastError = ""
		if err != nil {
			s.LastError = err.Error()
		}
	}
	s.Failures += int64(len(errs))
	s.Total.add(total)
	sw.mu.Unlock()
	lvl := sw.im.log.Debug
	if total.Hints() > 0 {
		lvl = sw.im.log.Info
	}
	lvl("import sweep", "objects", total.Objects, "list_requests", total.ListRequests, "new", total.New,
		"changed", total.Changed, "deleted", total.Deleted, "duration", end.Sub(start).Round(time.Millisecond))
	return total, err
}

// SweepOnce sweeps association a once: it lists a's prefix flat and
// queues a hint for every difference with a's listed directories (see
// the rules above). An association none of whose directories was listed
// costs no request. Its policy decides which differences are queued; the
// Applier checks the policy again.
func (sw *Sweeper) SweepOnce(ctx context.Context, a *dra.Assoc) (SweepResult, error) {
	r := &sweepRun{sw: sw, im: sw.im, a: a, dirs: map[string]dirState{}}
	root, err := r.status(ctx, ".")
	if err != nil {
		return r.res, err
	}
	if root.kind != dirListed && !(root.kind == dirUnlisted && root.below) {
		return r.res, nil
	}
	mem := sw.cfg.MemEntries
	r.walk = &localWalk{im: sw.im, a: a, memLeft: mem, inMem: min(mem, minInMemory), run: min(mem, minSpillRun)}
	defer r.walk.close()
	if err := r.walk.push(".", root.kind == dirListed); err != nil {
		return r.res, err
	}
	err = r.merge(ctx)
	if ferr := r.flush(ctx); err == nil {
		err = ferr
	}
	return r.res, err
}

// sweepRun is one sweep of one association.
type sweepRun struct {
	sw    *Sweeper
	im    *Importer
	a     *dra.Assoc
	res   SweepResult
	walk  *localWalk
	skip  string              // keys with this prefix are passed over ("" none)
	dirs  map[string]dirState // directories' states, by path inside a
	hints []catalog.ImportHint
}

// merge lists a's prefix and merges it with the walk in key order.
func (r *sweepRun) merge(ctx context.Context) error {
	loc, ok, err := r.walk.next(ctx)
	if err != nil {
		return err
	}
	err = r.listFlat(ctx, func(o s3types.Object) error {
		key := aws.ToString(o.Key)
		r.res.Objects++
		for ok && loc.key < key {
			if err := r.localOnly(ctx, loc); err != nil {
				return err
			}
			if loc, ok, err = r.walk.next(ctx); err != nil {
				return err
			}
		}
		if ok && loc.key == key {
			if err := r.both(loc, o); err != nil {
				return err
			}
			loc, ok, err = r.walk.next(ctx)
			return err
		}
		return r.objectOnly(ctx, key, o)
	})
	if err != nil {
		return err
	}
	for ok {
		if err := r.localOnly(ctx, loc); err != nil {
			return err
		}
		if loc, ok, err = r.walk.next(ctx); err != nil {
			return err
		}
	}
	return nil
}

// listFlat lists a's prefix without a delimiter, one paced page at a
// time, each request bounded as every importer request is (request), and
// calls fn for each object in key order. When a page ends inside the
// prefix being passed over (r.skip), the next page starts after that
// prefix instead of continuing it.
func (r *sweepRun) listFlat(ctx context.Context, fn func(s3types.Object) error) error {
	im, a := r.im, r.a
	w := im.newWatch(&im.n.listRetries)
	in := &s3.ListObjectsV2Input{Bucket: aws.String(a.Bucket), MaxKeys: aws.Int32(int32(r.sw.cfg.PageSize))}
	if a.Prefix != "" {
		in.Prefix = aws.String(a.Prefix)
	}
	for {
		if err := r.sw.pace(ctx); err != nil {
			return err
		}
		var out *s3.ListObjectsV2Output
		err := im.request(ctx, w, false, func(ctx context.Context, o func(*s3.Options)) (err error) {
			im.n.list.Add(1)
			r.res.ListRequests++
			out, err = im.s3.For(a.Access()).S3.ListObjectsV2(ctx, in, o)
			return err
		})
		if err != nil {
			return im.s3.For(a.Access()).Explain(err, "list", a.Bucket, a.Prefix)
		}
		for _, o := range out.Contents {
			if err := fn(o); err != nil {
				return err
			}
		}
		if err := r.flush(ctx); err != nil {
			return err
		}
		if !aws.ToBool(out.IsTruncated) {
			return nil
		}
		in.ContinuationToken, in.StartAfter = out.NextContinuationToken, nil
		if n := len(out.Contents); n > 0 {
			if after := r.jumpAfter(aws.ToString(out.Contents[n-1].Key)); after != "" {
				in.ContinuationToken, in.StartAfter = nil, aws.String(after)
				r.res.Jumps++
			}
		}
	}
}

// maxRune is the largest code point, the greatest UTF-8 sequence: a key
// made of a prefix and it sorts after (nearly) every key under the prefix.
const maxRune = "\U0010FFFF"

// jumpAfter returns where the next page starts when the page ended at
// key last, inside the prefix being passed over; "" to go on from last.
// Keys under the prefix that sort after the jump (they begin with maxRune
// after it) are passed over when they come, as the others would have been.
func (r *sweepRun) jumpAfter(last string) string {
	if r.skip == "" || !strings.HasPrefix(last, r.skip) {
		return ""
	}
	after := r.skip + maxRune
	if after <= last || len(after) > keypath.MaxKeyLen {
		return ""
	}
	return after
}

// pace waits before a LIST page: for the page rate, then while the
// mount's reads hold half the request slots or more, at most maxYield.
func (sw *Sweeper) pace(ctx context.Context) error {
	if rate := sw.cfg.PagesPerSecond; rate > 0 {
		gap := time.Duration(float64(time.Second) / rate)
		sw.pmu.Lock()
		now := time.Now()
		at := sw.next
		if at.Before(now) {
			at = now
		}
		sw.next = at.Add(gap)
		sw.pmu.Unlock()
		if d := time.Until(at); d > 0 {
			if err := sw.im.pause(ctx, d); err != nil {
				return err
			}
		}
	}
	busy := max(1, cap(sw.im.req)/2)
	for deadline := time.Now().Add(maxYield); len(sw.im.req) >= busy && time.Now().Before(deadline); {
		if err := sw.im.pause(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// objectOnly handles object key with no file of its name in the walk.
func (r *sweepRun) objectOnly(ctx context.Context, key string, o s3types.Object) error {
	if r.skip != "" && strings.HasPrefix(key, r.skip) {
		r.res.Skipped++
		return nil
	}
	r.skip = ""
	a := r.a
	if key == a.Prefix {
		return nil // the association's own directory object
	}
	sub, kind, err := keypath.ToPath(a.Prefix, key)
	if err != nil {
		r.res.Refused++
		return nil
	}
	var s dirState
	if kind == keypath.Dir {
		// A directory object: only a missing directory needs work; an
		// existing one was made by its parent's listing (or is local).
		if s, err = r.status(ctx, sub); err != nil || s.kind != dirMissing {
			return err
		}
	} else if s, err = r.status(ctx, path.Dir(sub)); err != nil {
		return err
	}
	switch s.kind {
	case dirListed:
		if a.Imports(api.EventNew) {
			r.res.New++
			r.hint(catalog.HintCreated, key, o)
		}
		return nil
	case dirMissing:
		// Missing below a listed directory: one hint for the topmost
		// missing directory makes it appear (Applier.applyDir); what is
		// under it appears at its first listing. Below an unlisted one:
		// nothing to do.
		top, err := a.Key(s.top, keypath.Dir)
		if err != nil {
			r.res.Skipped++
			return nil
		}
		if s.parentListed && a.Imports(api.EventNew) {
			r.res.New++
			r.hint(catalog.HintCreated, top, s3types.Object{Size: aws.Int64(-1)})
			if top != key {
				r.res.Skipped++
			}
		} else {
			r.res.Skipped++
		}
		r.skip = top
		return nil
	}
	// Never listed, or a local non-directory has a parent's name.
	r.res.Skipped++
	if s.kind == dirBlocked || !s.below {
		if p, err := a.Key(path.Dir(sub), keypath.Dir); err == nil && p != a.Prefix {
			r.skip = p
		}
	}
	return nil
}

// both handles a file of the walk whose key has an object: another ETag
// than the one the file was made from (or last exported as) is CHANGED
// (a conflict for a file with local changes: the Applier decides).
func (r *sweepRun) both(loc localEnt, o s3types.Object) error {
	r.res.LocalFiles++
	st, ok, err := r.fileState(loc)
	if err != nil || !ok || st.Origin != "" {
		return err // not a regular file, or its object is at its origin's key
	}
	if trimETag(st.ETag) == trimETag(aws.ToString(o.ETag)) {
		return nil
	}
	ev := api.EventChanged
	if !st.Flags.Has(hsm.Exists) {
		ev = api.EventNew // an object where a file never exported is
	}
	if r.a.Imports(ev) {
		r.res.Changed++
		r.hint(catalog.HintCreated, loc.key, o)
	}
	return nil
}

// localOnly handles a file of the walk whose key has no object: a file
// the repository knew (flag exists) is DELETED — the Applier removes it
// when clean and keeps it (a conflict) when it has local changes. A file
// never exported is left alone.
func (r *sweepRun) localOnly(_ context.Context, loc localEnt) error {
	r.res.LocalFiles++
	st, ok, err := r.fileState(loc)
	if err != nil || !ok || st.Origin != "" || !st.Flags.Has(hsm.Exists) {
		return err
	}
	if r.a.Imports(api.EventDeleted) {
		r.res.Deleted++
		r.hint(catalog.HintRemoved, loc.key, s3types.Object{Size: aws.Int64(-1)})
	}
	return nil
}

// fileState is the state of the walk's entry loc when it is a regular
// file (ok false otherwise, or when it is gone); a file without state is
// local, never exported (flags none).
func (r *sweepRun) fileState(loc localEnt) (store.State, bool, error) {
	if loc.typ != unix.S_IFREG {
		return store.State{}, false, nil
	}
	st, err := r.im.st.GetState(r.a.StorePath(loc.sub))
	switch {
	case errors.Is(err, store.ErrNoState):
		return store.State{}, true, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return store.State{}, false, nil
	case err != nil:
		return store.State{}, false, err
	}
	return st, true, nil
}

func trimETag(e string) string { return strings.Trim(e, `"`) }

// hint adds a hint to the batch queued at the end of the page (or when
// the batch is full).
func (r *sweepRun) hint(kind catalog.HintKind, key string, o s3types.Object) {
	h := catalog.ImportHint{
		Source: sweepSource, Bucket: r.a.Bucket, Key: key, Kind: kind,
		Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), EventTime: aws.ToTime(o.LastModified),
	}
	if o.Size == nil {
		h.Size = -1
	}
	r.hints = append(r.hints, h)
}

// flush queues the batch of hints, once the queue is no deeper than
// MaxQueued, and wakes the applier.
func (r *sweepRun) flush(ctx context.Context) error {
	if len(r.hints) == 0 {
		return nil
	}
	im := r.im
	for logged := false; ; {
		depth, err := im.cat.HintDepth(ctx)
		if err != nil {
			return err
		}
		if depth <= r.sw.cfg.MaxQueued {
			break
		}
		if !logged {
			im.log.Info("import sweep waits for the hint queue to drain", "dra", r.a.ID(), "queued", depth, "max", r.sw.cfg.MaxQueued)
			logged = true
		}
		if err := im.pause(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	for len(r.hints) > 0 {
		n := min(len(r.hints), sweepHintBatch)
		if _, err := im.cat.EnqueueHints(ctx, r.hints[:n]...); err != nil {
			return fmt.Errorf("import sweep of %s: queue hints: %w", r.a.ID(), err)
		}
		r.hints = r.hints[n:]
	}
	r.hints = nil
	if r.sw.cfg.Notify != nil {
		r.sw.cfg.Notify()
	}
	return nil
}

// dirKind is what a directory of the association is now.
type dirKind uint8

const (
	dirListed   dirKind = iota // a directory, listed
	dirUnlisted                // a directory never listed
	dirMissing                 // nothing has its name
	dirBlocked                 // a non-directory has its name (or a parent's)
)

// dirState is a directory's kind, as status found it.
type dirState struct {
	kind dirKind
	// below: an unlisted directory with a listed directory below it
	// (made by an import task of a sub-path, say): its keys cannot be
	// passed over as a whole.
	below bool
	// top: a missing directory's topmost missing ancestor (or itself),
	// and whether that one's parent is listed.
	top          string
	parentListed bool
}

// maxDirStates bounds the directory states a sweep keeps.
const maxDirStates = 4096

// status returns the state of directory sub (inside the association).
// Keys come in order, so a few states serve long runs of them; the map
// starts over when full.
func (r *sweepRun) status(ctx context.Context, sub string) (dirState, error) {
	if s, ok := r.dirs[sub]; ok {
		return s, nil
	}
	var s dirState
	rel := r.a.StorePath(sub)
	st, err := r.im.st.Lstat(rel)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		listed, err := r.im.isListed(ctx, rel)
		if err != nil {
			return s, err
		}
		if listed {
			s.kind = dirListed
			break
		}
		s.kind = dirUnlisted
		if s.below, err = r.im.cat.ListedBelow(ctx, keypath.ToCatalog(rel)); err != nil {
			return s, err
		}
	case err == nil, errors.Is(err, unix.ENOTDIR):
		s.kind = dirBlocked
	case errors.Is(err, unix.ENOENT):
		if sub == "." {
			s.kind = dirBlocked // the association's directory is missing
			break
		}
		p, err := r.status(ctx, path.Dir(sub))
		if err != nil {
			return s, err
		}
		switch p.kind {
		case dirMissing:
			s = p
		case dirBlocked:
			s.kind = dirBlocked
		default:
			s = dirState{kind: dirMissing, top: sub, parentListed: p.kind == dirListed}
		}
	default:
		return s, err
	}
	if len(r.dirs) >= maxDirStates {
		clear(r.dirs)
	}
	r.dirs[sub] = s
	return s, nil
}
