package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The import hint queue on SQLite.
//
// At-least-once intake, catalog half: EnqueueHints commits with
// synchronous=FULL before it returns, so a hint whose event was answered
// 200 survives kill -9 and a power cut (catalogtest HintsSurviveReopen;
// the sender is told only after this returns: internal/events). The
// importer's side — ClaimHints, ExtendHintLease, CompleteHint, FailHint —
// commits with synchronous=NORMAL, as the exporter's journal calls do: a
// power cut may lose a completion, and the hint is checked again, which is
// harmless (the repository is the truth).
//
// One row per (bucket, obj_key). seq is the latest sequence number that
// changed the row (CompleteHint compares it), first_seq the first: the
// key's place in the queue, which later hints for the key keep.

const hintCols = `bucket, obj_key, kind, source, sequencer, event_ns, size, etag, seq, first_seq, enqueued_ns, updated_ns, ready_ns, coalesce(owner, ''), attempts, last_error`

func scanHint(sc interface{ Scan(...any) error }) (QueuedHint, error) {
	var h QueuedHint
	var kind string
	var ev, enq, upd, ready int64
	err := sc.Scan(&h.Bucket, &h.Key, &kind, &h.Source, &h.Sequencer, &ev, &h.Size, &h.ETag, &h.Seq, &h.FirstSeq,
		&enq, &upd, &ready, &h.Owner, &h.Attempts, &h.LastError)
	h.Kind = HintKind(kind)
	h.EventTime, h.EnqueuedAt, h.UpdatedAt, h.ReadyAt = fromNSUTC(ev), fromNS(enq), fromNS(upd), fromNS(ready)
	return h, err
}

// fromNSUTC is fromNS in UTC (event times are shown as senders give them).
func fromNSUTC(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (c *sqliteCatalog) EnqueueHints(ctx context.Context, hints ...ImportHint) ([]HintOutcome, error) {
	if len(hints) == 0 {
		return nil, nil
	}
	for _, h := range hints {
		if err := CheckHint(h); err != nil {
			return nil, err
		}
	}
	out := make([]HintOutcome, len(hints))
	err := c.write(ctx, durable, func(ctx context.Context) error {
		var seq int64
		if err := c.wrow(ctx, `SELECT last_seq FROM import_hint_stats WHERE one = 1`).Scan(&seq); err != nil {
			return err
		}
		now := c.opts.now().UnixNano()
		for i, h := range hints {
			cur, err := scanHint(c.wrow(ctx, `SELECT `+hintCols+` FROM import_hints WHERE bucket = ? AND obj_key = ?`, h.Bucket, h.Key))
			switch {
			case errors.Is(err, sql.ErrNoRows):
				seq++
				if _, err := c.wexec(ctx, `INSERT INTO import_hints
					(bucket, obj_key, kind, source, sequencer, event_ns, size, etag, seq, first_seq, enqueued_ns, updated_ns)
					VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?10)`,
					h.Bucket, h.Key, string(h.Kind), h.Source, h.Sequencer, ns(h.EventTime), h.Size, h.ETag, seq, now); err != nil {
					return fmt.Errorf("enqueue %s/%s: %w", h.Bucket, h.Key, err)
				}
				out[i] = HintQueued
			case err != nil:
				return fmt.Errorf("enqueue %s/%s: %w", h.Bucket, h.Key, err)
			case HintNewer(h, cur.ImportHint):
				// The key keeps its place (first_seq, enqueued_ns), any
				// claim and any backoff; the new seq makes a claim's
				// CompleteHint keep it pending.
				seq++
				if _, err := c.wexec(ctx, `UPDATE import_hints SET kind = ?3, source = ?4, sequencer = ?5, event_ns = ?6,
					size = ?7, etag = ?8, seq = ?9, updated_ns = ?10 WHERE bucket = ?1 AND obj_key = ?2`,
					h.Bucket, h.Key, string(h.Kind), h.Source, h.Sequencer, ns(h.EventTime), h.Size, h.ETag, seq, now); err != nil {
					return fmt.Errorf("enqueue %s/%s: %w", h.Bucket, h.Key, err)
				}
				out[i] = HintReplaced
			default:
				out[i] = HintStale
			}
		}
		_, err := c.wexec(ctx, `UPDATE import_hint_stats SET last_seq = ? WHERE one = 1`, seq)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: enqueue hints: %w", err)
	}
	return out, nil
}

func (c *sqliteCatalog) ClaimHints(ctx context.Context, owner string, n int, lease time.Duration) ([]QueuedHint, error) {
	if owner == "" || n <= 0 || lease <= 0 {
		return nil, fmt.Errorf("catalog: claim hints needs an owner, n > 0 and a lease > 0")
	}
	var out []QueuedHint
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		now := c.opts.now()
		s, err := c.ws(ctx, `SELECT `+hintCols+` FROM import_hints WHERE ready_ns <= ? ORDER BY ready_ns, first_seq LIMIT ?`)
		if err != nil {
			return err
		}
		rows, err := s.QueryContext(ctx, now.UnixNano(), n)
		if err != nil {
			return err
		}
		out = out[:0]
		for rows.Next() {
			h, err := scanHint(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		until := now.Add(lease)
		for i := range out {
			if _, err := c.wexec(ctx, `UPDATE import_hints SET owner = ?, ready_ns = ? WHERE bucket = ? AND obj_key = ?`,
				owner, until.UnixNano(), out[i].Bucket, out[i].Key); err != nil {
				return err
			}
			out[i].Owner, out[i].ReadyAt = owner, until
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: claim hints: %w", err)
	}
	return out, nil
}

func (c *sqliteCatalog) ExtendHintLease(ctx context.Context, owner string, hints []QueuedHint, lease time.Duration) (int, error) {
	held := 0
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		held = 0
		until := c.opts.now().Add(lease).UnixNano()
		for _, h := range hints {
			res, err := c.wexec(ctx, `UPDATE import_hints SET ready_ns = ? WHERE bucket = ? AND obj_key = ? AND owner = ?`,
				until, h.Bucket, h.Key, owner)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 1 {
				held++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: extend hint lease: %w", err)
	}
	return held, nil
}

func (c *sqliteCatalog) CompleteHint(ctx context.Context, h QueuedHint) (bool, error) {
	removed := false
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		res, err := c.wexec(ctx, `DELETE FROM import_hints WHERE bucket = ? AND obj_key = ? AND seq = ?`, h.Bucket, h.Key, h.Seq)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 1 {
			removed = true
			return nil
		}
		// A newer hint arrived while h was checked: release the claim so
		// the key is checked again at once.
		_, err = c.wexec(ctx, `UPDATE import_hints SET
			owner = CASE WHEN owner IS ?4 THEN NULL ELSE owner END,
			ready_ns = CASE WHEN owner IS ?4 THEN 0 ELSE ready_ns END,
			attempts = CASE WHEN owner IS ?4 THEN 0 ELSE attempts END
			WHERE bucket = ?1 AND obj_key = ?2 AND seq > ?3`, h.Bucket, h.Key, h.Seq, nullOwner(h.Owner))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("catalog: complete hint %s/%s: %w", h.Bucket, h.Key, err)
	}
	return removed, nil
}

func (c *sqliteCatalog) FailHint(ctx context.Context, h QueuedHint, cause string, retryAt time.Time) error {
	if len(cause) > 1024 {
		cause = cause[:1024]
	}
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		_, err := c.wexec(ctx, `UPDATE import_hints SET owner = NULL, ready_ns = ?, attempts = attempts + 1, last_error = ?
			WHERE bucket = ? AND obj_key = ? AND owner IS ?`, max(ns(retryAt), 1), cause, h.Bucket, h.Key, nullOwner(h.Owner))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: fail hint %s/%s: %w", h.Bucket, h.Key, err)
	}
	return nil
}

func (c *sqliteCatalog) ReleaseHints(ctx context.Context, owner string) (int64, error) {
	if owner == "" {
		return 0, fmt.Errorf("catalog: release hints needs an owner")
	}
	var n int64
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		r, err := c.wexec(ctx, `UPDATE import_hints SET owner = NULL, ready_ns = ? WHERE owner = ?`, max(c.opts.now().UnixNano(), 1), owner)
		if err != nil {
			return err
		}
		n, err = r.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: release hints of %s: %w", owner, err)
	}
	return n, nil
}

func (c *sqliteCatalog) HintDepth(ctx context.Context) (int64, error) {
	return c.scalar(ctx, `SELECT depth FROM import_hint_stats WHERE one = 1`)
}

func (c *sqliteCatalog) HintOldestAge(ctx context.Context) (time.Duration, error) {
	oldest, err := c.scalar(ctx, `SELECT coalesce(min(enqueued_ns), 0) FROM import_hints`)
	if err != nil || oldest == 0 {
		return 0, err
	}
	return max(c.opts.now().Sub(time.Unix(0, oldest)), 0), nil
}
