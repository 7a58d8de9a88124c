// Package writepath is the write protocol of a ferry mount: what a change
// made through the mount does to the export journal, so that the exporter
// (internal/exporter) can push it to the repository. The FUSE nodes
// (internal/fusefs) translate requests and call a Writer; everything here
// is plain calls on a store (internal/store) and a catalog
// (internal/catalog), and its tests run without a mount.
//
// # Journal entries
//
// Every change inside an auto-exporting association (Journal.Exports,
// CatalogJournal over the association table) is appended to the export
// journal, after which the exporter is woken (Writer.Append):
//
//   - mkdir, symlink, mknod and link append NEW for the new name
//     (Writer.Made, Writer.Link); unlink and rmdir DELETED (Writer.Unlink,
//     Writer.Rmdir: the exporter removes the object only with DELETED in
//     the policy, invariant 5 in docs/invariants.md); chmod, chown, utimes
//     and truncate CHANGED (Writer.MetaChanged); a content change NEW
//     while the repository never had the file (no `exists`), else CHANGED
//     (Writer.JournalContent);
//   - metadata calls and close append Relaxed (committed before the reply:
//     they survive kill -9 of the daemon; fsynced with the next durable
//     commit), fsync durably; a failed append fails the call (EIO), so
//     nothing is acknowledged that is not journaled (invariant 1);
//   - paths are store-relative in the catalog's form ("" for the root).
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
