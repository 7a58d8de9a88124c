package writepath

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
)

// Rename renames from to to in the store with renameat2 flags
// (store.RenameNoreplace, store.RenameExchange) and journals the move (the
// exporter moves the object: docs/semantics.md §4). Its errors carry the
// errno to answer (store.Errno).
//
// Invariant 1 across the rename: before the store renames, a move record
// (Journal.BeginMove) says it is about to; the RENAME appended after the
// rename ends it in the same transaction. If the daemon dies in between,
// RecoverMoves finds the record at the next start, sees which name exists
// and appends the RENAME then — so the pending entries of the old names
// (a whole tree's, for a directory) move to the new names instead of being
// dropped as gone. A rename that fails ends its record. A released file
// first records where its object is (see originBeforeRename).
//
// A directory moved into an exporting association from outside every
// exporting association also journals NEW for every entry below it; its
// move record ends only after that walk, so a crash during it is redone.
//
// RENAME_EXCHANGE swaps two regular files or symlinks: both are journaled
// CHANGED before the swap (a crash after it exports what each name then
// holds; a failed swap only re-exports unchanged content). Inside an
// exporting association it is refused with EINVAL for directories (their
// objects' prefixes cannot be swapped) and for released files (their
// objects would be under each other's keys).
func (w *Writer) Rename(ctx context.Context, from, to string, flags uint32) error {
	exports := w.jnl != nil && (w.jnl.Exports(from) || w.jnl.Exports(to))
	st, err := w.store.Lstat(from)
	if err != nil {
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if flags&store.RenameExchange == 0 && w.jnl != nil && w.jnl.Exports(from) && !w.jnl.Exports(to) {
		if err := w.localizeLeaving(ctx, from, isDir); err != nil {
			return err
		}
	}
	if flags&store.RenameExchange != 0 {
		if exports && (isDir || w.isReleased(from) || w.unexchangeable(to)) {
			return unix.EINVAL
		}
		if err := w.journal(ctx,
			catalog.JournalAppend{Path: from, Kind: catalog.KindChanged, Relaxed: true},
			catalog.JournalAppend{Path: to, Kind: catalog.KindChanged, Relaxed: true}); err != nil {
			return err
		}
		return w.store.Rename(from, to, uint(flags))
	}
	// The origins recorded and the rename are one step for the exporter,
	// which records where it moved an object under the same lock (see
	// store.MoveLock).
	mu := w.store.MoveLock()
	mu.Lock()
	locked := true
	unlock := func() {
		if locked {
			mu.Unlock()
			locked = false
		}
	}
	defer unlock()
	if err := w.originBeforeRename(ctx, from, exports); err != nil {
		return err
	}
	if !exports && !(isDir && w.listed != nil && w.jnl != nil) {
		if err := w.store.Rename(from, to, uint(flags)); err != nil {
			return err
		}
		w.movedListed(ctx, from, to, isDir, false)
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	id, err := w.jnl.BeginMove(ctx, keypath.ToCatalog(from), keypath.ToCatalog(to))
	if err != nil {
		w.log.Error("rename not begun: the move record failed", "from", from, "to", to, "err", err)
		// EIO whatever the catalog's error wraps.
		return fmt.Errorf("move record of %s: %v: %w", from, err, unix.EIO)
	}
	err = w.store.Rename(from, to, uint(flags))
	unlock()
	if err != nil {
		if eerr := w.jnl.EndMove(ctx, id); eerr != nil {
			// Harmless: RecoverMoves finds from still there and drops it.
			w.log.Warn("move record of a failed rename left for the next start", "from", from, "err", eerr)
		}
		return err
	}
	if err := w.journalMove(ctx, catalog.Move{ID: id, From: from, To: to}, isDir); err != nil {
		return err
	}
	w.movedListed(ctx, from, to, isDir, true)
	return nil
}

// movedListed tells the importer (Config.Listed) that directory from is
// now to, so the directory is not listed again under its new name: a
// listing would make files deleted since come back from their objects.
// recorded: the rename had a move record, whose end moved the catalog's
// listed records in its transaction (FinishMove), so a crash cannot
// separate the rename from them; without a journal there is no record,
// and the importer moves them (Renamed). A failure is logged, not
// returned: the rename happened, and a listing again only costs requests
// unless such files were deleted meanwhile.
func (w *Writer) movedListed(ctx context.Context, from, to string, isDir, recorded bool) {
	if !isDir || w.listed == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	var err error
	if recorded {
		err = w.listed.MovedListed(ctx, from, to)
	} else {
		err = w.listed.Renamed(ctx, from, to)
	}
	if err != nil {
		w.log.Error("listed directories not moved with a rename; the new name is listed again", "from", from, "to", to, "err", err)
	}
}

// journalMove journals rename m, made in the store, and finishes its move
// record (which moves the listed records: catalog FinishMove): the RENAME
// (Tree for a directory), then, for a directory moved into an exporting
// association from outside every exporting association, NEW for every
// entry below it (the record ends after that walk). A rename outside
// every exporting association (a directory's record kept only for its
// listed records) journals nothing.
func (w *Writer) journalMove(ctx context.Context, m catalog.Move, isDir bool) error {
	if !w.jnl.Exports(m.From) && !w.jnl.Exports(m.To) {
		return w.jnl.FinishMove(ctx, m.ID)
	}
	into := isDir && !w.jnl.Exports(m.From) && w.jnl.Exports(m.To)
	rn := catalog.JournalAppend{Path: m.To, Kind: catalog.KindRename, OldPath: m.From, Tree: isDir, Relaxed: true}
	if !into {
		rn.EndMove = m.ID
	}
	if err := w.journal(ctx, rn); err != nil {
		return err
	}
	if !into {
		return nil
	}
	// A tree moved into an exporting association: every name below it is
	// new there.
	if err := w.journalTree(ctx, m.To); err != nil {
		return err
	}
	return w.jnl.FinishMove(ctx, m.ID)
}

// RecoverMoves settles the renames a daemon began and may not have
// journaled (see Writer.Rename), before the exporter starts: a rename
// whose old name is gone and whose new name exists happened, and is
// journaled now, its record finished (a directory's listed records move:
// cfg.Listed); any other record is of a rename that did not happen, and
// is dropped. cfg.Journal is required. It returns how many renames it
// journaled.
func RecoverMoves(ctx context.Context, cfg Config) (int, error) {
	w := New(cfg)
	ms, err := w.jnl.Moves(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, m := range ms {
		from, to := keypath.FromCatalog(m.From), keypath.FromCatalog(m.To)
		_, ferr := w.store.Lstat(from)
		sto, terr := w.store.Lstat(to)
		switch {
		case absent(ferr) && terr == nil:
			isDir := sto.Mode&unix.S_IFMT == unix.S_IFDIR
			w.log.Warn("journaling a rename the last mount made but did not journal", "from", from, "to", to)
			if err := w.journalMove(ctx, catalog.Move{ID: m.ID, From: from, To: to}, isDir); err != nil {
				return n, fmt.Errorf("rename %s → %s: %w", from, to, err)
			}
			w.movedListed(ctx, from, to, isDir, true)
			n++
		case ferr == nil || (absent(ferr) && absent(terr)):
			if err := w.jnl.EndMove(ctx, m.ID); err != nil {
				return n, err
			}
		default:
			return n, fmt.Errorf("rename %s → %s: cannot tell whether it happened: %w", from, to, errors.Join(ferr, terr))
		}
	}
	return n, nil
}

// absent reports an error saying a path does not exist.
func absent(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR)
}

// journalTree appends NEW for every entry below directory dir, 256 per
// append.
func (w *Writer) journalTree(ctx context.Context, dir string) error {
	var batch []catalog.JournalAppend
	flush := func() error {
		err := w.journal(ctx, batch...)
		batch = batch[:0]
		return err
	}
	err := w.store.WalkBelow(ctx, dir, func(p string, _ uint32) error {
		batch = append(batch, catalog.JournalAppend{Path: p, Kind: catalog.KindNew, Relaxed: true})
		if len(batch) == 256 {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// unexchangeable reports whether rel may not take part in an exchange
// inside an exporting association: a directory or a released file.
func (w *Writer) unexchangeable(rel string) bool {
	st, err := w.store.Lstat(rel)
	if err != nil {
		return false // the store's rename answers for it
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR || w.isReleased(rel)
}

// isReleased reports whether rel is a released file (state read by path).
func (w *Writer) isReleased(rel string) bool {
	st, err := w.store.GetState(rel)
	return err == nil && st.Flags.Has(hsm.Released)
}

// originBeforeRename records where the objects of rel (a file, or every
// file below a directory) are before rel is renamed (store.MarkOrigins),
// with the store's MoveLock held by the caller through the rename. Without
// an importer (Config.Imported) or an exporting association nothing is
// walked: nothing there can have an object.
func (w *Writer) originBeforeRename(ctx context.Context, rel string, exports bool) error {
	if !w.imported && !exports {
		return nil
	}
	w.log.Debug("origins marked before a rename", "path", rel)
	return w.store.MarkOrigins(ctx, rel)
}

// localizeLeaving makes local the released files that a rename is about to
// take from rel, inside an exporting association, to where nothing exports
// (outside every association, or into one without an export policy): a
// file, or every file below a directory. Their data is only in their
// objects, under keys of the association they leave; renames there are not
// journaled, so nothing would follow them, and the old association's
// DELETED (or a new file at the old name) would take their only data. The
// rename waits for the data, which costs its size once (the exporter's own
// check, exporter localizeLeavers, covers a daemon without Config.Restore
// only while the file keeps the name the rename gives it).
func (w *Writer) localizeLeaving(ctx context.Context, rel string, isDir bool) error {
	if w.restore == nil {
		return nil
	}
	one := func(p string) error {
		if !w.isReleased(p) {
			return nil
		}
		w.log.Info("released file made local before it leaves its association", "path", p)
		if err := w.restore(ctx, p); err != nil {
			return fmt.Errorf("make %s local before it leaves its association: %w", p, err)
		}
		return nil
	}
	if !isDir {
		return one(rel)
	}
	return w.store.WalkBelow(ctx, rel, func(p string, typ uint32) error {
		if typ != unix.S_IFREG {
			return nil
		}
		return one(p)
	})
}
