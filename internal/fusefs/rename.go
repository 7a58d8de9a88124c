package fusefs

import (
	"context"
	"errors"
	"io"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
	"github.com/ferry-hpc/ferry/internal/store"
)

// Rename passes renameat2 flags (RENAME_NOREPLACE, RENAME_EXCHANGE) through
// and journals the move (the exporter moves the object: semantics.md §4).
//
// Before the rename, CHANGED is journaled for the new name of a regular
// file or symlink: if the daemon dies between the rename and the RENAME
// entry, the content under the new name is still exported (invariant 1; a
// rename that then fails only re-exports what the new name holds). The
// RENAME that follows supersedes it (catalog.MergeKind). A released file
// first records where its object is (see originBeforeRename).
//
// A directory moved into an exporting association from outside every
// exporting association also journals NEW for every entry below it.
//
// RENAME_EXCHANGE swaps two regular files or symlinks (both journaled
// CHANGED); inside an exporting association it is refused with EINVAL
// for directories (their objects' prefixes cannot be swapped) and for
// released files (their objects would be under each other's keys).
func (n *Node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	p, ok := newParent.(*Node)
	if !ok || p.fsys != n.fsys {
		return syscall.EXDEV
	}
	if e := tooLong(name, newName); e != 0 {
		return e
	}
	f := n.fsys
	from, to := n.child(name), p.child(newName)
	exports := f.jnl != nil && (f.jnl.Exports(from) || f.jnl.Exports(to))
	st, err := f.store.Lstat(from)
	if err != nil {
		return errno(err)
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if flags&store.RenameExchange != 0 {
		if exports && (isDir || f.isReleased(from) || f.unexchangeable(to)) {
			return syscall.EINVAL
		}
		if err := f.store.Rename(from, to, uint(flags)); err != nil {
			return errno(err)
		}
		return errno(f.journal(ctx,
			catalog.JournalAppend{Path: from, Kind: catalog.KindChanged, Relaxed: true},
			catalog.JournalAppend{Path: to, Kind: catalog.KindChanged, Relaxed: true}))
	}
	if err := f.originBeforeRename(ctx, from, &st); err != nil {
		return errno(err)
	}
	if exports && !isDir {
		if err := f.journal(ctx, catalog.JournalAppend{Path: to, Kind: catalog.KindChanged, Relaxed: true}); err != nil {
			return errno(err)
		}
	}
	if err := f.store.Rename(from, to, uint(flags)); err != nil {
		return errno(err)
	}
	if err := f.journal(ctx, catalog.JournalAppend{Path: to, Kind: catalog.KindRename, OldPath: from, Tree: isDir, Relaxed: true}); err != nil {
		return errno(err)
	}
	if isDir && exports && !f.jnl.Exports(from) {
		// A tree moved into an exporting association: every name below
		// it is new there.
		return errno(f.journalTree(ctx, to))
	}
	return 0
}

// journalTree appends NEW for every entry below directory dir, 256 per
// append.
func (f *FS) journalTree(ctx context.Context, dir string) error {
	var batch []catalog.JournalAppend
	flush := func() error {
		err := f.journal(ctx, batch...)
		batch = batch[:0]
		return err
	}
	err := f.walkBelow(ctx, dir, func(p string, _ uint32) error {
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

// walkBelow calls fn for every entry below directory dir, depth first, a
// directory before what it holds; memory is one DirReader batch per level.
func (f *FS) walkBelow(ctx context.Context, dir string, fn func(p string, typ uint32) error) error {
	r, err := f.store.Readdir(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := r.Next(256)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := keypath.Join(dir, e.Name)
			if err := fn(p, e.Type); err != nil {
				return err
			}
			if e.Type == unix.S_IFDIR {
				if err := f.walkBelow(ctx, p, fn); err != nil {
					return err
				}
			}
		}
	}
}

// unexchangeable reports whether rel may not take part in an exchange
// inside an exporting association: a directory or a released file.
func (f *FS) unexchangeable(rel string) bool {
	st, err := f.store.Lstat(rel)
	if err != nil {
		return false // the store's rename answers for it
	}
	return st.Mode&unix.S_IFMT == unix.S_IFDIR || f.isReleased(rel)
}

// originBeforeRename records, in the state of every released file about to
// move (rel itself, or every file below directory rel), the path it has
// now as its Origin, unless it has one: the object key of a released file
// is derived from its path, so without it a renamed stub would read from
// its new name's key, where no object is (store.State.Origin; the importer
// reads the origin's object, then the current name's once the exporter
// moved it there). Files with all their data local need nothing. The
// origin is written before the rename, so a crash in between leaves an
// origin equal to the current path, which changes nothing.
//
// A directory is walked (a batch of entries at a time, depth first, memory
// bounded by its depth): the cost of renaming a directory grows with the
// number of entries below it, one state read each. Without an importer
// there are no released files and nothing is walked.
func (f *FS) originBeforeRename(ctx context.Context, rel string, st *unix.Stat_t) error {
	if f.imp == nil {
		return nil
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return f.setOrigin(rel)
	case unix.S_IFDIR:
		return f.originsBelow(ctx, rel)
	}
	return nil
}

// setOrigin records rel as the origin of released file rel (no change for
// any other file).
func (f *FS) setOrigin(rel string) error {
	_, err := f.store.UpdateState(rel, func(st *store.State) error {
		if !st.Flags.Has(hsm.Released) || st.Origin != "" {
			return errNoChange
		}
		st.Origin = rel
		return nil
	})
	return ignoreNoChange(err)
}

// originsBelow runs setOrigin on every regular file below directory dir.
func (f *FS) originsBelow(ctx context.Context, dir string) error {
	return f.walkBelow(ctx, dir, func(p string, typ uint32) error {
		if typ != unix.S_IFREG {
			return nil
		}
		return f.setOrigin(p)
	})
}
