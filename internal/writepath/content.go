package writepath

import (
	"context"
	"os"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/hsm"
)

// KindFor is the journal kind of a content change of regular file fl:
// NEW while the repository has never had it (no `exists`), else CHANGED.
func (w *Writer) KindFor(fl *os.File) catalog.Kind {
	st, err := w.store.FileState(fl)
	if err == nil && st.Flags.Has(hsm.Exists) {
		return catalog.KindChanged
	}
	return catalog.KindNew
}

// JournalContent appends NEW or CHANGED for a content change of open file
// fl (descriptor fd) under its path rel and every other name of a
// hard-linked file (the content is the inode's; see links.go).
func (w *Writer) JournalContent(ctx context.Context, rel string, fl *os.File, fd int, relaxed bool) error {
	kind := w.KindFor(fl)
	if err := w.Append(ctx, catalog.JournalAppend{Path: rel, Kind: kind, Relaxed: relaxed}); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	return w.journalLinks(ctx, &st, rel, kind, relaxed)
}
