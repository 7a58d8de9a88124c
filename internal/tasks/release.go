package tasks

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"golang.org/x/sys/unix"
)

// releasable reports whether a file in state f may lose its local data now:
// archived, clean, not yet released, not never_release.
func releasable(f hsm.Flags) bool {
	return f.Has(hsm.Exists|hsm.Archived) && !f.Has(hsm.Dirty) && !f.Has(hsm.Released) &&
		!f.Has(hsm.NoRelease) && !f.Has(hsm.Lost)
}

// lastUse is the newest of a file's atime, mtime and ctime (docs/semantics.md §5).
func lastUse(st *unix.Stat_t) time.Time {
	t := time.Unix(st.Atim.Unix())
	for _, u := range []time.Time{time.Unix(st.Mtim.Unix()), time.Unix(st.Ctim.Unix())} {
		if u.After(t) {
			t = u
		}
	}
	return t
}

// candidate reads rel's state and attributes and says whether it qualifies
// for release; the allocated bytes are what releasing it frees.
func (j *job) candidate(rel string) (alloc int64, st unix.Stat_t, ok bool) {
	s, err := j.r.cfg.Store.GetState(rel)
	if err != nil || !releasable(s.Flags) {
		return 0, st, false
	}
	st, err = j.r.cfg.Store.Lstat(rel)
	if err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return 0, st, false
	}
	return st.Blocks * 512, st, true
}

// release is RELEASE_DATA_FROM_FILESYSTEM: every regular file under the
// paths (file system paths, none = every association) that is archived,
// clean and whose newest of atime/mtime/ctime is older than
// DurationSinceLastAccess (Unit DAYS; 0 or absent = every archived file)
// loses its local data (importer.Release). TotalCount counts the files that
// qualified; ReleasedCapacity the bytes their data occupied in the store
// (allocated blocks, st_blocks × 512, before the release). A qualifying file
// that cannot be released (open, changed meanwhile) is a failure.
func (j *job) release() error {
	as, roots, err := j.roots()
	if err != nil {
		return err
	}
	var age time.Duration
	if rc := j.task.ReleaseConfiguration; rc != nil && rc.DurationSinceLastAccess != nil {
		d := rc.DurationSinceLastAccess
		if d.Unit != "" && d.Unit != api.UnitDays {
			return fmt.Errorf("ReleaseConfiguration.DurationSinceLastAccess.Unit %q is not supported: use DAYS", d.Unit)
		}
		age = time.Duration(d.Value) * 24 * time.Hour
	}
	cutoff := j.r.cfg.Now().Add(-age)
	j.forEach(roots, func(ctx context.Context, e entry) {
		if e.typ != unix.S_IFREG {
			return
		}
		if _, _, ok := as.Holder(e.rel); !ok {
			return
		}
		alloc, st, ok := j.candidate(e.rel)
		if !ok || (age > 0 && !lastUse(&st).Before(cutoff)) {
			return
		}
		err := j.r.cfg.Importer.Release(ctx, e.rel)
		j.done(err, e.rel, alloc)
	})
	return nil
}

// autoReleaseBatch bounds the candidates of one pass of AUTO_RELEASE_DATA's
// walk (memory: one path each).
const autoReleaseBatch = 4096

// autoRelease is AUTO_RELEASE_DATA: it releases the least recently used
// archived, clean files until the store's usage is under Config.Watermark
// or, when the task has CapacityToRelease (GiB), until that much is
// released. Candidates come first from the catalog's access times
// (LeastRecentlyAccessed, oldest first); when those run out before the
// goal, walks of the associations pick the autoReleaseBatch files with the
// oldest atime/mtime/ctime at a time (a bounded heap, never a list of the
// tree). Files that cannot be released now (open, dirty) are skipped and not
// counted. If the goal cannot be reached the task FAILS and says why.
func (j *job) autoRelease() error {
	as, err := j.associations()
	if err != nil {
		return err
	}
	ar := &autoReleaser{j: j, as: as}
	if c := j.task.CapacityToRelease; c != nil && *c > 0 {
		ar.goal = *c << 30
	}
	if stop, err := ar.fromAccessRecords(); stop {
		return err
	}
	if stop, err := ar.fromWalks(); stop {
		return err
	}
	if stop, err := ar.stop(); stop {
		return err
	}
	return ar.shortfall()
}

// autoReleaser is one run of AUTO_RELEASE_DATA (autoRelease).
type autoReleaser struct {
	j        *job
	as       *dra.Table // the associations: only files inside one are released
	goal     int64      // bytes to release (CapacityToRelease); 0: down to the watermark
	released int64      // bytes released so far
}

// stop reports whether the run must stop before its next release: the
// goal is reached, the task is canceled, or the store's usage cannot be
// read (err).
func (ar *autoReleaser) stop() (bool, error) {
	o, err := ar.over()
	if err != nil {
		return true, err
	}
	return !o || ar.j.feed.Err() != nil, nil
}

// over reports whether the goal is not reached yet: less than goal
// released, or (without a goal) the store used above the watermark.
func (ar *autoReleaser) over() (bool, error) {
	if ar.goal > 0 {
		return ar.released < ar.goal, nil
	}
	used, total, err := ar.j.r.cfg.Usage()
	if err != nil {
		return false, fmt.Errorf("store usage: %w", err)
	}
	return float64(used) > ar.j.r.cfg.Watermark*float64(total), nil
}

// try releases rel if it qualifies. A file that is not releasable now
// (hsm refuses it, or it is gone) is skipped and not counted; any other
// failure is the task's (job.done).
func (ar *autoReleaser) try(ctx context.Context, rel string) {
	alloc, _, ok := ar.j.candidate(rel)
	if !ok {
		return
	}
	err := ar.j.r.cfg.Importer.Release(ctx, rel)
	var he *hsm.Error
	if errors.As(err, &he) || errors.Is(err, unix.ENOENT) {
		return // not releasable now: skipped
	}
	ar.j.done(err, rel, alloc)
	if err == nil {
		ar.released += alloc
	}
}

// fromAccessRecords releases files from the catalog's access records,
// oldest first, until they run out (stop false) or the run must stop
// (stop true, with stop's error or the catalog's).
func (ar *autoReleaser) fromAccessRecords() (stop bool, err error) {
	var after *catalog.Access
	for {
		if stop, err := ar.stop(); stop {
			return true, err
		}
		page, err := ar.j.r.cfg.Catalog.LeastRecentlyAccessed(ar.j.work, after, 256)
		if err != nil {
			return true, err
		}
		if len(page) == 0 {
			return false, nil
		}
		if stop, err := ar.releasePage(page); stop {
			return true, err
		}
		last := page[len(page)-1]
		after = &last
	}
}

// releasePage tries the files of one page of access records, and forgets
// the records of files that are gone or no longer in an association.
func (ar *autoReleaser) releasePage(page []catalog.Access) (stop bool, err error) {
	var gone []string
	for _, a := range page {
		if stop, err := ar.stop(); stop {
			return true, err
		}
		if _, _, ok := ar.as.Holder(a.Path); !ok {
			gone = append(gone, a.Path) // moved out, or its association deleted
			continue
		}
		if _, err := ar.j.r.cfg.Store.Lstat(a.Path); errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			gone = append(gone, a.Path)
			continue
		}
		ar.try(ar.j.work, a.Path)
	}
	if len(gone) > 0 {
		// Only stale records: the next run finds these files gone again.
		if err := ar.j.r.cfg.Catalog.ForgetAccess(ar.j.work, gone...); err != nil {
			ar.j.r.log.Warn("cannot forget the access records of files gone from the store", "task", ar.j.task.TaskId, "files", len(gone), "err", err)
		}
	}
	return false, nil
}

// fromWalks releases the oldest files by their own times, found by walks
// of the associations a batch at a time, until a batch releases nothing
// (stop false) or the run must stop (stop true, with stop's error).
func (ar *autoReleaser) fromWalks() (stop bool, err error) {
	roots := make([]string, 0, len(ar.as.All()))
	for _, a := range ar.as.All() {
		roots = append(roots, a.Dir)
	}
	for {
		if stop, err := ar.stop(); stop {
			return true, err
		}
		batch := ar.oldestBatch(roots)
		if len(batch) == 0 {
			return false, nil
		}
		before := ar.released
		for _, rel := range batch {
			if stop, err := ar.stop(); stop {
				return true, err
			}
			ar.try(ar.j.work, rel)
		}
		if ar.released == before {
			return false, nil
		}
	}
}

// oldestBatch walks roots and returns the autoReleaseBatch candidates
// with the oldest last use, oldest first.
func (ar *autoReleaser) oldestBatch(roots []string) []string {
	h := &oldest{}
	ar.j.forEachSerial(roots, func(e entry) {
		if e.typ != unix.S_IFREG {
			return
		}
		if _, st, ok := ar.j.candidate(e.rel); ok {
			heap.Push(h, cand{e.rel, lastUse(&st)})
			if h.Len() > autoReleaseBatch {
				heap.Pop(h) // drop the newest
			}
		}
	})
	// Release oldest first: the heap pops newest first, so reverse.
	batch := make([]string, h.Len())
	for i := len(batch) - 1; i >= 0; i-- {
		batch[i] = heap.Pop(h).(cand).rel
	}
	return batch
}

// shortfall is the failure of a run that ran out of files to release
// before its goal.
func (ar *autoReleaser) shortfall() error {
	if ar.goal > 0 {
		return fmt.Errorf("released %d of the %d bytes asked (CapacityToRelease): no more archived, clean, unused files to release", ar.released, ar.goal)
	}
	used, total, err := ar.j.r.cfg.Usage()
	if err != nil {
		return fmt.Errorf("released %d bytes, but the store is still above the %.0f%% watermark: no more archived, clean, unused files to release (export dirty files first); store usage now: %w",
			ar.released, 100*ar.j.r.cfg.Watermark, err)
	}
	return fmt.Errorf("released %d bytes, but the store is still %.1f%% used, above the %.0f%% watermark: no more archived, clean, unused files to release (export dirty files first)",
		ar.released, 100*float64(used)/float64(max(total, 1)), 100*ar.j.r.cfg.Watermark)
}

// forEachSerial walks roots in the calling goroutine.
func (j *job) forEachSerial(roots []string, fn func(entry)) {
	emit := func(e entry) bool {
		fn(e)
		return j.feed.Err() == nil
	}
	for _, root := range roots {
		if !j.walk(root, emit) {
			return
		}
	}
}

type cand struct {
	rel  string
	used time.Time
}

// oldest is a max-heap by last use: its top is the newest of the kept
// candidates, the one to drop when a better (older) one arrives.
type oldest []cand

func (h oldest) Len() int           { return len(h) }
func (h oldest) Less(i, k int) bool { return h[i].used.After(h[k].used) }
func (h oldest) Swap(i, k int)      { h[i], h[k] = h[k], h[i] }
func (h *oldest) Push(x any)        { *h = append(*h, x.(cand)) }
func (h *oldest) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
