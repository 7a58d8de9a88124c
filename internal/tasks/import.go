package tasks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/importer"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// importMeta is IMPORT_METADATA_FROM_REPOSITORY: the namespace under each
// path (an s3:// prefix inside an association's DataRepositoryPath; none =
// every association) is made to agree with the repository — objects new,
// changed and deleted since the last import — whatever the association's
// AutoImportPolicy (FSx runs import tasks independently of automatic
// import; both may run at once). Each path is one unit, worked in two
// passes:
//
//  1. reconcile: a flat listing of the unit's prefix is merged, in key
//     order, with a walk of its directory (keyWalk). An object whose file
//     has another ETag (CHANGED), and a file known to the repository
//     (hsm.Exists) whose key is no longer listed (DELETED), are applied
//     through the importer's Applier — the code path of events and the
//     sweep, with its conflict rule: a clean file takes the new version
//     (released) or is removed, then its directories while they are empty
//     here and in the repository; a file with local changes is never
//     overwritten or removed (a conflict copy keeps the local content, or
//     the file stays when its object went; invariant 6). The Applier checks
//     each key again (HEAD), so a listing that is already stale changes
//     nothing it should not. A key keypath refuses is a failed file here,
//     named in the report by its s3:// address.
//  2. new objects: importer.ImportAll lists every directory of the unit
//     (listed before or not) and creates what is missing, as the batch
//     import on create does.
//
// A path below an association's prefix is worked through a narrowed view
// of the association (FileSystemPath and DataRepositoryPath both moved
// down by the same relative path), which maps every key to the same store
// path the whole association would.
//
// Counting: TotalCount is the objects acted on — entries created, files
// re-imported, removed or kept as a conflict, keys refused, files that
// could not be changed; SucceededCount the first four, FailedCount the
// rest. A file found agreeing with the repository is not counted.
//
// Known gaps: a key ImportAll refuses after its HEAD (headers saying
// directory on a file key: S3ObjectTypeMismatch) is counted but not named
// in the report; an empty directory no key names any more is left (it may
// be a local mkdir, which ferry cannot tell from one whose directory object
// was deleted); the repository's directory objects' attributes are not
// re-imported.
func (j *job) importMeta() error {
	units, err := j.importUnits()
	if err != nil {
		return err
	}
	if j.r.cfg.S3 == nil {
		return errors.New("import task: no S3 client configured to list the repository")
	}
	for _, un := range units {
		if j.feed.Err() != nil {
			return nil
		}
		if err := j.reconcile(un); err != nil {
			if j.feed.Err() != nil {
				return nil
			}
			return fmt.Errorf("import from s3://%s/%s: %w", un.a.Bucket, un.prefix(), err)
		}
		if err := j.importNew(un); err != nil {
			return err
		}
	}
	return nil
}

// importUnit is one path of an import task: a directory inside an
// association.
type importUnit struct {
	a   *dra.Assoc
	sub string // below the association's directory, "." for all of it
}

// prefix is the unit's key prefix.
func (u importUnit) prefix() string {
	if u.sub == "." {
		return u.a.Prefix
	}
	return u.a.Prefix + u.sub + "/"
}

// importUnits resolves the task's Paths into units. Any invalid path fails
// the task before anything is imported.
func (j *job) importUnits() ([]importUnit, error) {
	as, err := j.associations()
	if err != nil {
		return nil, err
	}
	if len(as.All()) == 0 {
		return nil, errors.New("the file system has no data repository association to import into: create one with create-data-repository-association")
	}
	var units []importUnit
	if len(j.task.Paths) == 0 {
		for _, a := range as.All() {
			units = append(units, importUnit{a, "."})
		}
	}
	for _, p := range j.task.Paths {
		un, err := j.importUnit(as, p)
		if err != nil {
			return nil, fmt.Errorf("path %q: %w", p, err)
		}
		units = append(units, un)
	}
	for _, un := range units {
		if err := usable(un.a); err != nil {
			return nil, err
		}
	}
	return units, nil
}

// importUnit resolves one task path.
func (j *job) importUnit(as *dra.Table, p string) (importUnit, error) {
	u, err := s3x.ParseURL(p)
	if err != nil {
		return importUnit{}, err
	}
	u = u.Dir()
	for _, a := range as.All() {
		if u.Bucket != a.Bucket || !strings.HasPrefix(u.Key, a.Prefix) {
			continue
		}
		if u.Key == a.Prefix {
			return importUnit{a, "."}, nil
		}
		rel, _, err := keypath.ToPath(a.Prefix, u.Key)
		if err != nil {
			return importUnit{}, fmt.Errorf("cannot be a file system path: %w", err)
		}
		// A sub-prefix must name something; the association's own
		// prefix may be empty.
		if err := j.prefixExists(a, u); err != nil {
			return importUnit{}, err
		}
		return importUnit{a, rel}, nil
	}
	return importUnit{}, errors.New("not inside the DataRepositoryPath of any data repository association of the file system")
}

// hintSource names import tasks as the source of the hints they apply
// (catalog.ImportHint.Source).
const hintSource = "task"

// candidate is a file the reconcile pass may have to change.
type candidate struct {
	rel  string // store path
	key  string
	etag string // the listing's ETag (unquoted); "" when the key is not listed
	gone bool   // the key is not listed
}

// reconcile is pass 1 of importMeta for unit un. A failed listing ends it
// before any file is taken for deleted: only keys the listing went past
// are.
func (j *job) reconcile(un importUnit) error {
	st := j.r.cfg.Store
	prefix := un.prefix()
	w := newKeyWalk(st, un.a.StorePath(un.sub), func(rel string, err error) { j.done(err, rel, 0) })
	pool := j.applyPool(un.a.Bucket)
	defer pool.wait()
	// localOnly hands over the walk's entries before key k (all with
	// k == ""): files only local.
	localOnly := func(k string, all bool) {
		for e, ok := w.peek(); ok && (all || e.key < k); e, ok = w.peek() {
			w.next()
			if e.typ == unix.S_IFREG {
				pool.add(candidate{rel: w.rel(e.key), key: prefix + e.key, gone: true})
			}
		}
	}
	err := j.r.cfg.S3.For(un.a.Access()).List(j.feed, un.a.Bucket, s3x.ListOptions{Prefix: prefix}, func(o s3x.Object) error {
		if _, _, err := keypath.ToPath(un.a.Prefix, o.Key); err != nil {
			j.done(err, "s3://"+un.a.Bucket+"/"+o.Key, 0)
			return j.feed.Err()
		}
		k := strings.TrimPrefix(o.Key, prefix)
		localOnly(k, false)
		if e, ok := w.peek(); ok && e.key == k {
			w.next()
			if e.typ == unix.S_IFREG && !o.IsDirMarker() {
				pool.add(candidate{rel: w.rel(k), key: o.Key, etag: strings.Trim(o.ETag, `"`)})
			}
		}
		// A key with nothing local is new: pass 2 imports it.
		return j.feed.Err()
	})
	if err != nil {
		return err
	}
	localOnly("", true)
	return nil
}

// applyPool works candidates Workers at once; see add and wait.
type applyPool struct {
	ch chan candidate
	wg sync.WaitGroup
	j  *job
}

func (j *job) applyPool(bucket string) *applyPool {
	p := &applyPool{ch: make(chan candidate, j.r.cfg.Workers), j: j}
	for range j.r.cfg.Workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for c := range p.ch {
				if j.feed.Err() != nil {
					continue // canceled: candidates not started are dropped
				}
				j.applyCandidate(j.work, bucket, c)
			}
		}()
	}
	return p
}

// add queues c; it blocks while every worker is busy (the walk and the
// listing wait: memory stays bounded).
func (p *applyPool) add(c candidate) {
	select {
	case p.ch <- c:
	case <-p.j.feed.Done():
	}
}

// wait ends the pool once the queued candidates are done.
func (p *applyPool) wait() {
	close(p.ch)
	p.wg.Wait()
}

// applyCandidate applies c when the file's state says it differs from
// the repository: another ETag than the listed one, or known to the
// repository (exists) while its key is not listed. A file awaiting the
// export of its rename (Origin) is left: its object is elsewhere, and the
// exporter moves it.
func (j *job) applyCandidate(ctx context.Context, bucket string, c candidate) {
	st, err := j.r.cfg.Store.GetState(c.rel)
	switch {
	case errors.Is(err, store.ErrNoState):
		if c.gone {
			return // a local file never exported: nothing of it was in the repository
		}
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		return // gone meanwhile
	case err != nil:
		j.done(err, c.rel, 0)
		return
	case st.Origin != "":
		return
	case c.gone && !st.Flags.Has(hsm.Exists):
		return
	case !c.gone && strings.Trim(st.ETag, `"`) == c.etag:
		return
	}
	h := catalog.ImportHint{Source: hintSource, Bucket: bucket, Key: c.key, Kind: catalog.HintCreated, Size: -1, ETag: c.etag}
	if c.gone {
		h.Kind = catalog.HintRemoved
	}
	out, err := j.apply(ctx, h)
	switch {
	case err != nil:
		j.done(err, c.rel, 0)
	case out == importer.HintNew || out == importer.HintChanged || out == importer.HintDeleted || out == importer.HintConflict:
		j.r.log.Debug("import task applied", "task", j.task.TaskId, "key", c.key, "path", c.rel, "outcome", out)
		j.done(nil, c.rel, 0)
	}
	// Otherwise the namespace agreed already (a change since the
	// listing), or the file awaits an export: nothing was done.
}

// apply applies h, waiting while the Applier defers it (the file open
// through the mount, or its export in flight), at most Config.BusyWait;
// a hint still deferred then is returned with its deferral (FileInUse).
func (j *job) apply(ctx context.Context, h catalog.ImportHint) (importer.HintOutcome, error) {
	until := time.Now().Add(j.r.cfg.BusyWait)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		out, err := j.r.cfg.Applier.Apply(ctx, h)
		if !importer.IsDeferred(err) || time.Now().Add(wait).After(until) {
			return out, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-j.feed.Done():
			t.Stop()
			return out, err
		}
	}
}

// importNew is pass 2 of importMeta for unit un: importer.ImportAll of
// the unit's view. Keys keypath refuses were counted and named by pass 1,
// so ImportAll's refusals of those codes are not counted again.
func (j *job) importNew(un importUnit) error {
	view := un.a.API
	if un.sub != "." {
		view.FileSystemPath = strings.TrimSuffix(view.FileSystemPath, "/") + "/" + un.sub
		view.DataRepositoryPath = "s3://" + un.a.Bucket + "/" + un.prefix()
	}
	refused := func(c importer.ImportCounts) int64 {
		n := c.Refused
		for code, k := range c.RefusedByCode {
			if isKeypathCode(code) {
				n -= k
			}
		}
		return n
	}
	var last importer.ImportCounts
	account := func(c importer.ImportCounts) {
		// ImportAll reports cumulative counts; the job counts deltas.
		made := (c.Files + c.Dirs + c.Symlinks) - (last.Files + last.Dirs + last.Symlinks)
		bad := refused(c) - refused(last)
		j.total.Add(made + bad)
		j.ok.Add(made)
		j.failed.Add(bad)
		last = c
	}
	// The import runs under feed: a cancel stops its listing between
	// directories (directories listed so far stay imported).
	c, err := j.r.cfg.Importer.ImportAll(j.feed, view, account)
	account(c)
	if err != nil && j.feed.Err() == nil {
		return fmt.Errorf("import from %s: %w", view.DataRepositoryPath, err)
	}
	return nil
}

// isKeypathCode says whether code is one keypath refuses a key with.
func isKeypathCode(code string) bool {
	switch code {
	case keypath.CodeNotPOSIXCompliant, keypath.CodePathSizeTooLong, keypath.CodeOutsideAssociation, keypath.CodeInvalidPrefix:
		return true
	}
	return false
}

// prefixExists checks that an import path names something in a's
// repository (an invalid path fails the task).
func (j *job) prefixExists(a *dra.Assoc, u s3x.URL) error {
	if j.r.cfg.S3 == nil || u.Key == "" {
		return nil
	}
	errFound := errors.New("found")
	err := j.r.cfg.S3.For(a.Access()).List(j.work, u.Bucket, s3x.ListOptions{Prefix: u.Key}, func(s3x.Object) error { return errFound })
	switch {
	case errors.Is(err, errFound):
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("no object in the repository under s3://%s/%s", u.Bucket, u.Key)
}
