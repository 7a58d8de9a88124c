package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
)

// Tasks on PostgreSQL (sqlite_tasks.go): AddTaskCounts is one UPDATE that
// adds, so workers on several nodes count into one task without reading it.

func (c *pgCatalog) CreateTask(ctx context.Context, t api.DataRepositoryTask, associationIDs []string, tok *dra.TokenRecord) (dra.TokenRecord, bool, error) {
	if t.TaskId == "" {
		return dra.TokenRecord{}, false, errors.New("catalog: task without an id")
	}
	rec, total, ok, failed, released, updated, err := taskColumns(t)
	if err != nil {
		return dra.TokenRecord{}, false, err
	}
	var prev dra.TokenRecord
	created := false
	err = c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		prev, created = dra.TokenRecord{}, false
		if tok != nil && tok.Token != "" {
			p, saved, err := c.saveTokenTx(ctx, tx, tok)
			if err != nil {
				return err
			}
			if !saved {
				prev = p
				return nil
			}
			prev = *tok
		}
		tag, err := tx.Exec(ctx, `INSERT INTO tasks VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING`,
			t.TaskId, t.FileSystemId, string(t.Type), string(t.Lifecycle), createdNS(t.CreationTime), updated, total, ok, failed, released, rec)
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("task %s: %w", t.TaskId, ErrExists)
		}
		if len(associationIDs) > 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO task_associations SELECT $1, a FROM unnest($2::text[]) AS u(a) ON CONFLICT DO NOTHING`, t.TaskId, associationIDs); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return dra.TokenRecord{}, false, fmt.Errorf("catalog: create task: %w", err)
	}
	return prev, created, nil
}

func (c *pgCatalog) Task(ctx context.Context, id string) (api.DataRepositoryTask, error) {
	t, err := scanTask(c.row(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	return t, err
}

func (c *pgCatalog) UpdateTask(ctx context.Context, id string, fn func(*api.DataRepositoryTask) error) (api.DataRepositoryTask, error) {
	var out api.DataRepositoryTask
	err := c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		t, err := scanTask(tx.QueryRow(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("task %s: %w", id, ErrNotFound)
		} else if err != nil {
			return err
		}
		if t, err = updatedTask(id, t, fn); err != nil {
			return err
		}
		rec, total, ok, failed, released, updated, err := taskColumns(t)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE tasks SET lifecycle = $1, type = $2, record = $3, total = $4, succeeded = $5, failed = $6, released = $7, updated_ns = $8 WHERE id = $9`,
			string(t.Lifecycle), string(t.Type), rec, total, ok, failed, released, updated, id); err != nil {
			return err
		}
		out = t
		return nil
	})
	return out, err
}

func (c *pgCatalog) AddTaskCounts(ctx context.Context, id string, d TaskCounts) error {
	return c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE tasks SET total = total + $1, succeeded = succeeded + $2, failed = failed + $3, released = released + $4, updated_ns = $5 WHERE id = $6`,
			d.Total, d.Succeeded, d.Failed, d.ReleasedBytes, c.opts.now().UnixNano(), id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

func (c *pgCatalog) TaskAssociations(ctx context.Context, id string) ([]string, error) {
	rows, err := c.query(ctx, `SELECT association_id FROM task_associations WHERE task_id = $1 ORDER BY association_id`, id)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return out, nil
}

func (c *pgCatalog) DescribeTasks(ctx context.Context, q dra.Query) ([]api.DataRepositoryTask, *dra.Cursor, error) {
	if id, err := c.missingID(ctx, "tasks", q.IDs); err != nil {
		return nil, nil, err
	} else if id != "" {
		return nil, nil, taskNotFound(id)
	}
	var w sqlWhere
	if len(q.IDs) > 0 {
		w.in("id", q.IDs)
	}
	if v, ok := q.Filters[api.FilterFileSystemID]; ok {
		w.in("fs_id", v)
	}
	if v, ok := q.Filters[api.FilterTaskLifecycle]; ok {
		w.in("lifecycle", v)
	}
	if v, ok := q.Filters[api.FilterAssociationID]; ok {
		var sub sqlWhere
		sub.in("association_id", v)
		w.add(`EXISTS (SELECT 1 FROM task_associations WHERE task_id = tasks.id AND `+sub.conds[0]+`)`, sub.args...)
	}
	pageWhere(&w, q)
	limit := max(q.MaxResults, 1)
	rows, err := c.query(ctx, rebind(`SELECT `+taskCols+` FROM tasks`+w.sql()+` ORDER BY created_ns, id LIMIT ?`), append(w.args, limit+1)...)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.DataRepositoryTask, error) { return scanTask(r) })
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	if items == nil {
		items = []api.DataRepositoryTask{}
	}
	if len(items) <= limit {
		return items, nil, nil
	}
	items = slices.Clip(items[:limit])
	last := items[limit-1]
	return items, &dra.Cursor{CreatedUnixNano: createdNS(last.CreationTime), ID: last.TaskId}, nil
}
