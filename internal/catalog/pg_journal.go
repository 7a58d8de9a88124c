package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// The export journal on PostgreSQL: the SQLite engine's semantics
// (sqlite_journal.go, "Renames before export" in catalog.go), across
// nodes. Append group-commits as on SQLite; its transaction locks
// journal_stats first, so appends of all nodes are serialized and
// sequence numbers follow commit order. Claim takes ready rows with FOR
// UPDATE SKIP LOCKED, so claimers on several nodes never wait for each
// other nor take the same entry; a rename being appended locks the rows it
// settles (FOR UPDATE), so a claim never takes an entry the rename is
// dropping or moving. The exporter's calls commit with
// synchronous_commit=off (see pgCatalog).

func (c *pgCatalog) Append(ctx context.Context, entries ...JournalAppend) error {
	if len(entries) == 0 {
		return nil
	}
	for _, e := range entries {
		if err := validAppend(e); err != nil {
			return err
		}
	}
	r := &appendReq{entries: entries, done: make(chan error, 1)}
	c.appendMu.RLock()
	if c.closed {
		c.appendMu.RUnlock()
		return ErrClosed
	}
	select {
	case c.appendCh <- r:
	case <-ctx.Done():
		c.appendMu.RUnlock()
		return ctx.Err()
	}
	c.appendMu.RUnlock()
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // not acknowledged; it may still commit
	}
}

// pgUpsertJournal is upsertJournal (sqlite_journal.go) in PostgreSQL.
const pgUpsertJournal = `INSERT INTO journal AS j (path, seq, first_seq, kind, old_path, version, enqueued_ns, updated_ns)
VALUES ($1, $2, $2, $3, $4, $5, $6, $6)
ON CONFLICT (path) DO UPDATE SET
	seq = excluded.seq,
	kind = CASE
		WHEN j.kind = 'NEW' AND excluded.kind = 'CHANGED' THEN 'NEW'
		WHEN j.kind = 'RENAME' AND excluded.kind IN ('CHANGED', 'NEW') THEN 'RENAME'
		ELSE excluded.kind END,
	old_path = CASE
		WHEN j.kind = 'NEW' AND excluded.kind = 'CHANGED' THEN ''
		WHEN j.kind = 'RENAME' AND excluded.kind IN ('CHANGED', 'NEW') THEN j.old_path
		ELSE excluded.old_path END,
	version = excluded.version,
	updated_ns = excluded.updated_ns,
	ready_ns = CASE WHEN j.ready_ns = ` + parkedSQL + ` THEN 0 ELSE j.ready_ns END`

// pgCarry gives path the queue place of an entry a rename absorbed.
const pgCarry = `UPDATE journal SET first_seq = least(first_seq, $1), enqueued_ns = least(enqueued_ns, $2) WHERE path = $3`

func (c *pgCatalog) commitAppends(batch []*appendReq) error {
	err := c.tx(context.Background(), durable, func(ctx context.Context, tx pgx.Tx) error {
		// Reserve one sequence number per entry (this locks the row
		// until commit); a tree rename taking more records its end.
		n := 0
		for _, r := range batch {
			n += len(r.entries)
		}
		var seq int64
		if err := tx.QueryRow(ctx, `UPDATE journal_stats SET last_seq = last_seq + $1 WHERE one = 1 RETURNING last_seq - $1`, n).Scan(&seq); err != nil {
			return err
		}
		reserved := seq + int64(n)
		now := c.opts.now().UnixNano()
		// Plain entries go to the server in one batch (one round trip);
		// renames and move ends, which read, flush it first.
		var b pgx.Batch
		flush := func() error {
			if b.Len() == 0 {
				return nil
			}
			err := tx.SendBatch(ctx, &b).Close()
			b = pgx.Batch{}
			return err
		}
		for _, r := range batch {
			for _, e := range r.entries {
				if e.Kind != KindRename && e.EndMove == 0 {
					seq++
					b.Queue(pgUpsertJournal, e.Path, seq, string(e.Kind), e.OldPath, e.Version, now)
					continue
				}
				if err := flush(); err != nil {
					return err
				}
				if err := c.appendOne(ctx, tx, e, now, &seq); err != nil {
					return fmt.Errorf("append %q: %w", e.Path, err)
				}
			}
		}
		if seq != reserved {
			b.Queue(`UPDATE journal_stats SET last_seq = $1 WHERE one = 1`, seq)
		}
		return flush()
	})
	if err != nil {
		return fmt.Errorf("catalog: journal append: %w", err)
	}
	return nil
}

// appendOne appends a RENAME or an entry ending a move, in the append's
// transaction.
func (c *pgCatalog) appendOne(ctx context.Context, tx pgx.Tx, e JournalAppend, now int64, seq *int64) error {
	var carry *carried
	if e.Kind == KindRename {
		if err := pgMoveLinks(ctx, tx, e.OldPath, e.Path, e.Tree); err != nil {
			return err
		}
		var err error
		if e, carry, err = c.settleRename(ctx, tx, e, now, seq); err != nil {
			return err
		}
	}
	*seq++
	if _, err := tx.Exec(ctx, pgUpsertJournal, e.Path, *seq, string(e.Kind), e.OldPath, e.Version, now); err != nil {
		return err
	}
	if e.EndMove != 0 {
		if err := pgFinishMove(ctx, tx, e.EndMove); err != nil {
			return err
		}
	}
	if carry != nil {
		// Content closed under the old name is pending under the new
		// one: it keeps its place and its barrier.
		if _, err := tx.Exec(ctx, pgCarry, carry.firstSeq, carry.enqueued, e.Path); err != nil {
			return err
		}
	}
	return nil
}

// settleRename is sqliteCatalog.settleRename on PostgreSQL: the old path's
// entry is locked while it is settled.
func (c *pgCatalog) settleRename(ctx context.Context, tx pgx.Tx, e JournalAppend, now int64, seq *int64) (JournalAppend, *carried, error) {
	src := e.OldPath
	var kind, oldPath string
	var claimed, renamedBack bool
	var carry *carried
	var cr carried
	err := tx.QueryRow(ctx, `SELECT kind, old_path, owner IS NOT NULL AND ready_ns > $2, first_seq, enqueued_ns FROM journal WHERE path = $1 FOR UPDATE`, src, now).
		Scan(&kind, &oldPath, &claimed, &cr.firstSeq, &cr.enqueued)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return e, nil, err
	case claimed:
		carry = &cr
	case Kind(kind) == KindDeleted:
	default:
		if _, err := tx.Exec(ctx, `DELETE FROM journal WHERE path = $1`, src); err != nil {
			return e, nil, err
		}
		carry = &cr
		switch Kind(kind) {
		case KindNew:
			if !e.Tree {
				e.Kind, e.OldPath = KindNew, ""
			}
		case KindRename:
			switch {
			case oldPath == e.Path && e.Tree:
				renamedBack = true
			case oldPath == e.Path:
				e.Kind, e.OldPath = KindChanged, ""
			default:
				e.OldPath = oldPath
			}
		}
	}
	if !e.Tree {
		return e, carry, nil
	}
	origin := src
	if renamedBack {
		origin = e.Path
	} else if e.Kind == KindRename {
		origin = e.OldPath
	}
	return e, carry, c.moveBelow(ctx, tx, src, origin, e.Path, now, seq)
}

// moveBelow is sqliteCatalog.moveBelow on PostgreSQL.
func (c *pgCatalog) moveBelow(ctx context.Context, tx pgx.Tx, src, origin, dst string, now int64, seq *int64) error {
	type row struct {
		path, kind, oldPath string
		claimed             bool
		firstSeq, enqueued  int64
	}
	lo, hi := prefixRange(src)
	rows, err := tx.Query(ctx, `SELECT path, kind, old_path, owner IS NOT NULL AND ready_ns > $3, first_seq, enqueued_ns
		FROM journal WHERE path >= $1 AND path < $2 ORDER BY path FOR UPDATE`, lo, hi, now)
	if err != nil {
		return err
	}
	below, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.path, &x.kind, &x.oldPath, &x.claimed, &x.firstSeq, &x.enqueued)
		return x, err
	})
	if err != nil {
		return err
	}
	for _, r := range below {
		suffix := r.path[len(src):]
		to := dst + suffix
		switch {
		case Kind(r.kind) == KindDeleted:
			continue
		case r.claimed:
			*seq++
			if _, err := tx.Exec(ctx, pgUpsertJournal, to, *seq, string(KindRename), r.path, int64(0), now); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, pgCarry, r.firstSeq, r.enqueued, to); err != nil {
				return err
			}
			continue
		}
		kind, oldPath := Kind(r.kind), r.oldPath
		if kind == KindChanged {
			kind, oldPath = KindRename, origin+suffix
		}
		if oldPath == to {
			kind, oldPath = KindChanged, ""
		}
		if _, err := tx.Exec(ctx, `DELETE FROM journal WHERE path = $1`, to); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE journal SET path = $1, kind = $2, old_path = $3 WHERE path = $4`, to, string(kind), oldPath, r.path); err != nil {
			return err
		}
	}
	return nil
}

func pgScanEntries(rows pgx.Rows, err error) ([]JournalEntry, error) {
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	es, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (JournalEntry, error) { return scanEntry(r) })
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return es, nil
}

func (c *pgCatalog) Claim(ctx context.Context, owner string, n int, lease time.Duration) ([]JournalEntry, error) {
	if owner == "" || n <= 0 || lease <= 0 {
		return nil, fmt.Errorf("catalog: claim needs an owner, n > 0 and a lease > 0")
	}
	var out []JournalEntry
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		now := c.opts.now()
		var err error
		out, err = pgScanEntries(tx.Query(ctx, `SELECT `+journalCols+` FROM journal WHERE ready_ns <= $1
			ORDER BY ready_ns, enqueued_ns, path LIMIT $2 FOR UPDATE SKIP LOCKED`, now.UnixNano(), n))
		if err != nil || len(out) == 0 {
			return err
		}
		until := now.Add(lease)
		paths := make([]string, len(out))
		for i := range out {
			paths[i] = out[i].Path
			out[i].Owner, out[i].ReadyAt = owner, until
		}
		_, err = tx.Exec(ctx, `UPDATE journal SET owner = $1, ready_ns = $2 WHERE path = ANY($3)`, owner, until.UnixNano(), paths)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: claim: %w", err)
	}
	return out, nil
}

func (c *pgCatalog) ExtendLease(ctx context.Context, owner string, entries []JournalEntry, lease time.Duration) (int, error) {
	paths := make([]string, len(entries))
	for i, e := range entries {
		paths[i] = e.Path
	}
	slices.Sort(paths) // one lock order for every caller
	held := 0
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		until := c.opts.now().Add(lease).UnixNano()
		tag, err := tx.Exec(ctx, `UPDATE journal SET ready_ns = $1 WHERE path = ANY($2) AND owner = $3`, until, paths, owner)
		held = int(tag.RowsAffected())
		return err
	})
	return held, err
}

func (c *pgCatalog) Complete(ctx context.Context, e JournalEntry) (bool, error) {
	removed := false
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		removed = false
		tag, err := tx.Exec(ctx, `DELETE FROM journal WHERE path = $1 AND seq = $2`, e.Path, e.Seq)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			removed = true
			return nil
		}
		_, err = tx.Exec(ctx, `UPDATE journal SET
			first_seq = greatest(first_seq, $2 + 1),
			owner = CASE WHEN owner IS NOT DISTINCT FROM $3::text THEN NULL ELSE owner END,
			ready_ns = CASE WHEN owner IS NOT DISTINCT FROM $3::text THEN 0 ELSE ready_ns END,
			attempts = CASE WHEN owner IS NOT DISTINCT FROM $3::text THEN 0 ELSE attempts END
			WHERE path = $1 AND seq > $2`, e.Path, e.Seq, nullOwner(e.Owner))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("catalog: complete %q: %w", e.Path, err)
	}
	return removed, nil
}

func (c *pgCatalog) Fail(ctx context.Context, e JournalEntry, cause string, retryAt time.Time) error {
	return c.unlease(ctx, "fail", e, cause, retryAt, 1)
}

func (c *pgCatalog) Defer(ctx context.Context, e JournalEntry, cause string, retryAt time.Time) error {
	return c.unlease(ctx, "defer", e, cause, retryAt, 0)
}

func (c *pgCatalog) unlease(ctx context.Context, what string, e JournalEntry, cause string, retryAt time.Time, attempts int) error {
	if len(cause) > 1024 {
		cause = cause[:1024]
	}
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE journal SET owner = NULL, ready_ns = $1, attempts = attempts + $2, last_error = $3
			WHERE path = $4 AND owner IS NOT DISTINCT FROM $5::text`, max(ns(retryAt), 1), attempts, cause, e.Path, nullOwner(e.Owner))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: %s %q: %w", what, e.Path, err)
	}
	return nil
}

func (c *pgCatalog) Park(ctx context.Context, e JournalEntry, cause string) error {
	if len(cause) > 1024 {
		cause = cause[:1024]
	}
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE journal SET owner = NULL, ready_ns = `+parkedSQL+`, attempts = attempts + 1, last_error = $1
			WHERE path = $2 AND seq = $3 AND owner IS NOT DISTINCT FROM $4::text`, cause, e.Path, e.Seq, nullOwner(e.Owner))
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE journal SET owner = NULL, ready_ns = 0
			WHERE path = $1 AND seq > $2 AND owner IS NOT DISTINCT FROM $3::text`, e.Path, e.Seq, nullOwner(e.Owner))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: park %q: %w", e.Path, err)
	}
	return nil
}

func (c *pgCatalog) ParkedEntries(ctx context.Context, prefix, after string, limit int) ([]JournalEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	lo, hi := prefixRange(prefix)
	q := `SELECT ` + journalCols + ` FROM journal WHERE ready_ns = ` + parkedSQL + ` AND path > $4 AND ($1 = '' OR path = $1 OR (path >= $2 AND path < $3))`
	if after == "" {
		q = `SELECT ` + journalCols + ` FROM journal WHERE ready_ns = ` + parkedSQL + ` AND (path > $4 OR path = '') AND ($1 = '' OR path = $1 OR (path >= $2 AND path < $3))`
	}
	return pgScanEntries(c.query(ctx, q+` ORDER BY path LIMIT $5`, prefix, lo, hi, after, limit))
}

func (c *pgCatalog) ReleaseClaims(ctx context.Context, owner string) (int64, error) {
	var n int64
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE journal SET owner = NULL, ready_ns = 0 WHERE owner = $1`, owner)
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

func (c *pgCatalog) Reschedule(ctx context.Context, prefix string) (int64, error) {
	lo, hi := prefixRange(prefix)
	now := c.opts.now().UnixNano()
	var n int64
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE journal SET ready_ns = 0
			WHERE owner IS NULL AND ready_ns > $4 AND ready_ns < `+parkedSQL+`
			AND ($1 = '' OR path = $1 OR (path >= $2 AND path < $3))`, prefix, lo, hi, now)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: reschedule %q: %w", prefix, err)
	}
	return n, nil
}

const pgDepth = `SELECT coalesce(sum(n), 0)::bigint FROM journal_depth`

func (c *pgCatalog) Depth(ctx context.Context) (int64, error) { return c.scalar(ctx, pgDepth) }

func (c *pgCatalog) JournalSeq(ctx context.Context) (int64, error) {
	return c.scalar(ctx, `SELECT last_seq FROM journal_stats WHERE one = 1`)
}

func (c *pgCatalog) OldestAge(ctx context.Context) (time.Duration, error) {
	oldest, err := c.scalar(ctx, `SELECT coalesce(min(enqueued_ns), 0) FROM journal`)
	if err != nil || oldest == 0 {
		return 0, err
	}
	return max(c.opts.now().Sub(time.Unix(0, oldest)), 0), nil
}

func (c *pgCatalog) PendingCount(ctx context.Context, prefix string, barrier int64) (int64, error) {
	if barrier <= 0 {
		barrier = 1<<63 - 1
	}
	if prefix == "" {
		if barrier == 1<<63-1 {
			return c.scalar(ctx, `SELECT (`+pgDepth+`) - (SELECT count(*) FROM journal WHERE ready_ns = `+parkedSQL+`)`)
		}
		return c.scalar(ctx, `SELECT count(*) FROM journal WHERE first_seq <= $1 AND ready_ns < `+parkedSQL, barrier)
	}
	lo, hi := prefixRange(prefix)
	return c.scalar(ctx, `SELECT
		(SELECT count(*) FROM journal WHERE path = $1 AND first_seq <= $4 AND ready_ns < `+parkedSQL+`) +
		(SELECT count(*) FROM journal WHERE path >= $2 AND path < $3 AND first_seq <= $4 AND ready_ns < `+parkedSQL+`)`, prefix, lo, hi, barrier)
}

func (c *pgCatalog) Pending(ctx context.Context, prefix, after string, limit int) ([]JournalEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	if prefix == "" {
		if after == "" {
			return pgScanEntries(c.query(ctx, `SELECT `+journalCols+` FROM journal ORDER BY path LIMIT $1`, limit))
		}
		return pgScanEntries(c.query(ctx, `SELECT `+journalCols+` FROM journal WHERE path > $1 ORDER BY path LIMIT $2`, after, limit))
	}
	lo, hi := prefixRange(prefix)
	return pgScanEntries(c.query(ctx, `SELECT * FROM (
		SELECT `+journalCols+` FROM journal WHERE path = $1 AND path > $4
		UNION ALL
		SELECT * FROM (SELECT `+journalCols+` FROM journal WHERE path >= $2 AND path < $3 AND path > $4 ORDER BY path LIMIT $5) AS below
	) AS p ORDER BY 1 LIMIT $5`, prefix, lo, hi, after, limit))
}

func (c *pgCatalog) ForwardRenames(ctx context.Context, from, to string) error {
	if err := checkPath(from); err != nil {
		return err
	}
	if err := checkPath(to); err != nil {
		return err
	}
	lo, hi := prefixRange(from)
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE journal SET old_path = $1 || substr(old_path, $2)
			WHERE kind = 'RENAME' AND (old_path = $3 OR (old_path >= $4 AND old_path < $5))`,
			to, runeOffset(from), from, lo, hi)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: forward renames from %q: %w", from, err)
	}
	return nil
}

func (c *pgCatalog) RenamesFrom(ctx context.Context, paths []string, limit int) ([]JournalEntry, error) {
	if len(paths) == 0 || limit <= 0 {
		return nil, nil
	}
	es, err := pgScanEntries(c.query(ctx, `SELECT `+journalCols+` FROM journal WHERE kind = 'RENAME' AND ready_ns != $1 AND old_path = ANY($2)
		ORDER BY path LIMIT $3`, int64(parkedNS), paths, limit))
	if err != nil {
		return nil, fmt.Errorf("catalog: pending renames: %w", err)
	}
	return es, nil
}
