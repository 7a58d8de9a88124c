package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/store"
)

// Applying import hints (auto-import): "key K of bucket B may have
// changed" becomes whatever the object is now. The rules are in
// docs/architecture.md ("Auto-import: applying hints"); in short:
//
//   - Events are hints, the repository is the truth: every hint is
//     applied by a HEAD of its key (bounded like every importer request)
//     and the local entry is made to agree with what is there now, so a
//     duplicate, reordered or stale hint changes nothing.
//   - Only the events of the association's AutoImportPolicy act.
//   - A directory never listed needs no work: its first listing sees the
//     repository as it is then.
//   - Invariant 6: a file with content the repository does not have
//     (hsm.Unexported) is never overwritten or removed. When its key holds
//     another object now, the local content is kept under a conflict name
//     next to it and the repository's version appears under the name.

// HintOutcome is what applying one hint did.
type HintOutcome int

const (
	HintNoop             HintOutcome = iota // the namespace already agreed with the repository
	HintNew                                 // an entry (and its missing parents) appeared
	HintChanged                             // a clean file took the object's new version (released)
	HintDeleted                             // a clean file, or an empty directory, went
	HintConflict                            // a file with local changes was kept (conflict copy, or kept as the object went)
	HintIgnoredPolicy                       // the policy does not list the event
	HintIgnoredUnlisted                     // the directory was never listed: its listing will see it
	HintIgnoredUncovered                    // no serving association covers the key (or keypath refuses it)
	HintIgnoredRenamed                      // the file awaits the export of a rename: its object is elsewhere
)

func (o HintOutcome) String() string {
	switch o {
	case HintNoop:
		return "noop"
	case HintNew:
		return "new"
	case HintChanged:
		return "changed"
	case HintDeleted:
		return "deleted"
	case HintConflict:
		return "conflict"
	case HintIgnoredPolicy:
		return "ignored-policy"
	case HintIgnoredUnlisted:
		return "ignored-unlisted"
	case HintIgnoredUncovered:
		return "ignored-uncovered"
	case HintIgnoredRenamed:
		return "ignored-renamed"
	}
	return "HintOutcome(" + strconv.Itoa(int(o)) + ")"
}

// HintStats count applied hints (Stats.Hints).
type HintStats struct {
	New, Changed, Deleted int64 // applied, by what they did
	Noop                  int64 // duplicates, stale and reordered hints: nothing to do
	IgnoredPolicy         int64
	IgnoredUnlisted       int64
	IgnoredUncovered      int64
	IgnoredRenamed        int64
	Deferred              int64 // retried later: the file is open, or its export is in flight
	Failed                int64 // retried later with backoff: the repository did not answer
	// Conflicts: a file with local changes whose object changed (a
	// conflict copy was made) or went (the file stays).
	ConflictsChanged, ConflictsDeleted int64
	DirsRemoved                        int64 // directories removed once empty
}

// Applied is the number of hints that changed the namespace.
func (s HintStats) Applied() int64 {
	return s.New + s.Changed + s.Deleted + s.ConflictsChanged + s.ConflictsDeleted
}

// Ignored is the number of hints ignored (policy, unlisted, uncovered, rename pending).
func (s HintStats) Ignored() int64 {
	return s.IgnoredPolicy + s.IgnoredUnlisted + s.IgnoredUncovered + s.IgnoredRenamed
}

// Conflicts is the number of conflicts (both kinds).
func (s HintStats) Conflicts() int64 { return s.ConflictsChanged + s.ConflictsDeleted }

type atomicInt = atomic.Int64

type hintCounters struct {
	byOutcome                          [HintIgnoredRenamed + 1]atomicInt
	deferred, failed                   atomicInt
	conflictsChanged, conflictsDeleted atomicInt
	dirsRemoved                        atomicInt
}

func (c *hintCounters) stats() HintStats {
	o := &c.byOutcome
	return HintStats{
		New: o[HintNew].Load(), Changed: o[HintChanged].Load(), Deleted: o[HintDeleted].Load(),
		Noop: o[HintNoop].Load(), IgnoredPolicy: o[HintIgnoredPolicy].Load(),
		IgnoredUnlisted: o[HintIgnoredUnlisted].Load(), IgnoredUncovered: o[HintIgnoredUncovered].Load(),
		IgnoredRenamed: o[HintIgnoredRenamed].Load(), Deferred: c.deferred.Load(), Failed: c.failed.Load(),
		ConflictsChanged: c.conflictsChanged.Load(), ConflictsDeleted: c.conflictsDeleted.Load(),
		DirsRemoved: c.dirsRemoved.Load(),
	}
}

// HintJournal journals a file the importer made that must be exported: a
// conflict copy (NEW). internal/writepath's Writer is one (Made); the
// implementation decides whether the path's association exports.
type HintJournal interface {
	Made(ctx context.Context, rel string) error
}

// ApplyConfig configures an Applier.
type ApplyConfig struct {
	// Owner names the claims in the catalog's hint queue (the exporter's
	// claim owner form: <fs-id>@<host>). Required for Run and Drain.
	Owner string
	// Batch is how many hints one claim takes (default 32).
	Batch int
	// Workers is how many hints are applied at once (default 4). Each
	// holds at most one repository request at a time.
	Workers int
	// Lease is how long a claim is held (default 2×FetchTimeout+30 s:
	// longer than one hint takes, since every request is bounded by
	// FetchTimeout).
	Lease time.Duration
	// Poll is how long Run waits for hints when not notified (default
	// 2 s): hints whose retry time came are claimed by it.
	Poll time.Duration
	// Journal journals conflict copies for export (nil: none are).
	Journal HintJournal
	// Now is the clock of conflict copy names (default time.Now).
	Now func() time.Time
	// AllEvents applies NEW, CHANGED and DELETED whatever the
	// association's AutoImportPolicy: an IMPORT_METADATA_FROM_REPOSITORY
	// task imports every change under its paths (internal/tasks), as FSx
	// runs its import tasks independently of automatic import.
	AllEvents bool
	// Exporting, when set, says whether an export of store path rel is
	// running now (the exporter's own exports, hsm archive and export
	// tasks, which the journal's claims do not show). A hint of such a
	// file is deferred: the upload may be what changed the object, and
	// the file is marked exported only after it.
	Exporting func(rel string) bool
	// Applied, when set, is told of every hint Run or Drain applied (not
	// of those deferred or failed, which come again), after the hint was
	// completed: the daemon's counters by source and association, and the
	// import lag, come from it. It must not block.
	Applied func(AppliedHint)
}

// AppliedHint is one hint applied, as ApplyConfig.Applied hears of it.
type AppliedHint struct {
	Hint catalog.QueuedHint
	// Association is the id of the association that covers the key (""
	// when none serves it: HintIgnoredUncovered).
	Association string
	Outcome     HintOutcome
	At          time.Time // when it was applied
}

// Defaults of ApplyConfig, and the waits of a hint retried.
const (
	defaultHintBatch   = 32
	defaultHintWorkers = 4
	defaultHintPoll    = 2 * time.Second
	// hintDeferDelay: a hint deferred because its file is open or its
	// export in flight is tried again after this long.
	hintDeferDelay = 2 * time.Second
	// hintFirstBackoff and hintMaxBackoff bound the retries of a hint
	// that failed (the repository not answering).
	hintFirstBackoff = time.Second
	hintMaxBackoff   = 5 * time.Minute
)

// Applier claims import hints from the catalog's queue and applies them to
// the namespace (see the rules above). Its owner starts Run and stops it
// through the context before closing the Importer.
type Applier struct {
	im   *Importer
	cfg  ApplyConfig
	wake chan struct{}
	seq  sync.Mutex // conflict copy names: one at a time per applier
}

// NewApplier returns an Applier of im's namespace.
func (im *Importer) NewApplier(cfg ApplyConfig) *Applier {
	if cfg.Batch <= 0 {
		cfg.Batch = defaultHintBatch
	}
	if cfg.Workers <= 0 {
		cfg.Workers = defaultHintWorkers
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 2*im.cfg.FetchTimeout + 30*time.Second
	}
	if cfg.Poll <= 0 {
		cfg.Poll = defaultHintPoll
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Applier{im: im, cfg: cfg, wake: make(chan struct{}, 1)}
}

// Notify wakes Run (hints were queued); it never blocks.
func (ap *Applier) Notify() {
	select {
	case ap.wake <- struct{}{}:
	default:
	}
}

// Run applies hints until ctx ends (or the Importer closes): it first
// takes back the claims its owner held (catalog ReleaseHints: this node's
// daemon restarted), then drains the ready hints and waits for Notify or
// Poll. Errors of the queue are
// logged and retried at the next round.
func (ap *Applier) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ap.im.ctx, cancel)
	defer stop()
	// Claims this owner's last run died holding (a restart) are ours
	// again at once, not after their leases.
	if n, err := ap.im.cat.ReleaseHints(ctx, ap.cfg.Owner); err != nil {
		ap.im.log.Warn("import hints: claims of the last run not released; they come back when their leases end", "err", err)
	} else if n > 0 {
		ap.im.log.Info("import hints: took back the claims of the last run", "hints", n)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		if _, err := ap.Drain(ctx); err != nil && ctx.Err() == nil {
			ap.im.log.Warn("import hints: claim failed; retrying", "err", err)
		}
		t.Reset(ap.cfg.Poll)
		select {
		case <-ctx.Done():
			return nil
		case <-ap.wake:
		case <-t.C:
		}
	}
}

// Drain claims and applies hints until none is ready, and returns how
// many it handled (applied, deferred or failed).
func (ap *Applier) Drain(ctx context.Context) (int, error) {
	total := 0
	for ctx.Err() == nil {
		hs, err := ap.im.cat.ClaimHints(ctx, ap.cfg.Owner, ap.cfg.Batch, ap.cfg.Lease)
		if err != nil || len(hs) == 0 {
			return total, err
		}
		work := make(chan catalog.QueuedHint)
		var wg sync.WaitGroup
		for range min(ap.cfg.Workers, len(hs)) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for h := range work {
					ap.handle(ctx, h)
				}
			}()
		}
		for _, h := range hs {
			work <- h
		}
		close(work)
		wg.Wait()
		total += len(hs)
	}
	return total, ctx.Err()
}

// handle applies one claimed hint and completes it, or fails it for a
// retry. The hint is completed only after its effect is durable (apply
// syncs the directories it changed), so a crash before CompleteHint
// applies it again, which finds nothing more to do.
func (ap *Applier) handle(ctx context.Context, h catalog.QueuedHint) {
	im := ap.im
	assoc, out, err := ap.applyCounted(ctx, h.ImportHint)
	if ctx.Err() != nil {
		return // the lease expires; the hint is claimed again
	}
	var de *deferError
	switch {
	case errors.As(err, &de):
		im.n.hints.deferred.Add(1)
		err = im.cat.FailHint(ctx, h, de.Error(), time.Now().Add(hintDeferDelay))
	case err != nil:
		im.n.hints.failed.Add(1)
		im.log.Warn("import hint not applied; retrying", "bucket", h.Bucket, "key", h.Key, "attempts", h.Attempts+1, "err", err)
		err = im.cat.FailHint(ctx, h, err.Error(), time.Now().Add(hintBackoff(h.Attempts)))
	default:
		_, err = im.cat.CompleteHint(ctx, h)
		if ap.cfg.Applied != nil {
			ap.cfg.Applied(AppliedHint{Hint: h, Association: assoc, Outcome: out, At: time.Now()})
		}
	}
	if err != nil && ctx.Err() == nil {
		im.log.Warn("import hint: queue update failed; it is applied again after its lease", "key", h.Key, "err", err)
	}
}

// hintBackoff is the wait after the attempts+1'th failure: doubling from
// hintFirstBackoff, at most hintMaxBackoff.
func hintBackoff(attempts int) time.Duration {
	d := hintFirstBackoff
	for i := 0; i < attempts && d < hintMaxBackoff; i++ {
		d *= 2
	}
	return min(d, hintMaxBackoff)
}

// deferError: the hint cannot be applied now without risk (the file is
// open through the mount, or its export is in flight); it is tried again
// soon, and is not a failure.
type deferError struct{ why string }

func (e *deferError) Error() string { return "deferred: " + e.why }

// IsDeferred reports whether err, from Apply, says the hint cannot be
// applied now without risk (its file is open, or its export in flight)
// and is to be applied again a little later.
func IsDeferred(err error) bool {
	var de *deferError
	return errors.As(err, &de)
}

// hintTarget is a hint located: its association, its path inside it and
// in the store, and the key's kind.
type hintTarget struct {
	a    *dra.Assoc
	key  string
	sub  string // path inside the association
	rel  string // store path
	kind keypath.Kind
}

// Apply makes the namespace agree with the repository for hint h, and
// says what it did. It is idempotent: applying a hint again, or an older
// one, finds the namespace agreeing already. An error means the hint must
// be retried (the repository did not answer; a *deferError: later).
func (ap *Applier) Apply(ctx context.Context, h catalog.ImportHint) (HintOutcome, error) {
	_, out, err := ap.applyCounted(ctx, h)
	return out, err
}

// applyCounted is Apply that also says which association covers the key
// ("" when none).
func (ap *Applier) applyCounted(ctx context.Context, h catalog.ImportHint) (string, HintOutcome, error) {
	assoc, out := "", HintIgnoredUncovered
	var err error
	if t, ok := ap.locate(h); ok {
		assoc = t.a.ID()
		if ap.cfg.AllEvents {
			t.a = everyEvent(t.a)
		}
		out, err = ap.apply(ctx, t)
	}
	if err == nil {
		ap.im.n.hints.byOutcome[out].Add(1)
	}
	return assoc, out, err
}

func (ap *Applier) apply(ctx context.Context, t hintTarget) (HintOutcome, error) {
	if t.sub == "." {
		return HintNoop, nil // the association's own directory object
	}
	if !t.a.Imports(api.EventNew, api.EventChanged, api.EventDeleted) {
		return HintIgnoredPolicy, nil
	}
	if t.kind == keypath.Dir {
		return ap.applyDir(ctx, t)
	}
	return ap.applyFile(ctx, t)
}

// everyEvent is a with an AutoImportPolicy of every event
// (ApplyConfig.AllEvents); a itself is never changed.
func everyEvent(a *dra.Assoc) *dra.Assoc {
	b := *a
	var s3c api.S3DataRepositoryConfiguration
	if a.API.S3 != nil {
		s3c = *a.API.S3
	}
	s3c.AutoImportPolicy = &api.AutoImportPolicy{Events: []api.EventType{api.EventNew, api.EventChanged, api.EventDeleted}}
	b.API.S3 = &s3c
	return &b
}

// locate finds the serving association whose bucket and prefix cover h's
// key, and the key's path. A key keypath refuses is counted as a listing
// would count it (invariant 4) and ignored.
func (ap *Applier) locate(h catalog.ImportHint) (hintTarget, bool) {
	a := ap.holder(h.Bucket, h.Key)
	if a == nil {
		return hintTarget{}, false
	}
	sub, kind, err := keypath.ToPath(a.Prefix, h.Key)
	if err != nil {
		ap.im.refuse(keypath.CodeOf(err), h.Key, err.Error())
		return hintTarget{}, false
	}
	return hintTarget{a: a, key: h.Key, sub: sub, rel: a.StorePath(sub), kind: kind}, true
}

// holder is the serving association whose bucket and prefix cover key
// (nil when none: associations never overlap, so at most one does).
func (ap *Applier) holder(bucket, key string) *dra.Assoc {
	for _, a := range ap.im.table().All() {
		if a.Bucket == bucket && strings.HasPrefix(key, a.Prefix) && a.Serves() {
			return a
		}
	}
	return nil
}

// Covers says whether a hint of key in bucket can act: a serving
// association covers it and has an AutoImportPolicy. The event intake
// queues only such hints (events.Config.Covered); the others would be
// applied as ignored.
func (ap *Applier) Covers(bucket, key string) bool {
	a := ap.holder(bucket, key)
	return a != nil && a.Imports(api.EventNew, api.EventChanged, api.EventDeleted)
}

// applyFile applies a hint of a file key.
func (ap *Applier) applyFile(ctx context.Context, t hintTarget) (HintOutcome, error) {
	im := ap.im
	lst, err := im.st.Lstat(t.rel)
	switch {
	case errors.Is(err, unix.ENOENT):
		return ap.applyAbsent(ctx, t)
	case errors.Is(err, unix.ENOTDIR):
		return HintNoop, nil // a local file where a parent directory would be: local wins
	case err != nil:
		return HintNoop, err
	case lst.Mode&unix.S_IFMT != unix.S_IFREG:
		// A directory (type clash: it wins), a symlink (the identity of
		// imported symlinks is not recorded, so a local one is never
		// replaced) or a special file: nothing to do.
		return HintNoop, nil
	}
	st, err := im.st.GetState(t.rel)
	switch {
	case errors.Is(err, store.ErrNoState):
		st = store.State{} // a local file never exported: flags none
	case errors.Is(err, unix.ENOENT):
		return ap.applyAbsent(ctx, t)
	case err != nil:
		return HintNoop, err
	}
	if st.Origin != "" {
		// Renamed through the mount, not yet moved by the exporter: its
		// object is at the origin's key, and this key is the one the
		// exporter will write. Known gap: a change of this key meanwhile
		// is overwritten by the move.
		return HintIgnoredRenamed, nil
	}
	out, found, err := im.head(ctx, im.newWatch(&im.n.retries), t.a, t.key)
	if err != nil {
		return HintNoop, err
	}
	if found && aws.ToString(out.ETag) == st.ETag {
		return HintNoop, nil
	}
	if !found {
		return ap.objectGone(ctx, t, st)
	}
	return ap.objectChanged(ctx, t, lst, st, out)
}

// applyAbsent applies a hint of a file key with nothing local at its
// name: the object, if there is one now, appears, with its missing parent
// directories — when the nearest directory that exists was listed.
func (ap *Applier) applyAbsent(ctx context.Context, t hintTarget) (HintOutcome, error) {
	im := ap.im
	missing, listed, err := ap.listedAncestor(ctx, t.a, path.Dir(t.sub))
	if err != nil || !listed {
		return HintIgnoredUnlisted, err
	}
	if !t.a.Imports(api.EventNew) {
		return HintIgnoredPolicy, nil
	}
	w := im.newWatch(&im.n.retries)
	out, found, err := im.head(ctx, w, t.a, t.key)
	if err != nil || !found {
		return HintNoop, err // gone again: a stale hint
	}
	if made, err := ap.makeDirs(ctx, w, t.a, missing); err != nil || !made {
		return HintNoop, err
	}
	made, err := ap.makeEntry(ctx, w, t, out)
	if err != nil || !made {
		return HintNoop, err
	}
	if err := im.st.SyncDir(path.Dir(t.rel)); err != nil {
		return HintNoop, err
	}
	// The kernel may have looked the name up before it existed and
	// cached "no such file" (--negative-timeout): drop that, so the new
	// file shows at once (the ~1 s tail of event-to-visible latency).
	if len(missing) > 0 {
		ap.invalidate(t.a.StorePath(missing[0]))
	} else {
		ap.invalidate(t.rel)
	}
	return HintNew, nil
}

// listedAncestor walks up from dir (a path inside a) to the nearest
// directory that exists, and says whether it was listed; missing are the
// directories below it down to dir, topmost first. A non-directory on
// the way (a type clash, local wins) is not listed.
func (ap *Applier) listedAncestor(ctx context.Context, a *dra.Assoc, dir string) (missing []string, listed bool, err error) {
	for {
		rel := a.StorePath(dir)
		st, err := ap.im.st.Lstat(rel)
		switch {
		case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
			listed, err := ap.im.isListed(ctx, rel)
			return missing, listed, err
		case err == nil, errors.Is(err, unix.ENOTDIR):
			return nil, false, nil
		case !errors.Is(err, unix.ENOENT):
			return nil, false, err
		case dir == ".":
			return nil, false, nil // the association's directory is missing
		}
		missing = append([]string{dir}, missing...)
		dir = path.Dir(dir)
	}
}

// isListed says whether store directory rel was listed (or made through
// the mount, which counts as listed).
func (im *Importer) isListed(ctx context.Context, rel string) (bool, error) {
	im.lmu.RLock()
	done := im.listed[rel]
	im.lmu.RUnlock()
	if done {
		return true, nil
	}
	_, ok, err := im.cat.Listed(ctx, keypath.ToCatalog(rel))
	if ok {
		im.markListedMem(rel)
	}
	return ok, err
}

// makeDirs makes the directories dirs (inside a, topmost first) with the
// attributes of their directory objects, as a listing does. They are not
// recorded listed: their first lookup lists them, and finds the entries
// made here its own. Each is synced into its parent.
func (ap *Applier) makeDirs(ctx context.Context, w *watch, a *dra.Assoc, dirs []string) (bool, error) {
	var mk sync.Mutex
	for _, d := range dirs {
		key, err := a.Key(d, keypath.Dir)
		if err != nil {
			return false, nil
		}
		made, err := ap.im.importDir(ctx, w, a, key, d, &mk)
		if err != nil || !made {
			return false, err
		}
		if err := ap.im.st.SyncDir(a.StorePath(path.Dir(d))); err != nil {
			return false, err
		}
	}
	return true, nil
}

// makeEntry creates the stub (or symlink) of object out at t.rel, as a
// listing does; false when something else took the name (local wins) or
// the object cannot be imported (counted as the listing counts it).
func (ap *Applier) makeEntry(ctx context.Context, w *watch, t hintTarget, out *s3.HeadObjectOutput) (bool, error) {
	im := ap.im
	dec, ok := im.decodeFile(t.a, t.key, out)
	if !ok {
		return false, nil
	}
	d := dec.Attrs
	etag := aws.ToString(out.ETag)
	if d.IsSymlink() {
		var mk sync.Mutex
		if err := im.importSymlink(ctx, w, t.a, t.key, etag, aws.ToInt64(out.ContentLength), t.rel, d, &mk); err != nil {
			return false, err
		}
		_, err := im.st.Lstat(t.rel)
		return err == nil, nil
	}
	err := im.st.CreateStub(t.rel, im.stubOf(t.a, out, d))
	switch {
	case err == nil:
		im.n.stubs.Add(1)
		return true, nil
	case errors.Is(err, unix.EEXIST):
		im.existing(t.a, t.key, t.rel, func() bool {
			st, err := im.st.GetState(t.rel)
			return err == nil && st.ETag == etag && !hsm.Unexported(st.Flags)
		})
		return false, nil
	}
	return false, err
}

// decodeFile reads a file object's POSIX attributes as a listing does:
// an object whose headers say directory is a type mismatch (refused).
func (im *Importer) decodeFile(a *dra.Assoc, key string, out *s3.HeadObjectOutput) (posixmeta.Decoded, bool) {
	d := im.decode(key, out.Metadata, false, aws.ToTime(out.LastModified))
	for _, p := range d.Problems {
		if p.Code == posixmeta.CodeTypeMismatch {
			im.refuse(CodeTypeMismatch, key, p.Error())
			return d, false
		}
	}
	if err := d.Err(); err != nil {
		im.log.Warn("invalid POSIX metadata; defaults used for it", "dra", a.ID(), "key", key, "err", err)
	}
	return d, true
}

// stubOf is the stub of object out with attributes attrs.
func (im *Importer) stubOf(a *dra.Assoc, out *s3.HeadObjectOutput, attrs posixmeta.Attrs) store.Stub {
	return store.Stub{
		Size: aws.ToInt64(out.ContentLength), Mode: attrs.Perm(),
		UID: int(attrs.UID), GID: int(attrs.GID), Mtime: attrs.Mtime, Atime: attrs.Atime,
		ETag: aws.ToString(out.ETag), Flags: hsm.Imported(), ChunkSize: im.chunkFor(a, aws.ToInt64(out.ContentLength)),
	}
}

// busy defers a change to rel that could lose data or mix versions: an
// export of rel in flight (its upload may be what changed the object, and
// the exporter marks the file exported only after the upload), or — when
// the file's data is local (not released) — the file open through the
// mount (it may be open for writing: a write after the swap would go to
// the unlinked inode).
func (ap *Applier) busy(ctx context.Context, rel string, released bool) error {
	im := ap.im
	if !released && im.cfg.InUse != nil && im.cfg.InUse(rel) {
		return &deferError{why: rel + " is open"}
	}
	if ap.cfg.Exporting != nil && ap.cfg.Exporting(rel) {
		return &deferError{why: "the export of " + rel + " is in flight"}
	}
	p := keypath.ToCatalog(rel)
	es, err := im.cat.Pending(ctx, p, "", 1)
	if err != nil {
		return err
	}
	if len(es) > 0 && es[0].Path == p && es[0].Owner != "" && es[0].ReadyAt.After(time.Now()) {
		return &deferError{why: "the export of " + rel + " is in flight"}
	}
	return nil
}

// objectGone applies a hint of a file whose object is gone. A clean file
// is removed (DELETED in the policy), then its directories while they are
// empty here and in the repository. A file with local changes stays: one
// that was exported no longer exists in the repository (hsm.Vanished:
// local-only, so it is exported again as new) — a conflict.
func (ap *Applier) objectGone(ctx context.Context, t hintTarget, st store.State) (HintOutcome, error) {
	im := ap.im
	if !t.a.Imports(api.EventDeleted) {
		return HintIgnoredPolicy, nil
	}
	if hsm.Unexported(st.Flags) {
		if !st.Flags.Has(hsm.Exists) {
			return HintNoop, nil // never exported: nothing of it was in the repository
		}
		if err := ap.busy(ctx, t.rel, true); err != nil {
			return HintNoop, err
		}
		if _, err := im.st.UpdateState(t.rel, func(s *store.State) error {
			if s.Flags != st.Flags || s.Version != st.Version || s.ETag != st.ETag {
				return &deferError{why: t.rel + " changed meanwhile"}
			}
			s.Flags = hsm.Vanished(s.Flags)
			return nil
		}); err != nil {
			return HintNoop, err
		}
		im.n.hints.conflictsDeleted.Add(1)
		im.conflicts.add(Conflict{Association: t.a.ID(), Key: t.key, Path: t.rel, Kind: ConflictDeleted, Time: ap.cfg.Now()})
		im.log.Warn("conflict: the object of a file with local changes was deleted; the file stays (local-only, exported again if the policy exports)",
			"dra", t.a.ID(), "key", t.key, "path", t.rel)
		return HintConflict, nil
	}
	if err := ap.busy(ctx, t.rel, st.Flags.Has(hsm.Released)); err != nil {
		return HintNoop, err
	}
	if err := im.st.Unlink(t.rel); err != nil && !errors.Is(err, unix.ENOENT) {
		return HintNoop, err
	}
	if err := im.st.SyncDir(path.Dir(t.rel)); err != nil {
		return HintNoop, err
	}
	ap.invalidate(t.rel)
	im.log.Info("file removed: its object was deleted", "dra", t.a.ID(), "key", t.key, "path", t.rel)
	if err := ap.removeEmptyDirs(ctx, t.a, path.Dir(t.sub)); err != nil {
		return HintDeleted, err
	}
	return HintDeleted, nil
}

// removeEmptyDirs removes directory dir (inside a) and then its parents,
// up to but not including the association's directory, while each is
// empty here, holds nothing in the repository (no key under its prefix,
// its own directory object included) and has no export pending.
// Directories a listing or a lookup made local count like the others:
// FSx removes a directory once it is empty.
func (ap *Applier) removeEmptyDirs(ctx context.Context, a *dra.Assoc, dir string) error {
	im := ap.im
	for ; dir != "."; dir = path.Dir(dir) {
		rel := a.StorePath(dir)
		if empty, err := ap.emptyDir(rel); err != nil || !empty {
			return err
		}
		if es, err := im.cat.Pending(ctx, keypath.ToCatalog(rel), "", 1); err != nil || len(es) > 0 {
			return err
		}
		key, err := a.Key(dir, keypath.Dir)
		if err != nil {
			return nil
		}
		if has, err := im.anyUnder(ctx, a, key); err != nil || has {
			return err
		}
		if err := im.st.Rmdir(rel); err != nil {
			if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.ENOENT) {
				return nil // filled (or removed) meanwhile
			}
			return err
		}
		if err := im.st.SyncDir(path.Dir(rel)); err != nil {
			return err
		}
		if err := im.forgetListed(ctx, rel); err != nil {
			return err
		}
		im.n.hints.dirsRemoved.Add(1)
		ap.invalidate(rel)
		im.log.Info("directory removed: empty here and in the repository", "dra", a.ID(), "path", rel)
	}
	return nil
}

// emptyDir reports whether directory rel has no entry (the store's own
// hidden names aside); a missing or non-directory rel is not empty.
func (ap *Applier) emptyDir(rel string) (bool, error) {
	d, err := ap.im.st.Readdir(rel)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer d.Close()
	es, err := d.Next(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return len(es) == 0 && err == nil, err
}

// forgetListed drops the listed record of rel (and below): a directory
// made again later is listed from its prefix again.
func (im *Importer) forgetListed(ctx context.Context, rel string) error {
	im.lmu.Lock()
	delete(im.listed, rel)
	im.lmu.Unlock()
	_, err := im.cat.ForgetListed(ctx, keypath.ToCatalog(rel))
	return err
}

// anyUnder reports whether a's repository has a key under prefix (one
// ListObjectsV2 of one key, bounded as every importer request).
func (im *Importer) anyUnder(ctx context.Context, a *dra.Assoc, prefix string) (bool, error) {
	c, bucket := im.s3.For(a.Access()), a.Bucket
	var n int32
	err := im.request(ctx, im.newWatch(&im.n.retries), true, func(ctx context.Context, o func(*s3.Options)) error {
		im.n.list.Add(1)
		out, err := c.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket: aws.String(bucket), Prefix: aws.String(prefix), MaxKeys: aws.Int32(1),
		}, o)
		if err == nil {
			n = aws.ToInt32(out.KeyCount)
		}
		return err
	})
	if err != nil {
		return false, c.Explain(err, "list", bucket, prefix)
	}
	return n > 0, nil
}

// objectChanged applies a hint of a file whose key holds another object
// than the file's: a clean file takes it (CHANGED); a file with local
// changes keeps them under a conflict name (conflict).
func (ap *Applier) objectChanged(ctx context.Context, t hintTarget, lst unix.Stat_t, st store.State, out *s3.HeadObjectOutput) (HintOutcome, error) {
	if hsm.Unexported(st.Flags) {
		ev := api.EventChanged // the file's object changed under its local changes
		if !st.Flags.Has(hsm.Exists) {
			ev = api.EventNew // an object appeared where a never-exported file is
		}
		if !t.a.Imports(ev) {
			return HintIgnoredPolicy, nil
		}
		return ap.conflict(ctx, t, st, out)
	}
	if !t.a.Imports(api.EventChanged) {
		return HintIgnoredPolicy, nil
	}
	return ap.replace(ctx, t, lst, st, out)
}

// replace makes clean file t.rel a released stub of the object now at its
// key (as a re-import after a 412 does): the new ETag and size, the
// object's headers merged with the file's attributes, the local data
// dropped. The swap is store.ReplaceStub's (RENAME_EXCHANGE, undone when
// the file changed meanwhile): a reader with the old file open keeps the
// old inode (docs/architecture.md, "Auto-import: applying hints").
func (ap *Applier) replace(ctx context.Context, t hintTarget, lst unix.Stat_t, st store.State, out *s3.HeadObjectOutput) (HintOutcome, error) {
	im := ap.im
	released := st.Flags.Has(hsm.Released)
	if err := ap.busy(ctx, t.rel, released); err != nil {
		return HintNoop, err
	}
	d, ok := im.decodeFile(t.a, t.key, out)
	if !ok || !d.Attrs.IsRegular() {
		if ok {
			im.log.Warn("changed object is no longer a regular file; the file is left as it is", "dra", t.a.ID(), "key", t.key, "path", t.rel)
		}
		return HintNoop, nil
	}
	attrs := d.Merge(posixmeta.Attrs{
		Mode: lst.Mode, UID: lst.Uid, GID: lst.Gid, Mtime: timeOf(lst.Mtim), Atime: timeOf(lst.Atim),
	})
	flags, err := hsm.Reimport(t.rel, st.Flags)
	if err != nil {
		return HintNoop, &deferError{why: err.Error()}
	}
	stub := im.stubOf(t.a, out, attrs)
	stub.Flags = flags
	err = im.st.ReplaceStub(t.rel, stub, func(o store.State) error {
		if o.ETag != st.ETag || o.Version != st.Version || o.Flags != st.Flags {
			return store.ErrChanged
		}
		_, err := hsm.Reimport(t.rel, o.Flags)
		return err
	})
	if err != nil {
		// Changed locally meanwhile (a write, a restore): decide again.
		return HintNoop, &deferError{why: err.Error()}
	}
	if err := im.st.SyncDir(path.Dir(t.rel)); err != nil {
		return HintNoop, err
	}
	im.n.reimports.Add(1)
	ap.invalidate(t.rel)
	im.log.Info("file re-imported: its object changed", "dra", t.a.ID(), "key", t.key, "path", t.rel)
	return HintChanged, nil
}

// conflictInfix marks a conflict copy: <name>.ferry-conflict-<UTC time>-<n>.
const conflictInfix = ".ferry-conflict-"

// conflictName is the n'th conflict copy name of base at time at: the
// time to the second in UTC and n make it unique; base is cut (at a UTF-8
// boundary) so that the name stays within NAME_MAX.
func conflictName(base string, at time.Time, n int) string {
	suffix := conflictInfix + at.UTC().Format("20060102T150405Z") + "-" + strconv.Itoa(n)
	if over := len(base) + len(suffix) - keypath.MaxNameLen; over > 0 {
		cut := len(base) - over
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		base = base[:cut]
	}
	return base + suffix
}

// maxConflictTries bounds the names tried for one conflict copy.
const maxConflictTries = 100

// conflict keeps the local content of t.rel, a file with changes the
// repository does not have, under a conflict name next to it, and makes
// the object now at the key appear under the name as a released stub
// (FSx lets the repository win and loses the local content; ferry loses
// nothing, invariant 6). The copy is local-only (hsm.Vanished: it never
// had an object) and journaled NEW, so an exporting association exports
// it. The file must not be open (deferred) and its export not in flight.
func (ap *Applier) conflict(ctx context.Context, t hintTarget, st store.State, out *s3.HeadObjectOutput) (HintOutcome, error) {
	im := ap.im
	if err := ap.busy(ctx, t.rel, false); err != nil {
		return HintNoop, err
	}
	cp, at, err := ap.moveAside(ctx, t, st)
	if err != nil {
		return HintNoop, err
	}
	// The mark says what the copy is (ferry hsm state); without it the
	// copy is still kept and its name still says it.
	if err := im.st.SetConflict(cp, store.ConflictMark{Kind: ConflictChanged, Time: at, Of: t.rel}); err != nil {
		im.log.Warn("conflict copy not marked; its name still says what it is", "path", cp, "err", err)
	}
	if _, err := im.st.UpdateState(cp, func(s *store.State) error {
		s.Flags = hsm.Vanished(s.Flags)
		s.ETag = ""
		return nil
	}); err != nil && !errors.Is(err, store.ErrNoState) {
		return HintNoop, err
	}
	made, err := ap.makeEntry(ctx, im.newWatch(&im.n.retries), t, out)
	if err != nil {
		return HintNoop, err
	}
	if err := im.st.SyncDir(path.Dir(t.rel)); err != nil {
		return HintNoop, err
	}
	if j := ap.cfg.Journal; j != nil {
		if err := j.Made(ctx, cp); err != nil {
			im.log.Error("conflict copy not journaled for export; an export task exports it", "path", cp, "err", err)
		}
	}
	ap.invalidate(t.rel)
	ap.invalidate(cp)
	im.n.hints.conflictsChanged.Add(1)
	im.conflicts.add(Conflict{Association: t.a.ID(), Key: t.key, Path: t.rel, CopyPath: cp, Kind: ConflictChanged, Time: at})
	im.log.Warn("conflict: the object of a file with local changes changed; the local content is kept as a conflict copy, the repository version is under the name",
		"dra", t.a.ID(), "key", t.key, "path", t.rel, "copy", cp, "repository_version", made)
	return HintConflict, nil
}

// moveAside renames t.rel to a free conflict name in its directory and
// returns the new path and the time in its name. A name is free when
// nothing has it here (RENAME_NOREPLACE) and its key holds no object.
// The file must still have state st just before the rename: the state
// was read before the HEAD, and an export that ended in between (its
// upload being the "change") made the file clean — the hint is then
// deferred and decided again, never a conflict of a file with itself.
func (ap *Applier) moveAside(ctx context.Context, t hintTarget, st store.State) (string, time.Time, error) {
	im := ap.im
	ap.seq.Lock()
	defer ap.seq.Unlock()
	at := ap.cfg.Now()
	dir, base := path.Dir(t.sub), path.Base(t.sub)
	for n := 1; n <= maxConflictTries; n++ {
		sub := keypath.Join(dir, conflictName(base, at, n))
		cp := t.a.StorePath(sub)
		if _, err := im.st.Lstat(cp); !errors.Is(err, unix.ENOENT) {
			continue
		}
		if key, err := t.a.Key(sub, keypath.File); err == nil {
			if _, found, err := im.head(ctx, im.newWatch(&im.n.retries), t.a, key); err != nil {
				return "", at, err
			} else if found {
				continue
			}
		}
		if err := ap.unchanged(ctx, t.rel, st); err != nil {
			return "", at, err
		}
		err := im.st.Rename(t.rel, cp, store.RenameNoReplace)
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		return cp, at, err
	}
	return "", at, fmt.Errorf("conflict copy of %s: %d names taken", t.rel, maxConflictTries)
}

// unchanged returns a *deferError when rel's state is no longer st (an
// export or a write since it was read) or its export is in flight now.
func (ap *Applier) unchanged(ctx context.Context, rel string, st store.State) error {
	if err := ap.busy(ctx, rel, false); err != nil {
		return err
	}
	cur, err := ap.im.st.GetState(rel)
	if errors.Is(err, store.ErrNoState) {
		cur, err = store.State{}, nil
	}
	if err != nil {
		return err
	}
	if cur.Flags != st.Flags || cur.Version != st.Version || cur.ETag != st.ETag {
		return &deferError{why: rel + " changed meanwhile"}
	}
	return nil
}

// invalidate tells the mount that rel changed behind it.
func (ap *Applier) invalidate(rel string) {
	if ap.im.cfg.Invalidate != nil {
		ap.im.cfg.Invalidate(rel)
	}
}

// applyDir applies a hint of a directory object (key ending in "/"): a
// created one makes the directory appear with its attributes (when its
// parent was listed); a removed one removes the directory if it is empty
// here and in the repository.
func (ap *Applier) applyDir(ctx context.Context, t hintTarget) (HintOutcome, error) {
	im := ap.im
	st, err := im.st.Lstat(t.rel)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		if !t.a.Imports(api.EventDeleted) {
			return HintIgnoredPolicy, nil
		}
		before := im.n.hints.dirsRemoved.Load()
		if err := ap.removeEmptyDirs(ctx, t.a, t.sub); err != nil {
			return HintNoop, err
		}
		if im.n.hints.dirsRemoved.Load() == before {
			return HintNoop, nil
		}
		return HintDeleted, nil
	case err == nil, errors.Is(err, unix.ENOTDIR):
		return HintNoop, nil // a local non-directory has the name: local wins
	case !errors.Is(err, unix.ENOENT):
		return HintNoop, err
	}
	missing, listed, err := ap.listedAncestor(ctx, t.a, t.sub)
	if err != nil || !listed {
		return HintIgnoredUnlisted, err
	}
	if !t.a.Imports(api.EventNew) {
		return HintIgnoredPolicy, nil
	}
	w := im.newWatch(&im.n.retries)
	if has, err := im.anyUnder(ctx, t.a, t.key); err != nil || !has {
		return HintNoop, err // nothing there now: a stale hint
	}
	if made, err := ap.makeDirs(ctx, w, t.a, missing); err != nil || !made {
		return HintNoop, err
	}
	return HintNew, nil
}
