// Package importer owns lazy import from a data repository into the store:
// listing a directory's prefix into stubs, subdirectories and symlinks the
// first time the mount looks into it (EnsureListed), batch import of a whole
// association (ImportAll), and hydration of released files by ranged GETs
// with readahead (EnsureData, Restore), plus dropping local data again
// (Release). An Applier applies import hints from bucket events (auto-import:
// NEW, CHANGED, DELETED under the association's policy, conflicts kept as
// conflict copies; apply.go).
//
// It sits between the mount (internal/fusefs, which calls EnsureListed and
// EnsureData and nothing else) and the store, catalog and S3 client. Nothing
// here is FUSE-specific, so every rule is testable without a mount.
//
// # Concurrency
//
// Every goroutine the importer starts belongs to it and stops with Close:
// directory listings (at most Concurrency/4+1 at once), HEAD/GET requests
// (at most Concurrency in flight, shared by listings, reads, readahead and
// restores) and the readahead fetches of each file (at most Readahead ×
// ChunkSize bytes ahead per file). No lock is held across a network request.
//
// # Repository outages
//
// A fetch of file data retries with backoff and gives up once the
// repository has sent no byte for Config.FetchTimeout; its readers get
// EIO (a *ReadError with CodeFetchTimeout) and one log line names the
// endpoint and the file. A directory's first listing is bounded the same
// way, its pages and HEADs together: it fails with a *ListError (EIO) and
// one log line naming the endpoint, the prefix and the directory, and the
// directory stays unlisted, so the next lookup lists it again. A caller
// stops waiting when its context ends (FUSE_INTERRUPT); the fetch or
// listing goes on under the importer's context within the same bound, for
// the other callers waiting for it. Stats shows fetches and listings in
// flight and stalled.
//
// See docs/architecture.md ("Lazy import") for the measured choices.
package importer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/posixmeta"
	"github.com/ferry-hpc/ferry/internal/s3x"
	"github.com/ferry-hpc/ferry/internal/store"
)

// Config wires an Importer to the store, catalog and repository client.
type Config struct {
	Store   *store.Store
	Catalog catalog.Catalog // listed dirs, chunk maps (store.SetMapStore is the daemon's job)
	S3      *s3x.Client
	Logger  *slog.Logger
	// InUse reports whether the store-relative path is open through the
	// mount (fusefs.FS.InUse). nil = never.
	InUse func(rel string) bool
	// Invalidate tells the kernel that rel changed behind the mount (a
	// re-import after the object changed, a release): the mount drops the
	// name from its dentry cache and the inode's cached pages
	// (fusefs.FS.Invalidate). nil = nothing to tell.
	Invalidate func(rel string)
	// Concurrency bounds S3 requests (HEAD, GET) in flight (default 16).
	Concurrency int
	// ChunkSize is the largest unit of a released file's chunk map, in
	// bytes (default DefaultChunkSize). A stub's unit is the smallest
	// power of two from MinChunkSize up that keeps its map inline
	// (chunkFor), at most this; an association whose ImportedFileChunkSize
	// is smaller uses that instead.
	ChunkSize int64
	// Readahead bounds what a sequential reader of one file has fetched
	// ahead of its reads: Readahead × ChunkSize bytes (default
	// DefaultReadahead: 64 MiB; -1 = none). The window adapts below that
	// bound (item.follow).
	Readahead int
	// FetchTimeout bounds a repository outage as a reader sees it: a fetch
	// of a released file's data, or a directory's listing, that has
	// received no byte from the repository for this long (connection
	// refused, no answer, a body that stopped) gives up, and the reads,
	// lookups and readdirs waiting for it fail with EIO (default
	// DefaultFetchTimeout). Until then it retries with backoff; each
	// attempt is abandoned after AttemptTimeout() without a byte.
	FetchTimeout time.Duration
	// ListAhead is how many listings of subdirectories run in the
	// background after a directory's first listing through EnsureListed:
	// the directories that listing found are listed next, one level down,
	// before anyone looks into them (a `find` or `ls -R` then waits for
	// none of them). 0 = none; ferry mount uses DefaultListAhead.
	ListAhead int
	// HeadEach HEADs every listed object for its metadata, even where the
	// store can list it with the objects (s3x.ListOptions.WithMetadata):
	// for measurements and tests of the HEAD path.
	HeadEach bool
	// Owners gives imported files and directories their owner (zero: the
	// owner headers, root:root without them, as FSx). A daemon that may
	// not chown to others passes a Restricted rule (ferry mount; see
	// posixmeta.Owners).
	Owners posixmeta.Owners
}

// Defaults, chosen by measurement (docs/architecture.md, "Lazy import").
const (
	DefaultConcurrency = 16
	DefaultChunkSize   = 4 << 20
	DefaultReadahead   = 16
	// DefaultListAhead leaves most listing slots (Concurrency/4+1) to the
	// listings someone waits for.
	DefaultListAhead = 2
	// DefaultFetchTimeout: long enough to ride out what a repository
	// recovers from by itself — a restarted MinIO or RGW node, a load
	// balancer failing over, a burst of 503 SlowDown (tens of seconds) —
	// and short enough that a job reading through an outage fails with a
	// clear error within a minute instead of hanging (docs/architecture.md,
	// "Repository outages").
	DefaultFetchTimeout = 60 * time.Second
	// maxAttemptTimeout caps one attempt's wait for a byte (see
	// AttemptTimeout).
	maxAttemptTimeout = 10 * time.Second
	// maxItems is how many idle per-file hydration states are kept (each
	// holds one descriptor) before idle ones are dropped.
	maxItems = 256
)

// Error codes the importer counts and reports, as FSx names them.
const (
	CodeTypeMismatch    = "S3ObjectTypeMismatch"
	CodeUnsupportedTier = "S3ObjectInUnsupportedTier"
	CodeChanged         = "S3ObjectChanged"
	CodeLocalExists     = "LocalFileExists"
	// CodeFetchTimeout: the repository sent nothing for FetchTimeout.
	CodeFetchTimeout = "FetchTimeout"
)

// Stats are the importer's counters, for /metrics and tests.
type Stats struct {
	ListRequests    int64 // ListObjectsV2 pages
	HeadRequests    int64
	ListedMetadata  int64 // objects whose metadata came with their listing (no HEAD)
	ListedAhead     int64 // directories listed in the background (Config.ListAhead)
	GetRequests     int64 // ranged GETs of file data and symlink bodies
	BytesFetched    int64 // file data written into the store
	StubsCreated    int64
	DirsCreated     int64
	SymlinksCreated int64
	DirsListed      int64
	Refused         int64 // keys refused (see RefusedByCode)
	RefusedByCode   map[string]int64
	LocalConflicts  int64 // repository entries hidden by a local entry of the same name
	Reimports       int64 // stubs re-created after their object changed (412)
	Changed         int64 // reads failed because the object changed
	DedupWaits      int64 // reads that waited for a fetch already in flight
	Readahead       int64 // chunks fetched ahead of the reader
	ReadaheadBytes  int64 // bytes of those chunks
	Commits         int64 // fdatasync+mark rounds (each commits one or more fetched ranges)
	Released        int64
	// Requests repeated after a failure or a stall: GETs of file data,
	// and the requests of listings (ListRetries).
	FetchRetries int64
	// Fetches and listings given up after FetchTimeout without a byte
	// (reads, lookups, readdirs failed with EIO); ListTimeouts of them
	// listings.
	FetchTimeouts int64
	ListRetries   int64 // of FetchRetries: ListObjectsV2 pages, HEADs and symlink GETs of listings
	ListTimeouts  int64 // of FetchTimeouts: directory listings given up

	// Gauges, at the moment of the snapshot. Listings count as fetches
	// (the /metrics names say fetches), and are also given apart.
	FetchesInFlight  int64   // fetches of file data (demand, readahead, restore) and directory listings running
	FetchesStalled   int64   // of those, the ones that received no byte for AttemptTimeout or longer
	StalledSeconds   float64 // the longest time without a byte among the stalled ones (0: none)
	ListingsInFlight int64   // of FetchesInFlight, directory listings
	ListingsStalled  int64   // of FetchesStalled, directory listings

	// Hints counts import hints applied by an Applier (auto-import).
	Hints HintStats
}

type counters struct {
	list, head, listedMeta, get, bytes, stubs, dirs, links, listed atomic.Int64
	refused, listedAhead                                           atomic.Int64
	local, reimports, changed, dedup, readahead, released, commits atomic.Int64
	readaheadBytes                                                 atomic.Int64
	retries, timeouts, listRetries, listTimeouts                   atomic.Int64
	hints                                                          hintCounters

	mu     sync.Mutex
	byCode map[string]int64
}

// Importer imports lazily from the repositories of a file system's
// associations. It is safe for concurrent use.
type Importer struct {
	cfg   Config
	st    *store.Store
	cat   catalog.Catalog
	s3    *s3x.Client
	log   *slog.Logger
	ctx   context.Context // lives until Close; every fetch and listing runs under it
	stop  context.CancelFunc
	wg    sync.WaitGroup
	req   chan struct{} // S3 HEAD/GET requests in flight
	lists chan struct{} // directory listings in flight
	ahead chan string   // subdirectories (store-relative) to list in the background (list.go)

	assocs atomic.Pointer[dra.Table]

	lmu     sync.RWMutex
	listed  map[string]bool      // store-relative directories known listed
	listing map[string]*listCall // directories being listed now

	imu   sync.Mutex
	items map[fileKey]*item // per-file hydration state

	rmu      sync.Mutex
	restores map[string]*atomic.Int64 // rel → bytes moved by a running Restore

	// Fetches and listings running, for the stall gauges (see Stats) and
	// the listing slots' wait (acquireList); fetch.last and watch.last
	// are on the clock of epoch (monotonic).
	fmu      sync.Mutex
	fetching map[*fetch]struct{}
	listings map[*watch]struct{}
	epoch    time.Time

	n counters

	conflicts conflictLog // the newest conflicts (RecentConflicts)

	// ownersReplaced: the first object whose owner headers o.Owners
	// could not give has been logged (one line at Info, the rest at Debug).
	ownersReplaced atomic.Bool
}

// New returns an Importer. Call SetAssociations before it serves anything,
// and Close when done.
func New(cfg Config) *Importer {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	if cfg.Readahead == 0 {
		cfg.Readahead = DefaultReadahead
	}
	if cfg.Readahead < 0 {
		cfg.Readahead = 0
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = DefaultFetchTimeout
	}
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	im := &Importer{
		cfg: cfg, st: cfg.Store, cat: cfg.Catalog, s3: cfg.S3, log: lg,
		ctx: ctx, stop: stop,
		req:      make(chan struct{}, cfg.Concurrency),
		lists:    make(chan struct{}, cfg.Concurrency/4+1),
		listed:   map[string]bool{},
		listing:  map[string]*listCall{},
		items:    map[fileKey]*item{},
		restores: map[string]*atomic.Int64{},
		fetching: map[*fetch]struct{}{},
		listings: map[*watch]struct{}{},
		epoch:    time.Now(),
	}
	im.n.byCode = map[string]int64{}
	if cfg.ListAhead > 0 {
		im.ahead = make(chan string, maxListAhead)
		for range cfg.ListAhead {
			im.wg.Add(1)
			go im.listAhead()
		}
	}
	return im
}

// decode reads an object's POSIX attributes (posixmeta.Decode) and gives
// them their owner under Config.Owners.
func (im *Importer) decode(key string, meta map[string]string, dir bool, lastModified time.Time) posixmeta.Decoded {
	d := posixmeta.Decode(meta, dir, lastModified)
	uid, gid := d.Attrs.UID, d.Attrs.GID
	if im.cfg.Owners.Apply(&d) {
		lg := im.log.Debug
		if !im.ownersReplaced.Swap(true) {
			lg = im.log.Info
		}
		lg("owner headers name an owner this daemon cannot give files to (no CAP_CHOWN); imported as its own",
			"key", key, "header_uid", uid, "header_gid", gid, "uid", d.Attrs.UID, "gid", d.Attrs.GID)
	}
	return d
}

// Close stops every listing, fetch and readahead of the importer and waits
// for them. Calls in progress fail with context.Canceled.
func (im *Importer) Close() error {
	im.stop()
	im.wg.Wait()
	im.imu.Lock()
	defer im.imu.Unlock()
	for k, it := range im.items {
		it.wf.Close()
		delete(im.items, k)
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (im *Importer) Stats() Stats {
	n := &im.n
	s := Stats{
		ListRequests: n.list.Load(), HeadRequests: n.head.Load(), ListedMetadata: n.listedMeta.Load(), ListedAhead: n.listedAhead.Load(), GetRequests: n.get.Load(),
		BytesFetched: n.bytes.Load(), StubsCreated: n.stubs.Load(), DirsCreated: n.dirs.Load(),
		SymlinksCreated: n.links.Load(), DirsListed: n.listed.Load(), Refused: n.refused.Load(),
		LocalConflicts: n.local.Load(), Reimports: n.reimports.Load(), Changed: n.changed.Load(),
		DedupWaits: n.dedup.Load(), Readahead: n.readahead.Load(), ReadaheadBytes: n.readaheadBytes.Load(), Released: n.released.Load(),
		Commits: n.commits.Load(), ListRetries: n.listRetries.Load(), ListTimeouts: n.listTimeouts.Load(),
		RefusedByCode: map[string]int64{}, Hints: n.hints.stats(),
	}
	s.FetchRetries = n.retries.Load() + s.ListRetries
	s.FetchTimeouts = n.timeouts.Load() + s.ListTimeouts
	stall := im.AttemptTimeout()
	now := im.now()
	stalled := func(last int64) bool {
		quiet := now - time.Duration(last)
		if quiet < stall {
			return false
		}
		s.FetchesStalled++
		s.StalledSeconds = max(s.StalledSeconds, quiet.Seconds())
		return true
	}
	im.fmu.Lock()
	s.ListingsInFlight = int64(len(im.listings))
	s.FetchesInFlight = int64(len(im.fetching)) + s.ListingsInFlight
	for fe := range im.fetching {
		stalled(fe.last.Load())
	}
	for w := range im.listings {
		if stalled(w.last.Load()) {
			s.ListingsStalled++
		}
	}
	im.fmu.Unlock()
	n.mu.Lock()
	for k, v := range n.byCode {
		s.RefusedByCode[k] = v
	}
	n.mu.Unlock()
	return s
}

// AttemptTimeout is how long one attempt of a fetch waits for a byte (the
// response's headers, then each piece of its body) before it is abandoned
// and retried on a new connection: a third of FetchTimeout, at most 10 s,
// so a server that accepted the connection and hangs costs a few attempts,
// not the whole bound. A fetch without a byte for this long counts as
// stalled in Stats.
func (im *Importer) AttemptTimeout() time.Duration {
	return min(im.cfg.FetchTimeout/3, maxAttemptTimeout)
}

// now is the importer's monotonic clock (fetch.last is on it).
func (im *Importer) now() time.Duration { return time.Since(im.epoch) }

// refuse counts and logs a repository entry that is not imported.
func (im *Importer) refuse(code, key, reason string) {
	im.n.refused.Add(1)
	im.n.mu.Lock()
	im.n.byCode[code]++
	im.n.mu.Unlock()
	im.log.Warn("repository entry not imported", "code", code, "key", key, "reason", reason)
}

// SetAssociations gives the importer every association of the file system,
// whatever its lifecycle (see the package contract in docs).
func (im *Importer) SetAssociations(t *dra.Table) { im.assocs.Store(t) }

// table is the associations as last given (an empty table before).
func (im *Importer) table() *dra.Table { return im.assocs.Load() }

// assocFor returns the association whose directory holds rel and rel's
// path inside it.
func (im *Importer) assocFor(rel string) (*dra.Assoc, string, bool) {
	return im.table().Holder(rel)
}

// chunkOf is the largest chunk map unit of a's stubs: the importer's
// ChunkSize, or the association's ImportedFileChunkSize when smaller.
func (im *Importer) chunkOf(a *dra.Assoc) int64 {
	chunk := im.cfg.ChunkSize
	if c := int64(a.API.ImportedFileChunkSize) << 20; c > 0 && c < chunk {
		chunk = c
	}
	return chunk
}

// MinChunkSize is the smallest chunk map unit a stub gets: what a read of
// a few KiB at a random place fetches (docs/architecture.md, "Chunk map
// unit and fetches").
const MinChunkSize = 64 << 10

// chunkFor is the chunk map unit of a stub of size bytes under a: the
// smallest power of two from MinChunkSize up whose map stays inline in the
// state xattr (store.MaxInlineChunks chunks), and at most chunkOf(a). A
// 256 MiB or 1 GiB file gets 64 KiB chunks, a 4 GiB file 256 KiB, a 64 GiB
// file 4 MiB. The unit bounds what one read at a random place fetches;
// sequential reads fetch in long GETs of many chunks (readahead) whatever
// it is.
func (im *Importer) chunkFor(a *dra.Assoc, size int64) int64 {
	top := im.chunkOf(a)
	chunk := int64(MinChunkSize)
	for chunk < top && store.Chunks(size, chunk) > store.MaxInlineChunks {
		chunk *= 2
	}
	return min(chunk, top)
}

// ReadError is a failed read of a released file. The mount answers EIO
// whatever the cause (a network errno from S3 must not reach a reader as if
// the file system said it).
type ReadError struct {
	Code string // CodeChanged, CodeUnsupportedTier, or the S3 code
	Path string
	Err  error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("read %s: %v", e.Path, e.Err)
}
func (e *ReadError) Unwrap() error { return e.Err }

// As makes store.Errno (errors.As with *unix.Errno) answer EIO.
func (e *ReadError) As(target any) bool {
	if p, ok := target.(*unix.Errno); ok {
		*p = unix.EIO
		return true
	}
	return false
}

// ListError is a failed listing of a directory from its repository. The
// mount answers EIO whatever the cause, as for a ReadError: a network errno
// of the S3 client (ECONNREFUSED…) must not reach `ls` as if the file
// system said it. The directory stays unlisted: the next lookup or readdir
// lists it again.
type ListError struct {
	Code string // CodeFetchTimeout, or the S3 code
	Dir  string // store-relative directory
	Err  error
}

func (e *ListError) Error() string {
	return fmt.Sprintf("list %s: %v", e.Dir, e.Err)
}
func (e *ListError) Unwrap() error { return e.Err }

// As makes store.Errno (errors.As with *unix.Errno) answer EIO.
func (e *ListError) As(target any) bool {
	if p, ok := target.(*unix.Errno); ok {
		*p = unix.EIO
		return true
	}
	return false
}

// ErrObjectChanged: the object's ETag no longer matches the stub's.
var ErrObjectChanged = errors.New("the object changed in the repository since the file was imported (ETag mismatch); the file is re-imported, open it again to read the new version")

// ErrUnsupportedTier: the object is in an archive storage class.
var ErrUnsupportedTier = errors.New("the object is in an archive storage class (GLACIER or DEEP_ARCHIVE); restore it in S3 first (aws s3api restore-object), then read again")
