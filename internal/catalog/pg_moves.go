package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Move records and hard-link names on PostgreSQL (sqlite_moves.go).

func (c *pgCatalog) BeginMove(ctx context.Context, from, to string) (int64, error) {
	if err := checkPath(from); err != nil {
		return 0, err
	}
	if err := checkPath(to); err != nil {
		return 0, err
	}
	var id int64
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		return tx.QueryRow(ctx, `INSERT INTO moves (from_path, to_path, created_ns) VALUES ($1, $2, $3) RETURNING id`,
			from, to, c.opts.now().UnixNano()).Scan(&id)
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: begin move %q → %q: %w", from, to, err)
	}
	return id, nil
}

func (c *pgCatalog) EndMove(ctx context.Context, id int64) error {
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM moves WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: end move %d: %w", id, err)
	}
	return nil
}

func (c *pgCatalog) FinishMove(ctx context.Context, id int64) error {
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error { return pgFinishMove(ctx, tx, id) })
	if err != nil {
		return fmt.Errorf("catalog: finish move %d: %w", id, err)
	}
	return nil
}

// pgFinishMove is sqliteCatalog.finishMove on PostgreSQL.
func pgFinishMove(ctx context.Context, tx pgx.Tx, id int64) error {
	var from, to string
	err := tx.QueryRow(ctx, `DELETE FROM moves WHERE id = $1 RETURNING from_path, to_path`, id).Scan(&from, &to)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return pgMoveListed(ctx, tx, from, to)
}

func (c *pgCatalog) Moves(ctx context.Context) ([]Move, error) {
	rows, err := c.query(ctx, `SELECT id, from_path, to_path, created_ns FROM moves ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("catalog: moves: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Move, error) {
		var m Move
		var ns int64
		err := r.Scan(&m.ID, &m.From, &m.To, &ns)
		m.Created = time.Unix(0, ns)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: moves: %w", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func (c *pgCatalog) AddLinks(ctx context.Context, ino uint64, paths ...string) error {
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return err
		}
	}
	if len(paths) == 0 {
		return nil
	}
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO links SELECT $1, p FROM unnest($2::text[]) AS u(p) ON CONFLICT DO NOTHING`, int64(ino), paths)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: add links of inode %d: %w", ino, err)
	}
	return nil
}

func (c *pgCatalog) Links(ctx context.Context, ino uint64) ([]string, error) {
	rows, err := c.query(ctx, `SELECT path FROM links WHERE ino = $1 ORDER BY path`, int64(ino))
	if err != nil {
		return nil, fmt.Errorf("catalog: links of inode %d: %w", ino, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("catalog: links of inode %d: %w", ino, err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

func (c *pgCatalog) ForgetLinks(ctx context.Context, ino uint64, paths ...string) error {
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		if len(paths) == 0 {
			_, err := tx.Exec(ctx, `DELETE FROM links WHERE ino = $1`, int64(ino))
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM links WHERE ino = $1 AND path = ANY($2)`, int64(ino), paths)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: forget links of inode %d: %w", ino, err)
	}
	return nil
}

// pgMoveLinks is sqliteCatalog.moveLinks on PostgreSQL.
func pgMoveLinks(ctx context.Context, tx pgx.Tx, from, to string, tree bool) error {
	type row struct {
		ino  int64
		path string
	}
	q, args := `SELECT ino, path FROM links WHERE path = $1 FOR UPDATE`, []any{from}
	if tree {
		lo, hi := prefixRange(from)
		q, args = `SELECT ino, path FROM links WHERE path = $1 OR (path >= $2 AND path < $3) FOR UPDATE`, []any{from, lo, hi}
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	moved, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.ino, &x.path)
		return x, err
	})
	if err != nil {
		return err
	}
	for _, r := range moved {
		dst := to + r.path[len(from):]
		if _, err := tx.Exec(ctx, `DELETE FROM links WHERE ino = $1 AND path = $2`, r.ino, r.path); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO links VALUES ($1, $2) ON CONFLICT DO NOTHING`, r.ino, dst); err != nil {
			return err
		}
	}
	return nil
}
