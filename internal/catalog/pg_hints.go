package catalog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The import hint queue on PostgreSQL (sqlite_hints.go). EnqueueHints
// locks import_hint_stats first (sequence numbers in commit order) and
// commits durably; ClaimHints takes rows with FOR UPDATE SKIP LOCKED.

func (c *pgCatalog) EnqueueHints(ctx context.Context, hints ...ImportHint) ([]HintOutcome, error) {
	if len(hints) == 0 {
		return nil, nil
	}
	for _, h := range hints {
		if err := CheckHint(h); err != nil {
			return nil, err
		}
	}
	out := make([]HintOutcome, len(hints))
	err := c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		var seq int64
		if err := tx.QueryRow(ctx, `SELECT last_seq FROM import_hint_stats WHERE one = 1 FOR UPDATE`).Scan(&seq); err != nil {
			return err
		}
		cur, err := c.pendingHints(ctx, tx, hints)
		if err != nil {
			return err
		}
		// Decide in order (a key given twice meets its own first hint),
		// then write everything in one round trip.
		now := c.opts.now().UnixNano()
		var b pgx.Batch
		for i, h := range hints {
			k := [2]string{h.Bucket, h.Key}
			prev, found := cur[k]
			switch {
			case !found:
				seq++
				b.Queue(`INSERT INTO import_hints
					(bucket, obj_key, kind, source, sequencer, event_ns, size, etag, seq, first_seq, enqueued_ns, updated_ns)
					VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10, $10)`,
					h.Bucket, h.Key, string(h.Kind), h.Source, h.Sequencer, ns(h.EventTime), h.Size, h.ETag, seq, now)
				out[i] = HintQueued
			case HintNewer(h, prev):
				// The key keeps its place, any claim and any backoff.
				seq++
				b.Queue(`UPDATE import_hints SET kind = $3, source = $4, sequencer = $5, event_ns = $6,
					size = $7, etag = $8, seq = $9, updated_ns = $10 WHERE bucket = $1 AND obj_key = $2`,
					h.Bucket, h.Key, string(h.Kind), h.Source, h.Sequencer, ns(h.EventTime), h.Size, h.ETag, seq, now)
				out[i] = HintReplaced
			default:
				out[i] = HintStale
				continue
			}
			// As read back: event times are kept in nanoseconds, UTC.
			h.EventTime = fromNSUTC(ns(h.EventTime))
			cur[k] = h
		}
		b.Queue(`UPDATE import_hint_stats SET last_seq = $1 WHERE one = 1`, seq)
		return tx.SendBatch(ctx, &b).Close()
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: enqueue hints: %w", err)
	}
	return out, nil
}

// pendingHints reads and locks the pending hints of the keys of hints.
func (c *pgCatalog) pendingHints(ctx context.Context, tx pgx.Tx, hints []ImportHint) (map[[2]string]ImportHint, error) {
	buckets, keys := make([]string, len(hints)), make([]string, len(hints))
	for i, h := range hints {
		buckets[i], keys[i] = h.Bucket, h.Key
	}
	rows, err := tx.Query(ctx, `SELECT `+hintCols+` FROM import_hints
		WHERE (bucket, obj_key) IN (SELECT * FROM unnest($1::text[], $2::text[])) FOR UPDATE`, buckets, keys)
	if err != nil {
		return nil, err
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (QueuedHint, error) { return scanHint(r) })
	if err != nil {
		return nil, err
	}
	cur := make(map[[2]string]ImportHint, len(hints))
	for _, q := range found {
		cur[[2]string{q.Bucket, q.Key}] = q.ImportHint
	}
	return cur, nil
}

func (c *pgCatalog) ClaimHints(ctx context.Context, owner string, n int, lease time.Duration) ([]QueuedHint, error) {
	if owner == "" || n <= 0 || lease <= 0 {
		return nil, fmt.Errorf("catalog: claim hints needs an owner, n > 0 and a lease > 0")
	}
	var out []QueuedHint
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		now := c.opts.now()
		rows, err := tx.Query(ctx, `SELECT `+hintCols+` FROM import_hints WHERE ready_ns <= $1
			ORDER BY ready_ns, first_seq LIMIT $2 FOR UPDATE SKIP LOCKED`, now.UnixNano(), n)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (QueuedHint, error) { return scanHint(r) })
		if err != nil || len(out) == 0 {
			return err
		}
		until := now.Add(lease)
		buckets, keys := make([]string, len(out)), make([]string, len(out))
		for i := range out {
			buckets[i], keys[i] = out[i].Bucket, out[i].Key
			out[i].Owner, out[i].ReadyAt = owner, until
		}
		_, err = tx.Exec(ctx, `UPDATE import_hints h SET owner = $1, ready_ns = $2
			FROM unnest($3::text[], $4::text[]) AS u(b, k) WHERE h.bucket = u.b AND h.obj_key = u.k`, owner, until.UnixNano(), buckets, keys)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: claim hints: %w", err)
	}
	return out, nil
}

func (c *pgCatalog) ExtendHintLease(ctx context.Context, owner string, hints []QueuedHint, lease time.Duration) (int, error) {
	buckets, keys := make([]string, len(hints)), make([]string, len(hints))
	for i, h := range hints {
		buckets[i], keys[i] = h.Bucket, h.Key
	}
	held := 0
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		until := c.opts.now().Add(lease).UnixNano()
		tag, err := tx.Exec(ctx, `UPDATE import_hints h SET ready_ns = $1
			FROM unnest($2::text[], $3::text[]) AS u(b, k) WHERE h.bucket = u.b AND h.obj_key = u.k AND h.owner = $4`, until, buckets, keys, owner)
		held = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: extend hint lease: %w", err)
	}
	return held, nil
}

func (c *pgCatalog) CompleteHint(ctx context.Context, h QueuedHint) (bool, error) {
	removed := false
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		removed = false
		tag, err := tx.Exec(ctx, `DELETE FROM import_hints WHERE bucket = $1 AND obj_key = $2 AND seq = $3`, h.Bucket, h.Key, h.Seq)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			removed = true
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE import_hints SET
			owner = CASE WHEN owner IS NOT DISTINCT FROM $4::text THEN NULL ELSE owner END,
			ready_ns = CASE WHEN owner IS NOT DISTINCT FROM $4::text THEN 0 ELSE ready_ns END,
			attempts = CASE WHEN owner IS NOT DISTINCT FROM $4::text THEN 0 ELSE attempts END
			WHERE bucket = $1 AND obj_key = $2 AND seq > $3`, h.Bucket, h.Key, h.Seq, nullOwner(h.Owner))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("catalog: complete hint %s/%s: %w", h.Bucket, h.Key, err)
	}
	return removed, nil
}

func (c *pgCatalog) FailHint(ctx context.Context, h QueuedHint, cause string, retryAt time.Time) error {
	if len(cause) > 1024 {
		cause = cause[:1024]
	}
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE import_hints SET owner = NULL, ready_ns = $1, attempts = attempts + 1, last_error = $2
			WHERE bucket = $3 AND obj_key = $4 AND owner IS NOT DISTINCT FROM $5::text`, max(ns(retryAt), 1), cause, h.Bucket, h.Key, nullOwner(h.Owner))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: fail hint %s/%s: %w", h.Bucket, h.Key, err)
	}
	return nil
}

func (c *pgCatalog) ReleaseHints(ctx context.Context, owner string) (int64, error) {
	if owner == "" {
		return 0, fmt.Errorf("catalog: release hints needs an owner")
	}
	var n int64
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE import_hints SET owner = NULL, ready_ns = $1 WHERE owner = $2`, max(c.opts.now().UnixNano(), 1), owner)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: release hints of %s: %w", owner, err)
	}
	return n, nil
}

func (c *pgCatalog) HintDepth(ctx context.Context) (int64, error) {
	return c.scalar(ctx, `SELECT coalesce(sum(n), 0)::bigint FROM hint_depth`)
}

func (c *pgCatalog) HintOldestAge(ctx context.Context) (time.Duration, error) {
	oldest, err := c.scalar(ctx, `SELECT coalesce(min(enqueued_ns), 0) FROM import_hints`)
	if err != nil || oldest == 0 {
		return 0, err
	}
	return max(c.opts.now().Sub(time.Unix(0, oldest)), 0), nil
}
