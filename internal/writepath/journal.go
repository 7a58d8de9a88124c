package writepath

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
)

// Journal is the export journal behind the write path (the catalog's,
// with the exporter woken after each append). The Writer appends what
// each operation changed (see the package comment) for paths Exports
// accepts, and nothing for the others.
type Journal interface {
	// Exports reports whether changes below store-relative path rel are
	// journaled: rel is inside an association that auto-exports.
	Exports(rel string) bool
	// Append adds entries and returns once they are committed — durable,
	// unless an entry is Relaxed (catalog.Catalog.Append: group commit).
	Append(ctx context.Context, entries ...catalog.JournalAppend) error
	// Notify wakes the exporter; it never blocks.
	Notify()
	// Names keeps renames begun and not yet journaled (BeginMove: see
	// Writer.Rename and RecoverMoves) and the names of hard-linked files
	// (see Writer.journalLinks), with catalog paths ("" for the root).
	catalog.Names
}

// CatalogJournal is the Journal of a daemon: appends go to the catalog,
// Notify wakes the exporter, and the associations decide which paths are
// journaled. Create it with NewCatalogJournal and give it every
// association change (SetAssociations), as the importer and exporter get.
type CatalogJournal struct {
	catalog.Names
	cat    catalog.Catalog
	notify func()
	room   func() error // cat's SpaceKeeper.Room, if it keeps space

	assocs atomic.Pointer[dra.Table]
}

// NewCatalogJournal returns a journal appending to cat and calling notify
// (the exporter's Notify; nil for none) after each append.
func NewCatalogJournal(cat catalog.Catalog, notify func()) *CatalogJournal {
	j := &CatalogJournal{Names: cat, cat: cat, notify: notify}
	if sk, ok := cat.(catalog.SpaceKeeper); ok {
		j.room = sk.Room
	}
	return j
}

// SetAssociations gives the journal every association of the file system.
// Paths are journaled below associations that journal (dra.Assoc.Journals:
// an AutoExportPolicy, not DELETING or FAILED; entries of one still
// CREATING or MISCONFIGURED wait in the journal until it exports).
func (j *CatalogJournal) SetAssociations(t *dra.Table) { j.assocs.Store(t) }

// Exports implements Journal.
func (j *CatalogJournal) Exports(rel string) bool {
	a, _, ok := j.assocs.Load().Holder(rel)
	return ok && a.Journals()
}

// Append implements Journal.
func (j *CatalogJournal) Append(ctx context.Context, entries ...catalog.JournalAppend) error {
	return j.cat.Append(ctx, entries...)
}

// Room implements catalog.SpaceKeeper for a catalog that keeps space
// for itself (nil for one that does not).
func (j *CatalogJournal) Room() error {
	if j.room == nil {
		return nil
	}
	return j.room()
}

// Notify implements Journal.
func (j *CatalogJournal) Notify() {
	if j.notify != nil {
		j.notify()
	}
}

// ListedDirs is the importer's record of the directories it has listed
// (internal/importer): a renamed directory keeps its records under its new
// name, or it would be listed again there, and files deleted since would
// come back from their objects.
type ListedDirs interface {
	// Renamed moves the catalog's records of directory from and below to
	// to, and updates the importer (a rename without a move record: no
	// journal).
	Renamed(ctx context.Context, from, to string) error
	// MovedListed updates the importer after the catalog moved the
	// records with the rename's move record (catalog.Names.FinishMove);
	// repeating it is harmless.
	MovedListed(ctx context.Context, from, to string) error
}

// Config configures a Writer.
type Config struct {
	// Store is the store every path is relative to.
	Store *store.Store
	// Journal receives the export journal entries; nil journals
	// nothing (content versions are still kept).
	Journal Journal
	// Logger receives diagnostics (default: discard).
	Logger *slog.Logger
	// Imported: the store holds files the importer made from objects
	// (lazy import), so a rename records where their objects are
	// (store.MarkOrigins) also outside exporting associations.
	Imported bool
	// Listed, when set, is the importer's record of listed directories,
	// told of every directory renamed (see ListedDirs).
	Listed ListedDirs
	// Restore, when set, makes the released file rel local (the importer's
	// Restore). A rename that takes released files out of an exporting
	// association to where nothing exports calls it first (see Rename):
	// once there, no journal entry follows them and the old association's
	// objects, their only data, may go.
	Restore func(ctx context.Context, rel string) error
}

// Writer is the write path of one store: what a change made through the
// mount does to content versions and the export journal. The FUSE nodes
// make the change in the store (or ask the Writer to) and call the
// Writer; it is safe for concurrent use.
type Writer struct {
	store    *store.Store
	jnl      Journal
	log      *slog.Logger
	imported bool
	listed   ListedDirs
	restore  func(ctx context.Context, rel string) error
	room     func() error // the catalog's SpaceKeeper.Room, or nil
	links    linksSeen    // hard link names recorded (links.go)

	omu        sync.Mutex
	openInodes map[inodeKey]*Inode // inodes open (Opened), for VersionRead

	vmu       sync.Mutex // the exporter's latest VersionReads (version.go)
	recent    [recentReads]inodeKey
	recentPos int
	recentSet map[inodeKey]int
}

// New returns the write path of cfg.Store.
func New(cfg Config) *Writer {
	lg := cfg.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	w := &Writer{
		store: cfg.Store, jnl: cfg.Journal, log: lg, imported: cfg.Imported, listed: cfg.Listed, restore: cfg.Restore,
		openInodes: map[inodeKey]*Inode{}, recentSet: map[inodeKey]int{},
	}
	if sk, ok := cfg.Journal.(catalog.SpaceKeeper); ok {
		w.room = sk.Room
	}
	return w
}

// Room is nil when a write may take space on the store, and ENOSPC while
// the catalog runs on the space it keeps for a full disk
// (catalog.SpaceKeeper): the nodes ask before writes and allocations.
func (w *Writer) Room() error {
	if w.room == nil {
		return nil
	}
	return w.room()
}

// journal appends entries whose paths the journal exports (a RENAME when
// either of its paths is), then wakes the exporter. Metadata calls and
// close append Relaxed (committed before the reply, so they survive kill -9
// of the daemon; fsynced with the next durable commit), like the store's
// own changes they describe, which are durable only after a sync; fsync
// appends durably. Without a journal it does nothing. A failure is logged
// and returned: the caller answers EIO, so a close or fsync never
// acknowledges a write that is not journaled (invariant 1,
// docs/invariants.md).
func (w *Writer) journal(ctx context.Context, entries ...catalog.JournalAppend) error {
	j := w.jnl
	if j == nil {
		return nil
	}
	keep := entries[:0:0]
	for _, e := range entries {
		if j.Exports(e.Path) || (e.Kind == catalog.KindRename && j.Exports(e.OldPath)) {
			e.Path, e.OldPath = keypath.ToCatalog(e.Path), keypath.ToCatalog(e.OldPath)
			if e.Kind != catalog.KindRename {
				e.OldPath = ""
			}
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	if err := j.Append(context.WithoutCancel(ctx), keep...); err != nil {
		w.log.Error("export journal append failed", "path", keep[0].Path, "kind", keep[0].Kind, "err", err)
		return err
	}
	j.Notify()
	return nil
}

// Made journals rel, a directory, symlink, special file or hard link just
// made (and given its owner): NEW, relaxed.
func (w *Writer) Made(ctx context.Context, rel string) error {
	return w.journal(ctx, catalog.JournalAppend{Path: rel, Kind: catalog.KindNew, Relaxed: true})
}

// Unlink removes name rel from the store and journals DELETED, relaxed;
// its object goes only if the association's policy has DELETED (the
// exporter decides: invariant 5, docs/invariants.md).
func (w *Writer) Unlink(ctx context.Context, rel string) error {
	if err := w.store.Unlink(rel); err != nil {
		return err
	}
	return w.journal(ctx, catalog.JournalAppend{Path: rel, Kind: catalog.KindDeleted, Relaxed: true})
}

// Rmdir removes directory rel from the store and journals DELETED,
// relaxed (as Unlink).
func (w *Writer) Rmdir(ctx context.Context, rel string) error {
	if err := w.store.Rmdir(rel); err != nil {
		return err
	}
	return w.journal(ctx, catalog.JournalAppend{Path: rel, Kind: catalog.KindDeleted, Relaxed: true})
}
