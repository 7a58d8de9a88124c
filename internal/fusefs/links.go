package fusefs

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
// mount records the names of multiply linked regular files in exporting
// associations (Journal.AddLinks: at link(2), and at the first lookup of
// each name, which covers links made outside the mount once the kernel
// has looked them up), and whenever it journals a change of such a file
// it journals the same change for every other recorded name that is still
// the same inode; a stale name (unlinked, or now another file) is
// forgotten. RENAME appends move recorded names in the catalog (a
// directory's too), so names below a renamed directory stay right.

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

// noteLinks records names of inode ino (a multiply linked regular file)
// in the journal when they are in an exporting association. A failure is
// logged, not returned: the name is recorded at its next use, and an
// export task covers what auto-export misses.
func (f *FS) noteLinks(ctx context.Context, ino uint64, rels ...string) {
	if f.jnl == nil {
		return
	}
	var add []string
	for _, rel := range rels {
		if f.jnl.Exports(rel) && f.links.first(linkKey{ino, rel}) {
			add = append(add, keypath.ToCatalog(rel))
		}
	}
	if len(add) == 0 {
		return
	}
	if err := f.jnl.AddLinks(context.WithoutCancel(ctx), ino, add...); err != nil {
		for _, p := range add {
			f.links.forget(linkKey{ino, keypath.FromCatalog(p)})
		}
		f.log.Warn("hard link names not recorded; their objects follow at the next export task", "paths", add, "err", err)
	}
}

// journalLinks journals kind for every other recorded name of inode st
// (changed and journaled under rel) that is still that inode, relaxed or
// durable like rel's own entry. It does nothing for a file with one name.
func (f *FS) journalLinks(ctx context.Context, st *unix.Stat_t, rel string, kind catalog.Kind, relaxed bool) error {
	if f.jnl == nil || !multiLinked(st) || !f.jnl.Exports(rel) {
		return nil
	}
	f.noteLinks(ctx, st.Ino, rel)
	names, err := f.jnl.Links(context.WithoutCancel(ctx), st.Ino)
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
		ost, err := f.store.Lstat(other)
		if err != nil || ost.Ino != st.Ino || ost.Dev != st.Dev {
			stale = append(stale, p)
			f.links.forget(linkKey{st.Ino, other})
			continue
		}
		entries = append(entries, catalog.JournalAppend{Path: other, Kind: kind, Relaxed: relaxed})
	}
	if len(stale) > 0 {
		if err := f.jnl.ForgetLinks(context.WithoutCancel(ctx), st.Ino, stale...); err != nil {
			f.log.Warn("stale hard link names kept", "paths", stale, "err", err)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return f.journal(ctx, slices.Clip(entries)...)
}
