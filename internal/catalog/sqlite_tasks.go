package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
)

// Tasks: the record is the api.DataRepositoryTask JSON without its counters;
// the counters live in columns so AddTaskCounts adds without reading (and,
// on PostgreSQL, without a row lock held across a read). Reading a task puts
// them back into Status.

const taskCols = `record, total, succeeded, failed, released, updated_ns`

func scanTask(sc interface{ Scan(...any) error }) (api.DataRepositoryTask, error) {
	var t api.DataRepositoryTask
	var rec string
	var total, ok, failed, released, updated int64
	if err := sc.Scan(&rec, &total, &ok, &failed, &released, &updated); err != nil {
		return t, err
	}
	if err := json.Unmarshal([]byte(rec), &t); err != nil {
		return t, fmt.Errorf("catalog: corrupt task record: %w", err)
	}
	if t.Status != nil || total|ok|failed|released|updated != 0 {
		if t.Status == nil {
			t.Status = &api.DataRepositoryTaskStatus{}
		}
		t.Status.TotalCount, t.Status.SucceededCount, t.Status.FailedCount = total, ok, failed
		if released != 0 || t.Status.ReleasedCapacity != nil {
			t.Status.ReleasedCapacity = &released
		}
		if updated != 0 {
			t.Status.LastUpdatedTime = api.TimePtr(fromNS(updated))
		}
	}
	return t, nil
}

// taskColumns splits t into its record (counters left out) and counters.
func taskColumns(t api.DataRepositoryTask) (rec string, total, ok, failed, released, updated int64, err error) {
	if s := t.Status; s != nil {
		total, ok, failed = s.TotalCount, s.SucceededCount, s.FailedCount
		if s.ReleasedCapacity != nil {
			released = *s.ReleasedCapacity
		}
		if s.LastUpdatedTime != nil {
			updated = s.LastUpdatedTime.UnixNano()
		}
		t.Status = &api.DataRepositoryTaskStatus{} // keep "has a Status"
		if s.ReleasedCapacity != nil {
			t.Status.ReleasedCapacity = new(int64)
		}
	}
	b, err := json.Marshal(t)
	return string(b), total, ok, failed, released, updated, err
}

func (c *sqliteCatalog) CreateTask(ctx context.Context, t api.DataRepositoryTask, associationIDs []string, tok *dra.TokenRecord) (dra.TokenRecord, bool, error) {
	if t.TaskId == "" {
		return dra.TokenRecord{}, false, errors.New("catalog: task without an id")
	}
	rec, total, ok, failed, released, updated, err := taskColumns(t)
	if err != nil {
		return dra.TokenRecord{}, false, err
	}
	var prev dra.TokenRecord
	created := false
	err = c.write(ctx, durable, func(ctx context.Context) error {
		if tok != nil && tok.Token != "" {
			p, saved, err := c.saveTokenTx(ctx, tok)
			if err != nil {
				return err
			}
			if !saved {
				prev = p
				return nil
			}
			prev = *tok
		}
		res, err := c.wexec(ctx, `INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			t.TaskId, t.FileSystemId, string(t.Type), string(t.Lifecycle), createdNS(t.CreationTime), updated, total, ok, failed, released, rec)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("task %s: %w", t.TaskId, ErrExists)
		}
		for _, a := range associationIDs {
			if _, err := c.wexec(ctx, `INSERT INTO task_associations VALUES (?, ?) ON CONFLICT DO NOTHING`, t.TaskId, a); err != nil {
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

func (c *sqliteCatalog) Task(ctx context.Context, id string) (api.DataRepositoryTask, error) {
	row, err := c.rrow(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = ?`, id)
	if err != nil {
		return api.DataRepositoryTask{}, err
	}
	t, err := scanTask(row)
	if errors.Is(err, sql.ErrNoRows) {
		return t, fmt.Errorf("task %s: %w", id, ErrNotFound)
	}
	return t, err
}

func (c *sqliteCatalog) UpdateTask(ctx context.Context, id string, fn func(*api.DataRepositoryTask) error) (api.DataRepositoryTask, error) {
	var out api.DataRepositoryTask
	err := c.write(ctx, durable, func(ctx context.Context) error {
		t, err := scanTask(c.wrow(ctx, `SELECT `+taskCols+` FROM tasks WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
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
		if _, err := c.wexec(ctx, `UPDATE tasks SET lifecycle = ?, type = ?, record = ?, total = ?, succeeded = ?, failed = ?, released = ?, updated_ns = ? WHERE id = ?`,
			string(t.Lifecycle), string(t.Type), rec, total, ok, failed, released, updated, id); err != nil {
			return err
		}
		out = t
		return nil
	})
	return out, err
}

func (c *sqliteCatalog) AddTaskCounts(ctx context.Context, id string, d TaskCounts) error {
	return c.write(ctx, durable, func(ctx context.Context) error {
		res, err := c.wexec(ctx, `UPDATE tasks SET total = total + ?, succeeded = succeeded + ?, failed = failed + ?, released = released + ?, updated_ns = ? WHERE id = ?`,
			d.Total, d.Succeeded, d.Failed, d.ReleasedBytes, c.opts.now().UnixNano(), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("task %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

func (c *sqliteCatalog) TaskAssociations(ctx context.Context, id string) ([]string, error) {
	rows, err := c.rquery(ctx, `SELECT association_id FROM task_associations WHERE task_id = ? ORDER BY association_id`, id)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (c *sqliteCatalog) DescribeTasks(ctx context.Context, q dra.Query) ([]api.DataRepositoryTask, *dra.Cursor, error) {
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
	rows, err := c.rdb.QueryContext(ctx, `SELECT `+taskCols+` FROM tasks`+w.sql()+` ORDER BY created_ns, id LIMIT ?`, append(w.args, limit+1)...)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	defer rows.Close()
	items := []api.DataRepositoryTask{}
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, nil, err
		}
		items = append(items, t)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	if len(items) <= limit {
		return items, nil, nil
	}
	items = slices.Clip(items[:limit])
	last := items[limit-1]
	return items, &dra.Cursor{CreatedUnixNano: createdNS(last.CreationTime), ID: last.TaskId}, nil
}
