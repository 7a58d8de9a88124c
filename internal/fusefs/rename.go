package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
)

// Rename passes renameat2 flags (RENAME_NOREPLACE, RENAME_EXCHANGE)
// through to the write path (writepath.Writer.Rename), which records the
// move, renames in the store and journals it.
func (n *Node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	p, ok := newParent.(*Node)
	if !ok || p.fsys != n.fsys {
		return syscall.EXDEV
	}
	if e := tooLong(name, newName); e != 0 {
		return e
	}
	return errno(n.fsys.wp.Rename(ctx, n.child(name), p.child(newName), flags))
}

// listedMover is what an Importer may offer to keep its record of listed
// directories right across a rename (internal/importer's Renamed and
// MovedListed; given to the write path as writepath.Config.Listed).
type listedMover interface {
	Renamed(ctx context.Context, from, to string) error
	MovedListed(ctx context.Context, from, to string) error
}
