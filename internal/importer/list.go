package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// listCall is one listing of a directory; concurrent callers wait for it.
type listCall struct {
	done chan struct{}
	err  error
}

// EnsureListed makes directory dir (store-relative, "." = root) show its
// repository entries. The first call for a never-listed directory of an
// association serving lazy import lists its prefix and creates stubs,
// subdirectories and symlinks, then records it listed in the catalog.
// Outside associations, or already listed, it returns at once: one map
// lookup, plus one catalog read the first time a directory is seen after a
// start. Concurrent calls for one directory list it once.
func (im *Importer) EnsureListed(ctx context.Context, dir string) error {
	_, err := im.ensureListed(ctx, dir, im.ahead != nil)
	return err
}

// ensureListed is EnsureListed; ahead queues the subdirectories its
// listing makes for listAhead. did reports whether this call listed.
func (im *Importer) ensureListed(ctx context.Context, dir string, ahead bool) (did bool, err error) {
	im.lmu.RLock()
	done := im.listed[dir]
	im.lmu.RUnlock()
	if done {
		return false, nil
	}
	a, in, ok := im.assocFor(dir)
	if !ok || !a.Serves() {
		return false, nil
	}
	if _, ok, err := im.cat.Listed(ctx, keypath.ToCatalog(dir)); err != nil {
		return false, err
	} else if ok {
		im.markListedMem(dir)
		return false, nil
	}
	var onDir func(sub string)
	if ahead {
		onDir = func(sub string) { im.queueAhead(a.StorePath(sub)) }
	}
	return im.listOnce(ctx, a, in, dir, onDir)
}

// maxListAhead bounds the subdirectories waiting to be listed ahead; past
// it new ones are not queued (they are listed when someone looks).
const maxListAhead = 4096

// queueAhead queues directory dir (store-relative), just made by a
// listing, to be listed in the background; a full queue drops it.
func (im *Importer) queueAhead(dir string) {
	select {
	case im.ahead <- dir:
	default:
	}
}

// listAhead lists the queued directories, one level: the listings it does
// queue nothing. A failure is the listing's own (logged by listFailed);
// the directory stays unlisted and is listed when someone looks.
func (im *Importer) listAhead() {
	defer im.wg.Done()
	for {
		select {
		case <-im.ctx.Done():
			return
		case dir := <-im.ahead:
			if did, err := im.ensureListed(im.ctx, dir, false); did && err == nil {
				im.n.listedAhead.Add(1)
			}
		}
	}
}

// Renamed records that directory from (store-relative) is now to: its
// listed records and those below it move with it (catalog MoveListed), so
// the renamed directory is not listed again under its new name — a listing
// would make files deleted there since come back from their objects. The
// mount calls it after renaming a directory when it keeps no move record
// (no export journal); with one, the records move with the record's end
// (catalog FinishMove) and the mount calls MovedListed instead.
func (im *Importer) Renamed(ctx context.Context, from, to string) error {
	if err := im.cat.MoveListed(ctx, keypath.ToCatalog(from), keypath.ToCatalog(to)); err != nil {
		return err
	}
	return im.MovedListed(ctx, from, to)
}

// MovedListed brings the importer up to date with a rename of directory
// from to to whose listed records the catalog has moved (FinishMove): it
// forgets what it remembered below either name, and a directory moved in
// from where nothing is listed counts as listed with everything below it.
// Repeating it is harmless (recovery after a crash).
func (im *Importer) MovedListed(ctx context.Context, from, to string) error {
	im.lmu.Lock()
	for d := range im.listed {
		_, underFrom := keypath.Within(from, d)
		if _, underTo := keypath.Within(to, d); underFrom || underTo {
			delete(im.listed, d)
		}
	}
	im.lmu.Unlock()
	// A directory moved in from where nothing is listed (outside every
	// association that lists) has its content from the file system, not
	// from the prefix it lands on: it and every directory below it count
	// as listed, as a directory made there does (Made).
	fa, _, fok := im.assocFor(from)
	if ta, _, tok := im.assocFor(to); !tok || !ta.Serves() || (fok && fa.Serves()) {
		return nil
	}
	return im.markTreeListed(ctx, to)
}

// Made records that directory dir was made through the mount: its content
// is what the file system holds, so it counts as listed and is never
// listed from its prefix — which would bring back, as stubs, objects of
// files renamed or deleted there since (policy without DELETED).
func (im *Importer) Made(ctx context.Context, dir string) error {
	if a, _, ok := im.assocFor(dir); !ok || !a.Serves() {
		return nil
	}
	if err := im.cat.MarkListed(ctx, catalog.ListedDir{Path: keypath.ToCatalog(dir), ListedAt: time.Now()}); err != nil {
		return err
	}
	im.markListedMem(dir)
	return nil
}

// markTreeListed marks dir and every directory below it listed, 256
// records per catalog write; memory is one batch of entries per level.
func (im *Importer) markTreeListed(ctx context.Context, dir string) error {
	now := time.Now()
	batch := []catalog.ListedDir{{Path: keypath.ToCatalog(dir), ListedAt: now}}
	err := im.st.WalkBelow(ctx, dir, func(p string, typ uint32) error {
		if typ != unix.S_IFDIR {
			return nil
		}
		batch = append(batch, catalog.ListedDir{Path: keypath.ToCatalog(p), ListedAt: now})
		if len(batch) < 256 {
			return nil
		}
		err := im.cat.MarkListed(ctx, batch...)
		batch = batch[:0]
		return err
	})
	if err != nil {
		return err
	}
	return im.cat.MarkListed(ctx, batch...)
}

func (im *Importer) markListedMem(dir string) {
	im.lmu.Lock()
	im.rememberListed(dir)
	im.lmu.Unlock()
}

// maxListedCache bounds the in-memory set of listed directories (memory
// must not grow with the namespace): past it the set starts over, and each
// directory costs one catalog read again the next time it is looked into.
const maxListedCache = 1 << 16

// rememberListed adds dir to the in-memory set; im.lmu is held.
func (im *Importer) rememberListed(dir string) {
	if len(im.listed) >= maxListedCache {
		clear(im.listed)
	}
	im.listed[dir] = true
}

// listOnce lists dir unless a listing of it is running, in which case it
// waits for that one. onDir, if not nil, receives the subdirectories the
// listing found (only when this call did the listing).
//
// Invariant: a directory is recorded listed (in memory here, in the
// catalog by listDir) only after a listing that saw every entry of its
// prefix and made each one (or counted why not). A listing that fails
// midway — the repository stopped answering after some pages or HEADs —
// leaves what it created and records nothing, so the next call lists the
// directory again, keeping those entries (TestPartialListingNotListed).
func (im *Importer) listOnce(ctx context.Context, a *dra.Assoc, in, dir string, onDir func(in string)) (bool, error) {
	im.lmu.Lock()
	if c, ok := im.listing[dir]; ok {
		im.lmu.Unlock()
		select {
		case <-c.done:
			return false, c.err
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	c := &listCall{done: make(chan struct{})}
	im.listing[dir] = c
	im.lmu.Unlock()

	// The listing runs under the importer's context, not the caller's:
	// other callers wait for it, and an interrupted ls must not leave them
	// an error. It is bounded by FetchTimeout without a byte from the
	// repository (listDir), so nobody waits on it longer than that.
	res := make(chan error, 1)
	im.wg.Add(1)
	go func() {
		defer im.wg.Done()
		err := im.listDir(a, in, dir, onDir)
		c.err = err
		im.lmu.Lock()
		delete(im.listing, dir)
		if err == nil {
			im.rememberListed(dir)
		}
		im.lmu.Unlock()
		close(c.done)
		res <- err
	}()
	select {
	case err := <-res:
		return true, err
	case <-ctx.Done():
		return true, ctx.Err()
	}
}

// listDir lists the prefix of dir (in, inside association a) with delimiter
// "/" and creates what it finds, HEADing objects in parallel for their
// POSIX metadata, then marks dir listed.
//
// A repository outage is bounded as for a fetch (docs/architecture.md,
// "Repository outages"): every request of the listing (pages, HEADs,
// symlink bodies) is retried with backoff, each attempt abandoned after
// AttemptTimeout without a byte, and the listing gives up once none of its
// requests has received a byte for FetchTimeout — one log line names the
// endpoint, the prefix and the directory, and the callers get a *ListError
// (EIO). Waiting for a listing slot counts while the listings holding the
// slots hear nothing (acquireList).
//
// Why HEAD: ListObjectsV2 carries no user metadata, and `ls -l` must show
// the mode, owner and mtime of the headers from the first listing. The
// listing asks for MinIO's metadata extension (s3x.ListOptions.WithMetadata):
// an object listed with its headers needs no HEAD. Other stores' objects
// are HEADed, Concurrency at a time while the listing streams (see
// docs/architecture.md, "Listing", for the measurements).
func (im *Importer) listDir(a *dra.Assoc, in, dir string, onDir func(in string)) error {
	ctx := im.ctx
	w := im.newWatch(&im.n.listRetries)
	im.fmu.Lock()
	im.listings[w] = struct{}{}
	im.fmu.Unlock()
	defer func() {
		im.fmu.Lock()
		delete(im.listings, w)
		im.fmu.Unlock()
	}()
	prefix := a.Prefix
	if in != "." {
		k, err := keypath.ToKey(a.Prefix, in, keypath.Dir)
		if err != nil {
			// A local directory whose name no key can have: nothing in
			// the repository can be under it.
			im.markListedMem(dir)
			return nil
		}
		prefix = k
	}
	if err := im.acquireList(ctx, w); err != nil {
		return im.listFailed(a, prefix, dir, err)
	}
	defer func() { <-im.lists }()
	// stop ends the HEADs when the pages fail; a HEAD that fails ends
	// the pages through gctx.
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(lctx)
	g.SetLimit(im.cfg.Concurrency)
	// The HEADs run Concurrency at a time, the entries are created at most
	// createSlots at a time: creating files in one directory from many
	// threads makes them contend for the directory's lock (on this 2-core
	// VM 5,000 temp-create-and-renames took 6.4–7.0 s from 16 threads,
	// 2.3–3.6 s from 4, 3.0–4.1 s from 1; docs/architecture.md, "Listing").
	mk := make(slots, createSlots)
	err := im.list(gctx, w, a, s3x.ListOptions{
		Prefix: prefix, Delimiter: "/", WithMetadata: !im.cfg.HeadEach,
		OnPrefix: func(p string) error {
			sub, kind, err := keypath.ToPath(a.Prefix, p)
			if err != nil {
				im.refuse(keypath.CodeOf(err), p, err.Error())
				return nil
			}
			if kind != keypath.Dir {
				return nil
			}
			g.Go(func() error {
				made, err := im.importDir(gctx, w, a, p, sub, mk)
				if made && onDir != nil {
					onDir(sub)
				}
				return err
			})
			return nil
		},
	}, func(o s3x.Object) error {
		if o.Key == prefix {
			return nil // the directory's own object: applied when its parent listed it
		}
		sub, kind, err := keypath.ToPath(a.Prefix, o.Key)
		if err != nil {
			im.refuse(keypath.CodeOf(err), o.Key, err.Error())
			return nil
		}
		if kind == keypath.Dir {
			// "dir/" objects are rolled into common prefixes by the
			// delimiter; one can only show up here when it is the
			// prefix itself (handled above).
			return nil
		}
		g.Go(func() error { return im.importFile(gctx, w, a, o, sub, mk) })
		return nil
	})
	if err != nil {
		stop()
	}
	// The first failure is the one to report: the pages' error is only
	// the cancel when a HEAD failed first.
	if gerr := g.Wait(); err == nil || gerr != nil && errors.Is(err, context.Canceled) && ctx.Err() == nil {
		err = gerr
	}
	if err != nil {
		return im.listFailed(a, prefix, dir, err)
	}
	if err := im.st.SyncDir(dir); err != nil {
		return err
	}
	if err := im.cat.MarkListed(ctx, catalog.ListedDir{Path: keypath.ToCatalog(dir), ListedAt: time.Now()}); err != nil {
		return err
	}
	im.n.listed.Add(1)
	return nil
}

// listFailed turns the failure of dir's listing (of prefix, association a)
// into its callers' error, logged once whatever the number of callers.
// The importer stopping (Close) is returned as it is.
func (im *Importer) listFailed(a *dra.Assoc, prefix, dir string, err error) error {
	if im.ctx.Err() != nil {
		return im.ctx.Err()
	}
	loc := "s3://" + a.Bucket + "/" + prefix
	var se *stallError
	if errors.As(err, &se) {
		im.n.listTimeouts.Add(1)
		im.log.Error("repository not answering: the listing of the directory fails with EIO",
			"endpoint", im.s3.Endpoint, "dra", a.ID(), "prefix", loc, "dir", dir,
			"no_byte_for", se.quiet.Round(time.Millisecond), "attempts", se.attempts, "fetch_timeout", im.cfg.FetchTimeout, "err", se.last)
		return &ListError{Code: CodeFetchTimeout, Dir: dir, Err: fmt.Errorf(
			"%s at %s sent nothing for %v (%d attempts; last: %s): check that the repository is up and reachable; the next lookup lists the directory again (ferry mount --fetch-timeout sets this bound)",
			loc, im.s3.Endpoint, se.quiet.Round(time.Millisecond), se.attempts, se.last)}
	}
	im.log.Warn("listing of the directory failed", "endpoint", im.s3.Endpoint, "dra", a.ID(), "prefix", loc, "dir", dir, "err", err)
	return &ListError{Code: s3x.CodeOf(err), Dir: dir, Err: err}
}

// acquireList takes a listing slot for the listing of w. While every slot
// is held, the wait counts as the listing's silence as long as the
// listings holding them hear nothing either (a listing queued behind
// listings the repository does not answer fails with them, after one
// bound, not one bound per round of slots); listings that make progress
// are waited for.
func (im *Importer) acquireList(ctx context.Context, w *watch) error {
	began := im.now()
	for {
		select {
		case im.lists <- struct{}{}:
			w.holds.Store(true)
			return nil
		default:
		}
		heard := began
		im.fmu.Lock()
		for o := range im.listings {
			if o.holds.Load() {
				heard = max(heard, time.Duration(o.last.Load()))
			}
		}
		im.fmu.Unlock()
		left := im.cfg.FetchTimeout - (im.now() - heard)
		if left <= 0 {
			return &stallError{quiet: im.now() - heard, last: errNoListSlot.Error()}
		}
		t := time.NewTimer(left)
		select {
		case im.lists <- struct{}{}:
			t.Stop()
			w.holds.Store(true)
			return nil
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

var errNoListSlot = errors.New("every listing slot is held by listings the repository does not answer")

// createSlots bounds the entries one listing creates at once.
const createSlots = 4

// slots is a counting semaphore as a sync.Locker.
type slots chan struct{}

func (s slots) Lock()   { s <- struct{}{} }
func (s slots) Unlock() { <-s }

// list is s3x.Client.List of a's repository (with a's Access) with each
// page's request bounded as a request of w (request) and counted.
func (im *Importer) list(ctx context.Context, w *watch, a *dra.Assoc, opts s3x.ListOptions, fn func(s3x.Object) error) error {
	opts.Send = func(ctx context.Context, page func(context.Context, ...func(*s3.Options)) error) error {
		return im.request(ctx, w, false, func(ctx context.Context, o func(*s3.Options)) error {
			im.n.list.Add(1)
			return page(ctx, o)
		})
	}
	return im.s3.For(a.Access()).List(ctx, a.Bucket, opts, fn)
}

// headListed is what a HEAD of listed object o answers: the listing's own
// fields when it carried the object's metadata (s3x.ListOptions.WithMetadata),
// else a HEAD.
func (im *Importer) headListed(ctx context.Context, w *watch, a *dra.Assoc, o s3x.Object) (*s3.HeadObjectOutput, bool, error) {
	if o.Metadata == nil {
		return im.head(ctx, w, a, o.Key)
	}
	im.n.listedMeta.Add(1)
	return &s3.HeadObjectOutput{
		ContentLength: aws.Int64(o.Size),
		ETag:          aws.String(`"` + o.ETag + `"`),
		LastModified:  aws.Time(o.LastModified),
		Metadata:      o.Metadata,
		StorageClass:  s3types.StorageClass(o.StorageClass),
	}, true, nil
}

// head HEADs key of a's bucket as a request of w (bounded: request);
// found is false for a missing object (404).
func (im *Importer) head(ctx context.Context, w *watch, a *dra.Assoc, key string) (*s3.HeadObjectOutput, bool, error) {
	c, bucket := im.s3.For(a.Access()), a.Bucket
	var out *s3.HeadObjectOutput
	err := im.request(ctx, w, true, func(ctx context.Context, o func(*s3.Options)) (err error) {
		im.n.head.Add(1)
		out, err = c.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}, o)
		return err
	})
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return nil, false, nil
		}
		return nil, false, c.Explain(err, "head", bucket, key)
	}
	return out, true, nil
}

// giveUp says whether a request's failure must fail the listing rather than
// be logged and passed over: the repository not answering (or the listing
// ending), which a later listing may not meet. Passing over it would record
// the directory listed without the entry, or with default attributes, for
// good.
func giveUp(ctx context.Context, err error) bool {
	var se *stallError
	return errors.As(err, &se) || ctx.Err() != nil
}

// importDir creates directory sub of association a for the common prefix p,
// with the attributes of the directory object p when there is one. It
// reports whether the directory is there (created now or before) to be
// descended into. it creates holding mk. An error (the repository not
// answering the HEAD) fails the listing: the directory is not made with
// default attributes it would keep.
func (im *Importer) importDir(ctx context.Context, w *watch, a *dra.Assoc, p, sub string, mk sync.Locker) (bool, error) {
	// A prefix without a directory object has no time of its own: the
	// directory gets the time it appeared (the listing's).
	attrs := im.cfg.Owners.Defaults(true, time.Now())
	out, found, err := im.head(ctx, w, a, p)
	switch {
	case err != nil && giveUp(ctx, err):
		return false, err
	case err != nil:
		im.log.Warn("directory object unreadable; default attributes", "dra", a.ID(), "key", p, "err", err)
	case found:
		d := im.decode(p, out.Metadata, true, aws.ToTime(out.LastModified))
		if err := d.Err(); err != nil {
			im.log.Warn("invalid POSIX metadata on directory object; defaults used for it", "dra", a.ID(), "key", p, "err", err)
		}
		attrs = d.Attrs
	}
	mk.Lock()
	defer mk.Unlock()
	return im.ensureDir(a, p, a.StorePath(sub), attrs), nil
}

// ensureDir makes rel a directory with attrs unless something is there.
//
// Type clashes (key "a" and prefix "a/" in one listing): the directory
// wins, because it may hold any number of objects while the file is one;
// the file object is refused as S3ObjectTypeMismatch. A clean stub already
// made from the file object (its data not local, nothing to lose) is
// replaced by the directory; a local file of the name keeps its place.
func (im *Importer) ensureDir(a *dra.Assoc, key, rel string, attrs posixmeta.Attrs) bool {
	for range 2 {
		st, err := im.st.Lstat(rel)
		switch {
		case errors.Is(err, unix.ENOENT):
			err = im.st.Mkdir(rel, attrs.Perm())
			if errors.Is(err, unix.EEXIST) {
				continue // a racing stub or local mkdir: look again
			}
			if err == nil {
				im.n.dirs.Add(1)
				if err = im.st.Chown(rel, int(attrs.UID), int(attrs.GID)); err == nil {
					err = im.st.Utimes(rel, store.Timespec(attrs.Atime), store.Timespec(attrs.Mtime))
				}
			}
			if err != nil {
				im.log.Error("cannot create directory", "dra", a.ID(), "key", key, "path", rel, "err", err)
				return false
			}
			return true
		case err != nil:
			im.log.Error("cannot create directory", "dra", a.ID(), "key", key, "path", rel, "err", err)
			return false
		case st.Mode&unix.S_IFMT == unix.S_IFDIR:
			return true
		case st.Mode&unix.S_IFMT == unix.S_IFREG && im.cleanStub(rel):
			// The file object of the same name lost (see above).
			if err := im.st.Unlink(rel); err != nil && !errors.Is(err, unix.ENOENT) {
				im.log.Error("cannot replace stub by directory", "path", rel, "err", err)
				return false
			}
			im.refuse(CodeTypeMismatch, strings.TrimSuffix(key, "/"), "a file object and a directory prefix share the name; the directory wins")
			continue
		default:
			im.localConflict(a, key, rel)
			return false
		}
	}
	return false
}

// cleanStub reports whether rel is a stub whose data is all in the repository
// (released, so never dirty: hsm.Flags.Check), which an import may remove
// without losing anything (invariant 6, docs/invariants.md).
func (im *Importer) cleanStub(rel string) bool {
	st, err := im.st.GetState(rel)
	return err == nil && st.Flags.Has(hsm.Released) && !hsm.Unexported(st.Flags)
}

func (im *Importer) localConflict(a *dra.Assoc, key, rel string) {
	im.n.local.Add(1)
	im.log.Info("local entry hides a repository entry of the same name (local wins)", "dra", a.ID(), "key", key, "path", rel)
}

// maxSymlinkBody bounds the body read of a symlink object.
const maxSymlinkBody = posixmeta.MaxSymlinkTarget

// importFile creates the stub or symlink of object o at sub; it creates holding mk
// while it creates.
func (im *Importer) importFile(ctx context.Context, w *watch, a *dra.Assoc, o s3x.Object, sub string, mk sync.Locker) error {
	rel := a.StorePath(sub)
	out, found, err := im.headListed(ctx, w, a, o)
	if err != nil {
		return err
	}
	if !found {
		return nil // deleted since the listing
	}
	d := im.decode(o.Key, out.Metadata, false, aws.ToTime(out.LastModified))
	for _, p := range d.Problems {
		if p.Code == posixmeta.CodeTypeMismatch {
			im.refuse(CodeTypeMismatch, o.Key, p.Error())
			return nil
		}
	}
	if err := d.Err(); err != nil {
		im.log.Warn("invalid POSIX metadata; defaults used for it", "dra", a.ID(), "key", o.Key, "err", err)
	}
	attrs := d.Attrs
	etag := aws.ToString(out.ETag)
	if sc := out.StorageClass; sc == "GLACIER" || sc == "DEEP_ARCHIVE" {
		im.log.Info("object in an archive storage class: imported, but reads fail until it is restored in S3", "code", CodeUnsupportedTier, "dra", a.ID(), "key", o.Key, "storage_class", sc)
	}
	if attrs.IsSymlink() {
		return im.importSymlink(ctx, w, a, o.Key, etag, aws.ToInt64(out.ContentLength), rel, attrs, mk)
	}
	mk.Lock()
	err = im.st.CreateStub(rel, store.Stub{
		Size: aws.ToInt64(out.ContentLength),
		Mode: attrs.Perm(),
		UID:  int(attrs.UID), GID: int(attrs.GID),
		Mtime: attrs.Mtime, Atime: attrs.Atime,
		ETag:      etag,
		Flags:     hsm.Imported(),
		ChunkSize: im.chunkFor(a, aws.ToInt64(out.ContentLength)),
	})
	mk.Unlock()
	switch {
	case err == nil:
		im.n.stubs.Add(1)
	case errors.Is(err, unix.EEXIST):
		im.existing(a, o.Key, rel, func() bool {
			st, err := im.st.GetState(rel)
			return err == nil && st.ETag == etag && !hsm.Unexported(st.Flags)
		})
	default:
		im.log.Error("cannot create stub", "dra", a.ID(), "key", o.Key, "path", rel, "err", err)
	}
	return nil
}

// existing reports why a file object was not created at rel: a directory
// there (a type clash, the directory wins) or a local entry (local wins).
// ours says whether the entry is the one the object makes, left by an
// earlier listing (one cut by an outage, or a batch import's re-listing):
// nothing to report.
func (im *Importer) existing(a *dra.Assoc, key, rel string, ours func() bool) {
	if st, err := im.st.Lstat(rel); err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		im.refuse(CodeTypeMismatch, key, "a file object and a directory share the name; the directory wins")
		return
	}
	if ours() {
		return
	}
	im.localConflict(a, key, rel)
}

// importSymlink GETs the body of a symlink object and creates the link.
// The target is stored verbatim and never followed by the daemon
// (invariant 4: the store resolves nothing through symlinks). The
// repository not answering the GET fails the listing (the link would be
// missing for good from a directory recorded listed); an object changed or
// gone since the HEAD is passed over.
func (im *Importer) importSymlink(ctx context.Context, w *watch, a *dra.Assoc, key, etag string, size int64, rel string, attrs posixmeta.Attrs, mk sync.Locker) error {
	if size > maxSymlinkBody {
		im.refuse(keypath.CodeNotPOSIXCompliant, key, "symlink object body longer than PATH_MAX")
		return nil
	}
	body, err := im.getSmall(ctx, w, a, key, etag)
	if err != nil && giveUp(ctx, err) {
		return err
	}
	if err != nil {
		im.log.Error("cannot read symlink object", "dra", a.ID(), "key", key, "err", err)
		return nil
	}
	if err := posixmeta.CheckSymlinkTarget(body); err != nil {
		im.refuse(keypath.CodeNotPOSIXCompliant, key, err.Error())
		return nil
	}
	mk.Lock()
	defer mk.Unlock()
	switch err := im.st.Symlink(string(body), rel); {
	case errors.Is(err, unix.EEXIST):
		im.existing(a, key, rel, func() bool {
			t, err := im.st.Readlink(rel)
			return err == nil && t == string(body)
		})
		return nil
	case err != nil:
		im.log.Error("cannot create symlink", "dra", a.ID(), "key", key, "path", rel, "err", err)
		return nil
	}
	im.n.links.Add(1)
	if err := im.st.Chown(rel, int(attrs.UID), int(attrs.GID)); err != nil {
		im.log.Warn("cannot set symlink owner", "path", rel, "err", err)
	}
	if err := im.st.Utimes(rel, store.Timespec(attrs.Atime), store.Timespec(attrs.Mtime)); err != nil {
		im.log.Warn("cannot set symlink times", "path", rel, "err", err)
	}
	return nil
}

// getSmall GETs a whole small object of a's bucket, if it still has
// etag, as a request of w (bounded: request).
func (im *Importer) getSmall(ctx context.Context, w *watch, a *dra.Assoc, key, etag string) ([]byte, error) {
	c, bucket := im.s3.For(a.Access()), a.Bucket
	var body []byte
	err := im.request(ctx, w, true, func(ctx context.Context, o func(*s3.Options)) error {
		im.n.get.Add(1)
		out, err := c.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), IfMatch: aws.String(etag)}, o)
		if err != nil {
			return err
		}
		defer out.Body.Close()
		body, err = io.ReadAll(io.LimitReader(out.Body, maxSymlinkBody+1))
		return err
	})
	if err != nil {
		return nil, c.Explain(err, "get", bucket, key)
	}
	return body, nil
}

// ImportCounts are the progress and result of ImportAll.
type ImportCounts struct {
	Objects, Files, Dirs, Symlinks, Refused int64
	RefusedByCode                           map[string]int64
}

// ImportAll imports the metadata of association a's whole prefix (batch
// import on create, IMPORT_METADATA tasks): every directory is listed, the
// listing of different directories runs in parallel, and each is marked
// listed. Directories listed before are listed again, so new objects
// appear; existing entries are never overwritten. progress, if not nil,
// is called after each directory with the counts so far (from one
// goroutine at a time).
func (im *Importer) ImportAll(ctx context.Context, ra api.DataRepositoryAssociation, progress func(ImportCounts)) (ImportCounts, error) {
	// ra may be a view of part of the association (an import task's
	// path); its stubs take the chunk size of the association as
	// published, which an update may have changed since ra was read.
	loc, err := dra.Locate(ra)
	if err != nil {
		return ImportCounts{}, err
	}
	a := &dra.Assoc{API: ra, Location: loc}
	if b, ok := im.table().ByID(ra.AssociationId); ok {
		a.API.ImportedFileChunkSize = b.API.ImportedFileChunkSize
	}
	start := im.Stats()
	var pmu sync.Mutex
	counts := func() ImportCounts {
		s := im.Stats()
		c := ImportCounts{
			Files: s.StubsCreated - start.StubsCreated, Dirs: s.DirsCreated - start.DirsCreated,
			Symlinks: s.SymlinksCreated - start.SymlinksCreated, Refused: s.Refused - start.Refused,
			RefusedByCode: map[string]int64{},
		}
		for k, v := range s.RefusedByCode {
			if d := v - start.RefusedByCode[k]; d > 0 {
				c.RefusedByCode[k] = d
			}
		}
		c.Objects = c.Files + c.Dirs + c.Symlinks + c.Refused
		return c
	}
	if err := im.st.MkdirAll(a.Dir, 0o755); err != nil {
		return ImportCounts{}, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(im.cfg.Concurrency/4 + 1)
	var failed atomic.Pointer[error]
	var walk func(in string)
	walk = func(in string) {
		if gctx.Err() != nil {
			return
		}
		dir := a.StorePath(in)
		var subs []string
		var smu sync.Mutex
		var err error
		for did := false; !did && err == nil; {
			// A lazy listing of dir running already is waited for, then
			// dir is listed again by this walk, which needs its
			// subdirectories.
			did, err = im.listOnce(gctx, a, in, dir, func(sub string) {
				smu.Lock()
				subs = append(subs, sub)
				smu.Unlock()
			})
		}
		if err != nil {
			failed.CompareAndSwap(nil, &err)
			return
		}
		if progress != nil {
			pmu.Lock()
			progress(counts())
			pmu.Unlock()
		}
		for _, sub := range subs {
			sub := sub
			// Bounded: when every worker is busy the walk goes on in
			// this goroutine (depth first), so goroutines never pile up.
			if !g.TryGo(func() error { walk(sub); return nil }) {
				walk(sub)
			}
		}
	}
	walk(".")
	_ = g.Wait()
	c := counts()
	if p := failed.Load(); p != nil {
		return c, *p
	}
	return c, ctx.Err()
}
