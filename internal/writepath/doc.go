// Package writepath is the write protocol of a ferry mount: what a change
// made through the mount does to content versions and the export journal,
// so that the exporter (internal/exporter) can push it to the repository.
// The FUSE nodes (internal/fusefs) translate requests and call a Writer;
// everything here is plain calls on a store (internal/store) and a catalog
// (internal/catalog), and its tests run without a mount.
//
// # Journal entries
//
// Every change inside an auto-exporting association (Journal.Exports,
// CatalogJournal over the association table) is appended to the export
// journal, after which the exporter is woken:
//
//   - mkdir, symlink, mknod and link append NEW for the new name
//     (Writer.Made, Writer.Link); unlink and rmdir DELETED (Writer.Unlink,
//     Writer.Rmdir: the exporter removes the object only with DELETED in
//     the policy, invariant 5 in docs/invariants.md); chmod, chown, utimes
//     and truncate CHANGED (Writer.MetaChanged); a content change NEW
//     while the repository never had the file (no `exists`), else CHANGED
//     (Writer.Commit, Writer.UnseenOpen);
//   - metadata calls and close append Relaxed (committed before the reply:
//     they survive kill -9 of the daemon; fsynced with the next durable
//     commit), fsync durably; a failed append fails the call (EIO), so
//     nothing is acknowledged that is not journaled (invariant 1);
//   - paths are store-relative in the catalog's form ("" for the root).
//
// # Versions and commits
//
// Every content change moves the file's content version
// (store.BumpVersion: an exported file becomes dirty). The FUSE node of an
// inode holds its Inode, each open its Handle:
//
//   - a write (BeginWrite, the pwrite, EndWrite) bumps the version before
//     its bytes land if no bump was made since the open or the exporter's
//     last VersionRead of the inode (a per-inode RWMutex: writes hold it
//     shared, VersionRead clears the bit under it exclusively), and, once
//     the exporter has read the inode's version (VersionRead since the
//     open, or among the last 4096 before it), again after they land — the
//     exporter reads the version after VersionRead returns, so a bump can
//     fall in between (invariant 2); an O_TRUNC open or fallocate counts as
//     a write (Changed), a truncate bumps around the size change (Resize);
//   - Commit (flush at every close(2), fsync, release) of an inode changed
//     or created since its last entry bumps once more — every acknowledged
//     byte has landed by then — and appends NEW or CHANGED, under every
//     name of a hard-linked file, committed before the call returns
//     (invariant 1), relaxed on close and durable on fsync (an fsync after
//     a relaxed close appends again, durably); commits of an inode run one
//     at a time, so a close that finds nothing left to journal returns only
//     after the commit that took the change has appended it;
//   - a writer the daemon does not see (FUSE passthrough, joining readers)
//     bumps and journals at its open (UnseenOpen), its commits compare the
//     inode's ctime, mtime and size with what they last saw, and while it
//     is open UnseenWriter tells the exporter not to mark the file clean.
//
// # Moves
//
// A rename (Writer.Rename) records where the objects of the files it
// moves are (store.MarkOrigins, under the store's MoveLock through the
// rename), takes a move record (catalog BeginMove) before the store
// renames, and appends RENAME (Tree for a directory), which ends the
// record in its transaction. A rename a dead daemon left unjournaled is
// journaled at the next start by RecoverMoves, before the exporter runs.
//
// # Hard links
//
// S3 has no links: each name is its own object. The names of multiply
// linked regular files are recorded in the catalog (at link and at the
// first lookup of each name), and a change journaled under one name is
// journaled for every other recorded name still the same inode (links.go).
package writepath
