package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
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
// RENAME_EXCHANGE swaps two regular files or symlinks (both journaled
// CHANGED); inside an exporting association it is refused with EINVAL
// for directories (their objects' prefixes cannot be swapped) and for
// released files (their objects would be under each other's keys).
func (n *Node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	p, ok := newParent.(*Node)
	if !ok || p.fsys != n.fsys {
		return syscall.EXDEV
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
			catalog.JournalAppend{Path: from, Kind: catalog.KindChanged},
			catalog.JournalAppend{Path: to, Kind: catalog.KindChanged}))
	}
	if err := f.originBeforeRename(ctx, from, &st); err != nil {
		return errno(err)
	}
	if exports && !isDir {
		if err := f.journal(ctx, catalog.JournalAppend{Path: to, Kind: catalog.KindChanged}); err != nil {
			return errno(err)
		}
	}
	if err := f.store.Rename(from, to, uint(flags)); err != nil {
		return errno(err)
	}
	return errno(f.journal(ctx, catalog.JournalAppend{Path: to, Kind: catalog.KindRename, OldPath: from, Tree: isDir}))
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

// originBeforeRename is filled in by the released-file rename support.
func (f *FS) originBeforeRename(ctx context.Context, rel string, st *unix.Stat_t) error {
	return nil
}
