package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Move records and hard-link names on SQLite (see BeginMove and AddLinks
// in catalog.go). Both are committed relaxed, like the mount's close and
// metadata appends they accompany.

func (c *sqliteCatalog) BeginMove(ctx context.Context, from, to string) (int64, error) {
	if err := checkPath(from); err != nil {
		return 0, err
	}
	if err := checkPath(to); err != nil {
		return 0, err
	}
	var id int64
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		return c.wrow(ctx, `INSERT INTO moves (from_path, to_path, created_ns) VALUES (?, ?, ?) RETURNING id`,
			from, to, c.opts.now().UnixNano()).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: begin move %q → %q: %w", from, to, err)
	}
	return id, nil
}

func (c *sqliteCatalog) EndMove(ctx context.Context, id int64) error {
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		_, err := c.wexec(ctx, `DELETE FROM moves WHERE id = ?`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: end move %d: %w", id, err)
	}
	return nil
}

func (c *sqliteCatalog) FinishMove(ctx context.Context, id int64) error {
	err := c.write(ctx, relaxed, func(ctx context.Context) error { return c.finishMove(ctx, id) })
	if err != nil {
		return fmt.Errorf("catalog: finish move %d: %w", id, err)
	}
	return nil
}

// finishMove removes move record id and, if it was there, moves the
// listed-directory records of its old name to its new name, inside the
// caller's transaction: once the record is gone nothing moves them
// again, so a repeat (recovery after a crash) is harmless.
func (c *sqliteCatalog) finishMove(ctx context.Context, id int64) error {
	var from, to string
	err := c.wrow(ctx, `DELETE FROM moves WHERE id = ? RETURNING from_path, to_path`, id).Scan(&from, &to)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return c.moveListed(ctx, from, to)
}

func (c *sqliteCatalog) Moves(ctx context.Context) ([]Move, error) {
	rows, err := c.rquery(ctx, `SELECT id, from_path, to_path, created_ns FROM moves ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("catalog: moves: %w", err)
	}
	defer rows.Close()
	var out []Move
	for rows.Next() {
		var m Move
		var ns int64
		if err := rows.Scan(&m.ID, &m.From, &m.To, &ns); err != nil {
			return nil, fmt.Errorf("catalog: moves: %w", err)
		}
		m.Created = time.Unix(0, ns)
		out = append(out, m)
	}
	return out, rows.Err()
}

func (c *sqliteCatalog) AddLinks(ctx context.Context, ino uint64, paths ...string) error {
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return err
		}
	}
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		for _, p := range paths {
			if _, err := c.wexec(ctx, `INSERT INTO links VALUES (?, ?) ON CONFLICT DO NOTHING`, int64(ino), p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: add links of inode %d: %w", ino, err)
	}
	return nil
}

func (c *sqliteCatalog) Links(ctx context.Context, ino uint64) ([]string, error) {
	rows, err := c.rquery(ctx, `SELECT path FROM links WHERE ino = ? ORDER BY path`, int64(ino))
	if err != nil {
		return nil, fmt.Errorf("catalog: links of inode %d: %w", ino, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("catalog: links of inode %d: %w", ino, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (c *sqliteCatalog) ForgetLinks(ctx context.Context, ino uint64, paths ...string) error {
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		if len(paths) == 0 {
			_, err := c.wexec(ctx, `DELETE FROM links WHERE ino = ?`, int64(ino))
			return err
		}
		for _, p := range paths {
			if _, err := c.wexec(ctx, `DELETE FROM links WHERE ino = ? AND path = ?`, int64(ino), p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("catalog: forget links of inode %d: %w", ino, err)
	}
	return nil
}

// moveLinks renames recorded link names inside a RENAME's transaction: the
// name from becomes to and, for a tree, every name below from moves below
// to. A name that lands on one already recorded for the same inode merges.
func (c *sqliteCatalog) moveLinks(ctx context.Context, from, to string, tree bool) error {
	type row struct {
		ino  int64
		path string
	}
	q, args := `SELECT ino, path FROM links WHERE path = ?`, []any{from}
	if tree {
		lo, hi := prefixRange(from)
		q, args = `SELECT ino, path FROM links WHERE path = ?1 OR (path >= ?2 AND path < ?3)`, []any{from, lo, hi}
	}
	rows, err := c.wc.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	var moved []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.ino, &r.path); err != nil {
			rows.Close()
			return err
		}
		moved = append(moved, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range moved {
		dst := to + r.path[len(from):]
		if _, err := c.wexec(ctx, `DELETE FROM links WHERE ino = ? AND path = ?`, r.ino, r.path); err != nil {
			return err
		}
		if _, err := c.wexec(ctx, `INSERT INTO links VALUES (?, ?) ON CONFLICT DO NOTHING`, r.ino, dst); err != nil {
			return err
		}
	}
	return nil
}
