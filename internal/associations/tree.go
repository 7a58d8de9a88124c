package associations

import (
	"context"
	"errors"
	"io"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/ferry-hpc/ferry/internal/store"
)

// removeTree removes rel and everything below it from the store (without
// following symlinks: the store refuses to).
func removeTree(ctx context.Context, st *store.Store, rel string) error {
	if rel != "." {
		fi, err := st.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode&unix.S_IFMT != unix.S_IFDIR {
			return st.Unlink(rel)
		}
	}
	if err := removeChildren(ctx, st, rel); err != nil {
		return err
	}
	if rel == "." {
		return nil
	}
	err := st.Rmdir(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func removeChildren(ctx context.Context, st *store.Store, dir string) error {
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d, err := st.Readdir(dir)
		if err != nil {
			return err
		}
		ents, err := d.Next(256)
		d.Close()
		if len(ents) == 0 {
			if err == nil || errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		for _, e := range ents {
			child := e.Name
			if dir != "." {
				child = dir + "/" + e.Name
			}
			if err := removeTree(ctx, st, child); err != nil {
				return err
			}
		}
	}
}
