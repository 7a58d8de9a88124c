package store

import (
	"context"
	"errors"
	"io"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/hsm"
	"github.com/ferry-hpc/ferry/internal/keypath"
)

// MarkOrigins records, in the state of rel (a regular file) or of every
// regular file below rel (a directory), the path the file has now as its
// Origin, for each file whose object the repository has (flag Exists) and
// that has no Origin yet. Call it, holding MoveLock exclusively, before
// renaming rel, and keep holding it through the rename: the object stays
// under the key of the recorded path until the exporter moves it, and a
// file's object key is never derived from a name a rename may have changed
// since (see State.Origin). A crash between MarkOrigins and the rename
// leaves origins equal to the current paths, which means the same as none.
//
// Multiply linked files that are not released are left alone: the state is
// the inode's, shared by names whose objects are under different keys, so
// one origin cannot describe them (the exporter moves their objects by the
// journal entry's old name).
//
// A directory is walked depth first, one batch of entries per level in
// memory: the cost grows with the number of entries below rel, one lstat
// each and one state read and write per file the repository has.
func (s *Store) MarkOrigins(ctx context.Context, rel string) error {
	st, err := s.Lstat(rel)
	if err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return s.markOrigin(rel, &st)
	case unix.S_IFDIR:
		return s.markOriginsBelow(ctx, rel)
	}
	return nil
}

var errNoChange = errors.New("no change")

func (s *Store) markOrigin(rel string, sta *unix.Stat_t) error {
	_, err := s.UpdateState(rel, func(st *State) error {
		if st.Origin != "" || !st.Flags.Has(hsm.Exists) ||
			(!st.Flags.Has(hsm.Released) && sta.Nlink > 1) {
			return errNoChange
		}
		st.Origin = rel
		return nil
	})
	if errors.Is(err, errNoChange) || errors.Is(err, ErrNoState) {
		return nil
	}
	return err
}

func (s *Store) markOriginsBelow(ctx context.Context, dir string) error {
	r, err := s.Readdir(dir)
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
			switch e.Type {
			case unix.S_IFDIR:
				err = s.markOriginsBelow(ctx, p)
			case unix.S_IFREG:
				var sta unix.Stat_t
				if sta, err = s.Lstat(p); err == nil {
					err = s.markOrigin(p, &sta)
				}
			}
			if err != nil {
				return err
			}
		}
	}
}
