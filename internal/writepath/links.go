package writepath

import (
	"context"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/catalog"
	"github.com/ferry-hpc/ferry/internal/keypath"
)

// Hard links. The export journal names paths, but content and metadata
// are the inode's: a write through one name changes what every name
// holds, while S3 has no links — each name is its own object. So the
// Writer records the names of multiply linked regular files in exporting
// associations (Journal.AddLinks: at link(2), Writer.Link, and at the
// first lookup of each name, Writer.LookedUp, which covers links made
// outside the mount once the kernel has looked them up), and whenever it
// journals a change of such a file it journals the same change for every
// other recorded name that is still the same inode; a stale name
// (unlinked, or now another file) is forgotten. RENAME appends move
// recorded names in the catalog (a directory's too), so names below a
// renamed directory stay right.

// maxLinksSeen bounds the memory of names already recorded (a set that is
// emptied when full: a name seen again is only recorded again, which the
// catalog ignores).
const maxLinksSeen = 1 << 16

type linkKey struct {
	ino uint64
	rel string
}

type linksSeen struct {
	mu sync.Mutex
	m  map[linkKey]struct{}
}

// first reports whether k was not seen since the set was last emptied,
// and remembers it.
func (s *linksSeen) first(k linkKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; ok {
		return false
	}
	if s.m == nil || len(s.m) >= maxLinksSeen {
		s.m = make(map[linkKey]struct{})
	}
	s.m[k] = struct{}{}
	return true
}

// forget drops k (a name that went stale may come back).
func (s *linksSeen) forget(k linkKey) {
	s.mu.Lock()
	delete(s.m, k)
	s.mu.Unlock()
}

// multiLinked reports whether st is a regular file with several names.
func multiLinked(st *unix.Stat_t) bool {
	return st.Nlink > 1 && st.Mode&unix.S_IFMT == unix.S_IFREG
}

// LookedUp is told of every name rel looked up (st is its stat): the
// names of a multiply linked file are recorded (see above).
func (w *Writer) LookedUp(ctx context.Context, rel string, st *unix.Stat_t) {
	if multiLinked(st) {
		w.noteLinks(ctx, st.Ino, rel)
	}
}

// Link makes rel a new name of target in the store, journals it NEW
// (relaxed) and records both names of the file; it returns rel's stat.
func (w *Writer) Link(ctx context.Context, target, rel string) (unix.Stat_t, error) {
	if err := w.store.Link(target, rel); err != nil {
		return unix.Stat_t{}, err
	}
	st, err := w.store.Lstat(rel)
	if err != nil {
		return unix.Stat_t{}, err
	}
	if err := w.Made(ctx, rel); err != nil {
		return unix.Stat_t{}, err
	}
	w.noteLinks(ctx, st.Ino, target, rel)
	return st, nil
}

// MetaChanged journals a change of rel's metadata (chmod, chown, utimes,
// a truncate): CHANGED, relaxed, and the same for every other name of a
// hard-linked file, since metadata is the inode's.
func (w *Writer) MetaChanged(ctx context.Context, rel string) error {
	if err := w.journal(ctx, catalog.JournalAppend{Path: rel, Kind: catalog.KindChanged, Relaxed: true}); err != nil {
		return err
	}
	if st, err := w.store.Lstat(rel); err == nil {
		if err := w.journalLinks(ctx, &st, rel, catalog.KindChanged, true); err != nil {
			return err
		}
	}
	return nil
}

// noteLinks records names of inode ino (a multiply linked regular file)
// in the journal when they are in an exporting association. A failure is
// logged, not returned: the name is recorded at its next use, and an
// export task covers what auto-export misses.
func (w *Writer) noteLinks(ctx context.Context, ino uint64, rels ...string) {
	if w.jnl == nil {
		return
	}
	var add []string
	for _, rel := range rels {
		if w.jnl.Exports(rel) && w.links.first(linkKey{ino, rel}) {
			add = append(add, keypath.ToCatalog(rel))
		}
	}
	if len(add) == 0 {
		return
	}
	if err := w.jnl.AddLinks(context.WithoutCancel(ctx), ino, add...); err != nil {
		for _, p := range add {
			w.links.forget(linkKey{ino, keypath.FromCatalog(p)})
		}
		w.log.Warn("hard link names not recorded; their objects follow at the next export task", "paths", add, "err", err)
	}
}

// journalLinks journals kind for every other recorded name of inode st
// (changed and journaled under rel) that is still that inode, relaxed or
// durable like rel's own entry. It does nothing for a file with one name.
func (w *Writer) journalLinks(ctx context.Context, st *unix.Stat_t, rel string, kind catalog.Kind, relaxed bool) error {
	if w.jnl == nil || !multiLinked(st) || !w.jnl.Exports(rel) {
		return nil
	}
	w.noteLinks(ctx, st.Ino, rel)
	names, err := w.jnl.Links(context.WithoutCancel(ctx), st.Ino)
	if err != nil {
		return err
	}
	var entries []catalog.JournalAppend
	var stale []string
	for _, p := range names {
		other := keypath.FromCatalog(p)
		if other == rel {
			continue
		}
		ost, err := w.store.Lstat(other)
		if err != nil || ost.Ino != st.Ino || ost.Dev != st.Dev {
			stale = append(stale, p)
			w.links.forget(linkKey{st.Ino, other})
			continue
		}
		entries = append(entries, catalog.JournalAppend{Path: other, Kind: kind, Relaxed: relaxed})
	}
	if len(stale) > 0 {
		if err := w.jnl.ForgetLinks(context.WithoutCancel(ctx), st.Ino, stale...); err != nil {
			w.log.Warn("stale hard link names kept", "paths", stale, "err", err)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return w.journal(ctx, slices.Clip(entries)...)
}
