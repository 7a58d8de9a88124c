package syncplan

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// Plan merges src and dst and calls emit for each action, in Rel order.
// Filtered-out files on either side are neither copied nor deleted. Plan
// stops at the first error from an iterator or emit.
//
// This is awscli's Comparator: a merge-join of two sorted streams.
//   - Rel only in src: ActCopy.
//   - Rel only in dst: ActDelete when opts.Delete, else nothing.
//   - Rel in both: ActCopy (with Dst and Exists set) when ShouldCopy.
//
// Filters are applied to both streams before the merge, as aws applies them
// to both file generators: an excluded destination file is not deleted, and
// an excluded source file is not copied.
//
// Invariants kept here: Plan holds one entry of each side, never reads a side
// more than one entry ahead of what it has emitted, and fails (instead of
// planning wrong deletes) if a side is not in strictly increasing Rel order.
// When Plan returns, it closes the iterators that implement io.Closer.
func Plan(ctx context.Context, src, dst Iterator, opts Options, emit func(Action) error) error {
	defer closeIter(src)
	defer closeIter(dst)
	filters := opts.Filters.compile()
	s := side{it: src, name: "source", filters: filters}
	d := side{it: dst, name: "destination", filters: filters}
	if err := s.advance(); err != nil {
		return err
	}
	if err := d.advance(); err != nil {
		return err
	}
	protect := "" // the Rel of the last skipped source entry
	for s.ok || d.ok {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.ok && s.cur.Skipped && (!d.ok || s.cur.Rel <= d.cur.Rel) {
			protect = s.cur.Rel
			if err := s.advance(); err != nil {
				return err
			}
			continue
		}
		if d.ok && protect != "" && (d.cur.Rel == protect || strings.HasSuffix(protect, "/") && strings.HasPrefix(d.cur.Rel, protect)) {
			// The source could not read this file or directory: keep
			// the destination's copy, whatever the options say.
			if err := d.advance(); err != nil {
				return err
			}
			continue
		}
		switch {
		case s.ok && (!d.ok || s.cur.Rel < d.cur.Rel):
			if err := emit(Action{Kind: ActCopy, Src: s.cur}); err != nil {
				return err
			}
			if err := s.advance(); err != nil {
				return err
			}
		case d.ok && (!s.ok || d.cur.Rel < s.cur.Rel):
			if opts.Delete {
				if err := emit(Action{Kind: ActDelete, Dst: d.cur, Exists: true}); err != nil {
					return err
				}
			}
			if err := d.advance(); err != nil {
				return err
			}
		default: // the same Rel on both sides
			if ShouldCopy(s.cur, d.cur, opts.Direction, opts.Compare) {
				if err := emit(Action{Kind: ActCopy, Src: s.cur, Dst: d.cur, Exists: true}); err != nil {
					return err
				}
			}
			if err := s.advance(); err != nil {
				return err
			}
			if err := d.advance(); err != nil {
				return err
			}
		}
	}
	return nil
}

// side is one input of the merge: its current entry and the last Rel read,
// to check the order.
type side struct {
	it      Iterator
	name    string
	filters compiledFilters
	cur     Entry
	ok      bool
	last    string
	any     bool
}

// advance reads the next entry that passes the filters.
func (s *side) advance() error {
	for {
		e, ok, err := s.it.Next()
		if err != nil {
			s.ok = false
			return err
		}
		if !ok {
			s.ok = false
			return nil
		}
		if s.any && e.Rel <= s.last {
			s.ok = false
			return fmt.Errorf("sync: the %s listing is out of order (%q after %q); refusing to plan", s.name, e.Rel, s.last)
		}
		s.last, s.any = e.Rel, true
		if s.filters.included(e.Rel) {
			s.cur, s.ok = e, true
			return nil
		}
	}
}

func closeIter(it Iterator) {
	if c, ok := it.(io.Closer); ok {
		c.Close()
	}
}
