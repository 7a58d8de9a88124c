// Package catalog owns what ferry must query rather than read from a file's
// extended attributes (docs/invariants.md, "File states"): the file system's
// identity, data repository associations and their ClientRequestTokens, the
// directories already listed for lazy import, chunk maps too large for an
// xattr, the export journal, data repository tasks, last-access times for
// release, and the queue of import hints from bucket events.
//
// It is one interface, Catalog, with one engine per database (the JuiceFS
// model: pkg/meta with several engines and one shared test suite). Open picks
// the engine from a catalog URL:
//
//	sqlite:///abs/path/catalog.db   SQLite (modernc.org/sqlite, no cgo)
//	sqlite://relative/catalog.db    SQLite, relative to the working directory
//	""                              SQLite in <store>/.ferry/catalog.db
//	postgres://… postgresql://…     PostgreSQL (pgx v5; OpenPostgres)
//
// Every engine passes catalogtest.Run. Paths kept in the catalog are
// store-relative in the form internal/store uses ("a/b", "" for the root);
// a path prefix P selects P itself and everything below P/ ("" selects all).
//
// # Durability
//
// Writes that acknowledge something to a user — journal appends (an fsync
// returns only after its entry is durable: invariant 1, docs/invariants.md),
// associations, tokens, tasks, chunk maps, the identity, import hints (a
// sender told "received" does not send the event again) — are durable when
// the call returns, also across a power cut. Journal appends marked Relaxed
// (the mount's close and metadata calls) are committed before Append
// returns, so they survive a crash of the process, and reach the disk with
// the next durable commit; the daemon recovers after a machine crash with
// an export task (see "Write path" in docs/architecture.md). Writes that only save work —
// directories listed, access times — survive a crash of the process but may
// be lost with the last second of a power cut; losing them costs a second
// listing or a less exact release order, never data. The exporter's journal
// calls (Claim, ExtendLease, Complete, Fail, Park, ReleaseClaims) are of that
// kind too: losing one exports a path again, which is idempotent.
package catalog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/store"
)

// SpaceKeeper is a catalog that keeps space for itself on a file system it
// may share with the store (the SQLite engine's reserve, reserve.go). Room
// is nil while the store's other writers may take space there; ENOSPC
// while the catalog runs on the space it kept, until as much is free again
// (invariant 1 in docs/invariants.md: export resumes after a full disk).
// The write path and the importer's fetches call it before they take
// space.
type SpaceKeeper interface {
	Room() error
}

// Catalog is the metadata interface every engine implements. All methods are
// safe for concurrent use. Methods taking a context stop waiting when it is
// done; a write whose context ends while it waits is not acknowledged (it may
// or may not have been committed).
type Catalog interface {
	// FileSystem returns the identity recorded by InitFileSystem, or
	// ErrNotFound in a catalog never initialised.
	FileSystem(ctx context.Context) (FileSystemInfo, error)
	// InitFileSystem records want as the identity if the catalog has none
	// and returns the identity in force (the existing one when there is).
	InitFileSystem(ctx context.Context, want FileSystemInfo) (FileSystemInfo, error)

	// CreateAssociation inserts a, and tok (when not nil) in the same
	// transaction. When tok's (Operation, Token) is already recorded
	// nothing is inserted and the existing record is returned with
	// created=false (dra.SaveToken's contract). An id already used is
	// ErrExists.
	CreateAssociation(ctx context.Context, a api.DataRepositoryAssociation, tok *dra.TokenRecord) (prev dra.TokenRecord, created bool, err error)
	// Association returns one association or ErrNotFound.
	Association(ctx context.Context, id string) (api.DataRepositoryAssociation, error)
	// Associations returns every association in (CreationTime, id) order
	// (a file system has at most 8).
	Associations(ctx context.Context) ([]api.DataRepositoryAssociation, error)
	// DescribeAssociations answers a parsed describe request with one page
	// and the cursor of its last item when more follow (q.NextToken makes
	// the NextToken). Asked for ids, every id must exist, else
	// DataRepositoryAssociationNotFound.
	DescribeAssociations(ctx context.Context, q dra.Query) ([]api.DataRepositoryAssociation, *dra.Cursor, error)
	// UpdateAssociation reads the association, lets fn change it and
	// writes it back, with tok (when not nil), in one transaction (fn must
	// not change its id, file system id, paths or creation time). An error
	// from fn aborts the update and is returned as is. When tok's
	// (Operation, Token) is already recorded fn is not called: the
	// existing record is returned with updated=false and the association
	// as it is now (zero if it is gone). Update and delete requests (which
	// move an association to UPDATING or DELETING) save their tokens here.
	UpdateAssociation(ctx context.Context, id string, tok *dra.TokenRecord, fn func(*api.DataRepositoryAssociation) error) (a api.DataRepositoryAssociation, prev dra.TokenRecord, updated bool, err error)
	// DeleteAssociation removes the association (ErrNotFound if absent).
	// Its tokens stay: a replayed create answers with the id, and describe
	// then says it no longer exists, as FSx does.
	DeleteAssociation(ctx context.Context, id string) error

	// LookupToken and SaveToken implement dra.TokenStore.
	dra.TokenStore

	// MarkListed records directories as listed (upsert), in one
	// transaction.
	MarkListed(ctx context.Context, dirs ...ListedDir) error
	// Listed returns the record of a listed directory.
	Listed(ctx context.Context, path string) (ListedDir, bool, error)
	// ListedBelow reports whether a directory strictly below dir ("" =
	// the store root) is recorded listed; dir's own record does not
	// count. One indexed read, whatever the number of records (the import
	// sweep asks it of a directory that was never listed: none below
	// means every key under its prefix can be passed over).
	ListedBelow(ctx context.Context, dir string) (bool, error)
	// ForgetListed drops the records of prefix and below (re-import,
	// association deletion) and returns how many there were.
	ForgetListed(ctx context.Context, prefix string) (int64, error)
	// MoveListed moves the records of directory from and below to below to
	// (a directory renamed): a renamed directory is not listed again under
	// its new name, which would make files deleted since come back from
	// their objects. Records that were at to and below are dropped first.
	MoveListed(ctx context.Context, from, to string) error

	// LoadChunkMap, SaveChunkMap and DeleteChunkMap implement
	// store.MapStore; a missing map is ErrNotFound, deleting one is
	// idempotent.
	store.MapStore

	// Append adds entries to the export journal and returns once they are
	// committed: durable, unless every entry of the commit is Relaxed
	// (then they survive a crash of the process). Concurrent calls are committed together (group commit: one
	// transaction and one fsync for all callers waiting). Entries of one
	// call are applied in order. An entry for a path that already has a
	// pending entry supersedes it (see MergeKind); the path keeps its
	// place in the queue and any claim on it.
	Append(ctx context.Context, entries ...JournalAppend) error
	// Claim leases up to n ready entries to owner until now+lease: first
	// entries never tried, oldest enqueued first, then entries whose retry
	// time or expired lease has come, earliest first. Entries leased to
	// others are skipped (PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED).
	Claim(ctx context.Context, owner string, n int, lease time.Duration) ([]JournalEntry, error)
	// ExtendLease pushes the lease of entries owner still holds to
	// now+lease and returns how many it still held.
	ExtendLease(ctx context.Context, owner string, entries []JournalEntry, lease time.Duration) (int, error)
	// Complete removes e when no newer entry for its path was appended
	// since e was read (e.Seq is still the path's latest) and reports
	// removed. Otherwise the entry stays, unleased and ready at once, to
	// export the newer content.
	Complete(ctx context.Context, e JournalEntry) (removed bool, err error)
	// Fail records a failed attempt: the entry is unleased, its Attempts
	// counted, cause kept (cut to 1024 bytes), and it is not claimed again
	// before retryAt.
	Fail(ctx context.Context, e JournalEntry, cause string, retryAt time.Time) error
	// Defer is Fail for an attempt that did not fail — the file was busy
	// (being written, a writer the mount cannot see, an upload of the old
	// name in flight): the entry is unleased and waits until retryAt with
	// cause as its LastError, but its Attempts are not counted, so a real
	// failure later starts its backoff from the beginning.
	Defer(ctx context.Context, e JournalEntry, cause string, retryAt time.Time) error
	// ReleaseClaims returns every entry leased to owner at once (a daemon
	// restarting under the same owner name) and says how many.
	ReleaseClaims(ctx context.Context, owner string) (int64, error)
	// Reschedule makes the entries under prefix ("" = all) that wait for
	// a retry time ready at once, keeping their Attempts, and says how
	// many. Leased and parked entries are left alone. The exporter calls
	// it when an association starts exporting again (MISCONFIGURED →
	// AVAILABLE): what waited out the outage goes at once, not after its
	// backoff.
	Reschedule(ctx context.Context, prefix string) (int64, error)
	// Depth is the number of pending entries; it does not scan.
	Depth(ctx context.Context) (int64, error)
	// OldestAge is how long the oldest pending entry has waited (0 when
	// none).
	OldestAge(ctx context.Context) (time.Duration, error)
	// JournalSeq is the sequence number of the latest append (0 when none
	// yet). A barrier for "everything closed so far".
	JournalSeq(ctx context.Context) (int64, error)
	// PendingCount counts pending entries under prefix that hold content
	// appended at or before barrier (0 = any), parked entries excepted:
	// ferry hsm wait PATH waits until it is 0 for the JournalSeq read when
	// it started, then reports ParkedEntries as failures.
	PendingCount(ctx context.Context, prefix string, barrier int64) (int64, error)
	// Pending lists pending entries under prefix in path order, after the
	// path after ("" = from the start), at most limit.
	Pending(ctx context.Context, prefix, after string, limit int) ([]JournalEntry, error)
	// RenamesFrom lists the pending RENAME entries (parked ones excepted)
	// whose old path is one of paths, at most limit: the objects under
	// those paths' keys still have to move. Before the exporter writes a
	// key it asks for the key's path and its parents: an upload waits for
	// such a move; a move first makes the renamed released files that
	// still need the object local (a released file renamed and its old
	// name written again, two released files swapped).
	RenamesFrom(ctx context.Context, paths []string, limit int) ([]JournalEntry, error)
	// ForwardRenames makes the pending RENAMEs from from (or from below
	// it) RENAMEs from to (or the same place below it). The exporter calls
	// it when a RENAME(from ← to) moved nothing because from was renamed
	// again before it ran: the objects are still under to, and the later
	// renames' old paths must say so (their moves copy from where each
	// file's origin says, but RenamesFrom must keep protecting to).
	ForwardRenames(ctx context.Context, from, to string) error
	// Park records a permanent failure of e (a key over 1024 bytes, a file
	// over 5 TiB): like Fail, but the entry is not claimed again until a
	// newer append for its path arrives (ReadyAt = Parked). It stays
	// pending — Depth and OldestAge count it, Pending lists it with its
	// cause — but PendingCount does not, so `hsm wait` never hangs on it;
	// ParkedEntries lists what the barrier excluded. If a newer append
	// superseded e meanwhile, Park only releases the claim (as Complete
	// does) so the newer content is tried at once.
	Park(ctx context.Context, e JournalEntry, cause string) error
	// ParkedEntries lists parked entries under prefix in path order,
	// after the path after, at most limit.
	ParkedEntries(ctx context.Context, prefix, after string, limit int) ([]JournalEntry, error)

	// Move records and hard-link names (see Names).
	Names

	// The queue of import hints from bucket events (see ImportHints).
	ImportHints

	// The daemons serving the file system (see Sessions).
	Sessions

	// CreateTask inserts t, the associations it works on and tok (when
	// not nil) in one transaction, as CreateAssociation.
	CreateTask(ctx context.Context, t api.DataRepositoryTask, associationIDs []string, tok *dra.TokenRecord) (prev dra.TokenRecord, created bool, err error)
	// Task returns one task, with its counters, or ErrNotFound.
	Task(ctx context.Context, id string) (api.DataRepositoryTask, error)
	// UpdateTask reads the task, lets fn change it and writes it back in
	// one transaction, counters included.
	UpdateTask(ctx context.Context, id string, fn func(*api.DataRepositoryTask) error) (api.DataRepositoryTask, error)
	// AddTaskCounts adds d to the task's counters and sets its
	// LastUpdatedTime, without reading it.
	AddTaskCounts(ctx context.Context, id string, d TaskCounts) error
	// TaskAssociations returns the ids of the associations a task works on.
	TaskAssociations(ctx context.Context, id string) ([]string, error)
	// DescribeTasks answers a parsed describe request as
	// DescribeAssociations does (DataRepositoryTaskNotFound for a missing
	// id).
	DescribeTasks(ctx context.Context, q dra.Query) ([]api.DataRepositoryTask, *dra.Cursor, error)

	// RecordAccess records access times (each path keeps the latest), in
	// one transaction: callers batch them.
	RecordAccess(ctx context.Context, accesses ...Access) error
	// LeastRecentlyAccessed returns up to limit records in (At, Path)
	// order, after the record after (nil = from the oldest).
	LeastRecentlyAccessed(ctx context.Context, after *Access, limit int) ([]Access, error)
	// ForgetAccess drops the records of paths.
	ForgetAccess(ctx context.Context, paths ...string) error

	// Close commits appends already accepted and closes the catalog.
	Close() error
}

// FileSystemInfo is the identity of the file system a catalog belongs to.
type FileSystemInfo struct {
	FileSystemId string // fs- + 17 hex digits
	CreationTime time.Time
	StorePath    string // absolute path of the store directory
}

// ListedDir records that a directory of an association was listed from its
// repository prefix, so lazy import lists it once.
type ListedDir struct {
	Path     string // store-relative directory
	ListedAt time.Time
	// Marker is what the next incremental listing needs: the prefix's
	// ETag or the last key seen (engine-opaque, at most 4096 bytes).
	Marker string
}

// Kind is what an export journal entry asks the exporter to do.
type Kind string

const (
	KindNew     Kind = "NEW"     // a file, directory or symlink created
	KindChanged Kind = "CHANGED" // content or metadata changed
	KindDeleted Kind = "DELETED" // removed (export only with DELETED in the policy)
	KindRename  Kind = "RENAME"  // moved from OldPath to Path
)

func (k Kind) valid() bool {
	switch k {
	case KindNew, KindChanged, KindDeleted, KindRename:
		return true
	}
	return false
}

// MergeKind is the kind of a pending entry of kind old superseded by an
// append of kind new, and the old path it keeps: the newer kind wins, except
// that a change to a file not yet exported as NEW stays NEW (the object does
// not exist yet), and a change or creation at a path not yet exported as
// RENAME stays a RENAME from the same old path (the old key must still go;
// the exporter uploads whatever content the new path has).
func MergeKind(old Kind, oldPath string, new Kind, newOldPath string) (Kind, string) {
	switch {
	case old == KindNew && new == KindChanged:
		return KindNew, ""
	case old == KindRename && (new == KindChanged || new == KindNew):
		return KindRename, oldPath
	}
	return new, newOldPath
}

// Renames before export (the rule: a file renamed or rewritten before its
// export ran is exported once, under its final name). Append of
// RENAME(Path ← OldPath) first settles the pending entry of OldPath, if
// there is one and no exporter holds a live claim on it:
//
//	OldPath's entry   the RENAME becomes            OldPath's entry
//	NEW               NEW at Path (file only)       dropped
//	RENAME(← O)       RENAME(Path ← O),             dropped
//	                  CHANGED if O = Path (a file),
//	                  RENAME(Path ← OldPath) if O =
//	                  Path (a directory: children
//	                  may have been exported under
//	                  OldPath meanwhile)
//	CHANGED           RENAME(Path ← OldPath)        dropped
//	DELETED           RENAME(Path ← OldPath)        kept
//
// A claimed entry is kept as it is (its upload is in flight) and the RENAME
// stays a RENAME; the exporter runs it once OldPath's entry is gone. With
// Tree (a directory rename) the pending entries below OldPath move below
// Path in the same transaction: NEW stays NEW, RENAME keeps its old path,
// CHANGED becomes RENAME from where the object still is, DELETED stays where
// it is (that object was never moved), and a claimed entry stays while a
// RENAME from it is added under the new name, keeping the claimed entry's
// place in the queue (first_seq). A directory's own NEW is not collapsed:
// objects below it may exist already, and the exporter's tree move finds
// them through the files' recorded origins (exporter move.go).

// Parked is ReadyAt of an entry parked by Park: it is never claimed again
// until a newer append for its path arrives.
var Parked = time.Unix(0, parkedNS)

const parkedNS = 1<<63 - 1

// IsParked reports whether e was parked after a permanent failure.
func (e JournalEntry) IsParked() bool { return e.ReadyAt.UnixNano() == parkedNS }

// JournalAppend is one entry given to Append.
type JournalAppend struct {
	Path    string
	Kind    Kind
	OldPath string // RENAME only
	// Version is the content version the caller exports (for example the
	// file's change counter); the catalog keeps it for the exporter.
	Version int64
	// Tree (RENAME of a directory only): the pending entries below OldPath
	// move below Path in the same transaction (see "Renames before export").
	Tree bool
	// Relaxed: the entry need only survive a crash of the daemon (kill -9),
	// not of the machine — it is committed before Append returns but not
	// fsynced. The mount appends so on close(2) and on metadata calls, whose
	// own effects on the store are no more durable than that until the
	// user's fsync (which appends without Relaxed). A batch holding any
	// entry without Relaxed is fsynced, and so makes every earlier relaxed
	// entry durable too (the WAL is one ordered log).
	Relaxed bool
	// EndMove, when not 0, is the id of the BeginMove record this entry
	// completes: the record is finished in the entry's transaction (as
	// Names.FinishMove: removed, and the listed records moved).
	EndMove int64
}

// Names is the part of the catalog that keeps the mount's names right
// across crashes and hard links: renames begun and not yet journaled, and
// the names of multiply linked files.
type Names interface {
	// BeginMove records that the store is about to rename from to to and
	// returns the record's id; it is committed like a relaxed append (it
	// survives kill -9 of the daemon). The mount records one before each
	// rename it journals; the RENAME appended after the rename carries the
	// id (JournalAppend.EndMove) and removes the record in the same
	// transaction. So a record still there at start is a rename the daemon
	// may have made without journaling it (invariant 1: the pending entries
	// of the old names would be lost); the mount settles each one before
	// the exporter starts (writepath.RecoverMoves).
	BeginMove(ctx context.Context, from, to string) (int64, error)
	// EndMove removes a move record of a rename that did not happen (it
	// failed, or recovery found the old name still there); removing a
	// record that is gone is not an error.
	EndMove(ctx context.Context, id int64) error
	// FinishMove removes the move record of a rename that happened, and
	// moves the listed-directory records of its old name and below to its
	// new name (as MoveListed) in the same transaction, so that a crash
	// cannot separate the two: a renamed directory whose records stayed
	// behind would be listed again under its new name, and files deleted
	// since would come back from their objects. A record already gone
	// moves nothing (a repeat is harmless).
	FinishMove(ctx context.Context, id int64) error
	// Moves lists the move records, oldest first.
	Moves(ctx context.Context) ([]Move, error)

	// AddLinks records paths as names of inode ino (a file with several
	// hard links), committed like a relaxed append; names already
	// recorded stay. A RENAME append moves recorded names with it (below
	// OldPath too, for a Tree), in its transaction. Records may go stale
	// (a name unlinked or replaced): their users check each name against
	// the inode and drop the stale ones with ForgetLinks.
	AddLinks(ctx context.Context, ino uint64, paths ...string) error
	// Links returns the recorded names of inode ino in path order.
	Links(ctx context.Context, ino uint64) ([]string, error)
	// ForgetLinks drops recorded names of ino (all of them when paths is
	// empty).
	ForgetLinks(ctx context.Context, ino uint64, paths ...string) error
}

// Move is a rename recorded by BeginMove and not yet ended.
type Move struct {
	ID       int64
	From, To string
	Created  time.Time
}

// JournalEntry is a pending entry of the export journal.
type JournalEntry struct {
	Path    string
	Kind    Kind
	OldPath string
	Version int64
	// Seq is the sequence number of the latest append for the path; every
	// append gets a new, larger one. Complete compares it.
	Seq int64
	// FirstSeq is the sequence number of the oldest append whose content
	// is not known exported (PendingCount's barrier compares it).
	FirstSeq   int64
	EnqueuedAt time.Time // when the path became pending (kept when superseded)
	UpdatedAt  time.Time // the latest append
	Attempts   int       // failed attempts so far
	LastError  string
	// ReadyAt is when the entry can be claimed: zero when never tried, the
	// lease expiry while claimed, the retry time after a failure.
	ReadyAt time.Time
	Owner   string // the claim's owner, "" when unclaimed
}

// TaskCounts are increments of a task's counters.
type TaskCounts struct {
	Total, Succeeded, Failed, ReleasedBytes int64
}

// Access is the last access of a file, for release candidates.
type Access struct {
	Path string
	At   time.Time
}

// Options tune an engine. The zero value is fine.
type Options struct {
	// StoreRoot is the store directory, for the default catalog URL.
	StoreRoot string
	// Now replaces time.Now (tests).
	Now func() time.Time
	// GroupCommitWindow is how long the journal committer waits for more
	// appends after the first of a batch. 0: no wait, a batch is whatever
	// queued while the previous commit ran (see docs/architecture.md for
	// the measurement).
	GroupCommitWindow time.Duration
	// MaxBatch caps the entries of one journal commit (default 4096).
	MaxBatch int
	// ReadConns is the size of the read pool (default 4).
	ReadConns int
	// PoolConns is the size of the PostgreSQL connection pool
	// (DefaultPoolConns when 0; pool_max_conns in the URL wins).
	PoolConns int
	// BusyTimeout is how long a writer waits for another process's lock
	// (default 10s).
	BusyTimeout time.Duration
	// Reserve is the space kept preallocated beside a SQLite catalog, for
	// commits when its disk is full (0: DefaultReserve; negative: none).
	Reserve int64
	// Logger receives the catalog's warnings (default: discard).
	Logger *slog.Logger
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Errors.
var (
	ErrNotFound = errors.New("catalog: not found")
	ErrExists   = errors.New("catalog: already exists")
	ErrClosed   = errors.New("catalog: closed")
	// ErrUnsupported: the URL names an engine this build does not have.
	ErrUnsupported = errors.New("catalog engine not supported")
	// ErrSchemaTooNew: the catalog was written by a newer ferry.
	ErrSchemaTooNew = errors.New("catalog schema is newer than this ferry")
)

// DefaultFile is the catalog's file name in the store's metadata folder.
const DefaultFile = "catalog.db"

// Location is a parsed catalog URL.
type Location struct {
	Engine string // "sqlite" or "postgres"
	Path   string // sqlite: absolute file path
	DSN    string // postgres: the URL as given
}

// ParseURL parses a catalog URL (see the package comment). An empty URL is
// the default SQLite file in storeRoot's metadata folder.
func ParseURL(raw, storeRoot string) (Location, error) {
	if raw == "" {
		if storeRoot == "" {
			return Location{}, errors.New("catalog: no catalog URL and no store directory to put the default catalog in")
		}
		p, err := filepath.Abs(filepath.Join(storeRoot, store.MetaDir, DefaultFile))
		if err != nil {
			return Location{}, fmt.Errorf("catalog: %w", err)
		}
		return Location{Engine: "sqlite", Path: p}, nil
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return Location{}, fmt.Errorf("catalog URL %q has no scheme: use sqlite:///abs/path/catalog.db, sqlite://relative/path or postgres://…", raw)
	}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		if rest == "" {
			return Location{}, fmt.Errorf("catalog URL %q names no file: use sqlite:///abs/path/catalog.db", raw)
		}
		if strings.ContainsAny(rest, "?#\x00") {
			return Location{}, fmt.Errorf("catalog URL %q: a SQLite path may not contain '?', '#' or NUL", raw)
		}
		p, err := url.PathUnescape(rest)
		if err != nil {
			return Location{}, fmt.Errorf("catalog URL %q: %w", raw, err)
		}
		// sqlite:///abs → "/abs"; sqlite://rel → "rel" (working directory).
		p, err = filepath.Abs(p)
		if err != nil {
			return Location{}, fmt.Errorf("catalog URL %q: %w", raw, err)
		}
		return Location{Engine: "sqlite", Path: p}, nil
	case "postgres", "postgresql":
		return Location{Engine: "postgres", DSN: raw}, nil
	}
	return Location{}, fmt.Errorf("catalog URL %q: unknown scheme %q: use sqlite:// or postgres://", raw, scheme)
}

// Open opens (creating and migrating when needed) the catalog at raw, a URL
// ParseURL accepts.
func Open(ctx context.Context, raw string, opts Options) (Catalog, error) {
	loc, err := ParseURL(raw, opts.StoreRoot)
	if err != nil {
		return nil, err
	}
	switch loc.Engine {
	case "sqlite":
		return OpenSQLite(ctx, loc.Path, opts)
	case "postgres":
		return OpenPostgres(ctx, loc.DSN, opts)
	}
	return nil, fmt.Errorf("catalog engine %q: %w", loc.Engine, ErrUnsupported)
}

// redact hides a password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "postgres://…"
	}
	return u.Redacted()
}

// prefixRange returns the half-open key range [lo, hi) of the paths strictly
// below prefix ("" → every path: lo "" and hi "" meaning unbounded). The
// prefix itself is matched separately.
func prefixRange(prefix string) (lo, hi string) {
	if prefix == "" {
		return "", ""
	}
	return prefix + "/", prefix + "0" // '0' is '/'+1
}

func checkPath(p string) error {
	if strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.ContainsRune(p, 0) {
		return fmt.Errorf("catalog: path %q is not store-relative (no leading or trailing '/', no NUL)", p)
	}
	return nil
}

// notFound builds the API's typed not-found error for describe by id.
func assocNotFound(id string) error {
	return api.Errorf(api.CodeDataRepositoryAssociationNotFound, "association %s does not exist: check the id with describe-data-repository-associations", id)
}

func taskNotFound(id string) error {
	return api.Errorf(api.CodeDataRepositoryTaskNotFound, "task %s does not exist: check the id with describe-data-repository-tasks", id)
}
