package fusefs

import (
	"context"
	"sync/atomic"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/keypath"
)

// Journal is the export journal behind the mount (the catalog's, with the
// exporter woken after each append). The nodes append what each operation
// changed (see "Write path" in the package comment) for paths Exports
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
	// Rename and RecoverMoves) and the names of hard-linked files (see
	// journalLinks), with catalog paths ("" for the root).
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

	assocs atomic.Pointer[dra.Table]
}

// NewCatalogJournal returns a journal appending to cat and calling notify
// (the exporter's Notify; nil for none) after each append.
func NewCatalogJournal(cat catalog.Catalog, notify func()) *CatalogJournal {
	return &CatalogJournal{Names: cat, cat: cat, notify: notify}
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

// Notify implements Journal.
func (j *CatalogJournal) Notify() {
	if j.notify != nil {
		j.notify()
	}
}

// journal appends entries whose paths the journal exports (a RENAME when
// either of its paths is), then wakes the exporter. Metadata calls and
// close append Relaxed (committed before the reply, so they survive kill -9
// of the daemon; fsynced with the next durable commit), like the store's
// own changes they describe, which are durable only after a sync; fsync
// appends durably. Without a journal it
// does nothing. A failure is logged and returned: the caller answers EIO,
// so a close or fsync never acknowledges a write that is not journaled
// (invariant 1, docs/invariants.md).
func (f *FS) journal(ctx context.Context, entries ...catalog.JournalAppend) error {
	j := f.jnl
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
		f.log.Error("export journal append failed", "path", keep[0].Path, "kind", keep[0].Kind, "err", err)
		return err
	}
	j.Notify()
	return nil
}
