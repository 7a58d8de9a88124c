package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The export journal on SQLite.
//
// Invariant 1 (docs/invariants.md), catalog half: Append returns nil only
// after the transaction holding its entries committed with
// synchronous=FULL, so an acknowledged entry survives kill -9 and a power
// cut; TestCrashAppend kills a process that appends and checks every
// acknowledged entry after reopening.
//
// The exporter's side — Claim, ExtendLease, Complete, Fail, Park,
// ReleaseClaims — commits with synchronous=NORMAL: it survives kill -9, and
// what a power cut may lose is redone harmlessly (a lost Complete exports
// the path again, which finds the object up to date; a lost claim or
// failure only makes the entry ready sooner). Durable appends are never
// slowed by it, and an exporter pays no fsync per file.
//
// Group commit: Append hands its entries to one committer goroutine and
// waits. The committer takes the first request, optionally waits
// GroupCommitWindow for more, takes whatever else is queued (up to
// MaxBatch entries) and commits them in one transaction: concurrent appends
// share one fsync. With no window, requests that arrive while a commit runs
// form the next batch, so a lone caller pays no added latency.

type appendReq struct {
	entries []JournalAppend
	done    chan error
}

const journalCols = `path, kind, old_path, version, seq, first_seq, enqueued_ns, updated_ns, attempts, last_error, ready_ns, coalesce(owner, '')`

func scanEntry(sc interface{ Scan(...any) error }) (JournalEntry, error) {
	var e JournalEntry
	var kind string
	var enq, upd, ready int64
	err := sc.Scan(&e.Path, &kind, &e.OldPath, &e.Version, &e.Seq, &e.FirstSeq, &enq, &upd, &e.Attempts, &e.LastError, &ready, &e.Owner)
	e.Kind = Kind(kind)
	e.EnqueuedAt, e.UpdatedAt, e.ReadyAt = fromNS(enq), fromNS(upd), fromNS(ready)
	return e, err
}

func validAppend(e JournalAppend) error {
	if err := checkPath(e.Path); err != nil {
		return err
	}
	if !e.Kind.valid() {
		return fmt.Errorf("catalog: journal entry for %q has kind %q: use NEW, CHANGED, DELETED or RENAME", e.Path, e.Kind)
	}
	if (e.Kind == KindRename) != (e.OldPath != "") {
		return fmt.Errorf("catalog: journal entry for %q: a RENAME, and only a RENAME, has an old path", e.Path)
	}
	if e.Tree && e.Kind != KindRename {
		return fmt.Errorf("catalog: journal entry for %q: only a RENAME can move a tree", e.Path)
	}
	if e.OldPath != "" {
		if e.OldPath == e.Path {
			return fmt.Errorf("catalog: journal entry for %q: a RENAME onto itself is not a rename", e.Path)
		}
		if e.Tree && (e.OldPath == "" || strings.HasPrefix(e.Path, e.OldPath+"/")) {
			return fmt.Errorf("catalog: journal entry for %q: a directory cannot move below itself (%q)", e.Path, e.OldPath)
		}
		return checkPath(e.OldPath)
	}
	return nil
}

func (c *sqliteCatalog) Append(ctx context.Context, entries ...JournalAppend) error {
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

func (c *sqliteCatalog) committer() {
	defer c.commitWG.Done()
	groupCommit(c.appendCh, c.opts.GroupCommitWindow, c.opts.MaxBatch, c.commitAppends)
}

// groupCommit is an engine's journal committer: it takes the first request
// of ch, waits up to window for more, takes whatever else is queued (up to
// maxBatch entries), commits them together and answers each, until ch is
// closed.
func groupCommit(ch <-chan *appendReq, window time.Duration, maxBatch int, commit func([]*appendReq) error) {
	for r := range ch {
		batch := []*appendReq{r}
		n := len(r.entries)
		if window > 0 {
			t := time.NewTimer(window)
		wait:
			for n < maxBatch {
				select {
				case r2, ok := <-ch:
					if !ok {
						break wait
					}
					batch = append(batch, r2)
					n += len(r2.entries)
				case <-t.C:
					break wait
				}
			}
			t.Stop()
		}
	drain:
		for n < maxBatch {
			select {
			case r2, ok := <-ch:
				if !ok {
					break drain
				}
				batch = append(batch, r2)
				n += len(r2.entries)
			default:
				break drain
			}
		}
		err := commit(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// upsertJournal inserts an entry or supersedes the path's pending one,
// merging kinds as MergeKind says and keeping first_seq, enqueued_ns, the
// claim and any backoff.
const upsertJournal = `INSERT INTO journal (path, seq, first_seq, kind, old_path, version, enqueued_ns, updated_ns)
VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?6)
ON CONFLICT (path) DO UPDATE SET
	seq = excluded.seq,
	kind = CASE
		WHEN journal.kind = 'NEW' AND excluded.kind = 'CHANGED' THEN 'NEW'
		WHEN journal.kind = 'RENAME' AND excluded.kind IN ('CHANGED', 'NEW') THEN 'RENAME'
		ELSE excluded.kind END,
	old_path = CASE
		WHEN journal.kind = 'NEW' AND excluded.kind = 'CHANGED' THEN ''
		WHEN journal.kind = 'RENAME' AND excluded.kind IN ('CHANGED', 'NEW') THEN journal.old_path
		ELSE excluded.old_path END,
	version = excluded.version,
	updated_ns = excluded.updated_ns,
	ready_ns = CASE WHEN journal.ready_ns = ` + parkedSQL + ` THEN 0 ELSE journal.ready_ns END`

// parkedSQL is parkedNS as an SQL literal.
const parkedSQL = "9223372036854775807"

func (c *sqliteCatalog) commitAppends(batch []*appendReq) error {
	d := relaxed
	for _, r := range batch {
		for _, e := range r.entries {
			if !e.Relaxed {
				d = durable
			}
		}
	}
	err := c.write(context.Background(), d, func(ctx context.Context) error {
		var seq int64
		if err := c.wrow(ctx, `SELECT last_seq FROM journal_stats WHERE one = 1`).Scan(&seq); err != nil {
			return err
		}
		now := c.opts.now().UnixNano()
		stmt, err := c.ws(ctx, upsertJournal)
		if err != nil {
			return err
		}
		for _, r := range batch {
			for _, e := range r.entries {
				var carry *carried
				if e.Kind == KindRename {
					if err := c.moveLinks(ctx, e.OldPath, e.Path, e.Tree); err != nil {
						return fmt.Errorf("append %q: %w", e.Path, err)
					}
					var err error
					if e, carry, err = c.settleRename(ctx, e, now, &seq); err != nil {
						return fmt.Errorf("append %q: %w", e.Path, err)
					}
				}
				seq++
				if _, err := stmt.ExecContext(ctx, e.Path, seq, string(e.Kind), e.OldPath, e.Version, now); err != nil {
					return fmt.Errorf("append %q: %w", e.Path, err)
				}
				if e.EndMove != 0 {
					if err := c.finishMove(ctx, e.EndMove); err != nil {
						return fmt.Errorf("append %q: %w", e.Path, err)
					}
				}
				if carry != nil {
					// Content closed under the old name is pending under
					// the new one: it keeps its place and its barrier.
					if _, err := c.wexec(ctx, `UPDATE journal SET first_seq = min(first_seq, ?), enqueued_ns = min(enqueued_ns, ?) WHERE path = ?`,
						carry.firstSeq, carry.enqueued, e.Path); err != nil {
						return fmt.Errorf("append %q: %w", e.Path, err)
					}
				}
			}
		}
		_, err = c.wexec(ctx, `UPDATE journal_stats SET last_seq = ? WHERE one = 1`, seq)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: journal append: %w", err)
	}
	return nil
}

// settleRename applies a RENAME to the pending entries of its old path
// (and below it, for a tree) as "Renames before export" in catalog.go
// says, inside the append's transaction, and returns the entry to upsert.
// seq is the transaction's last sequence number (entries added for claimed
// descendants take new ones).
// carried is the queue place of an entry a rename absorbed.
type carried struct{ firstSeq, enqueued int64 }

func (c *sqliteCatalog) settleRename(ctx context.Context, e JournalAppend, now int64, seq *int64) (JournalAppend, *carried, error) {
	src := e.OldPath // the name being renamed now
	var kind, oldPath string
	var claimed, renamedBack bool
	var carry *carried
	var cr carried
	err := c.wrow(ctx, `SELECT kind, old_path, owner IS NOT NULL AND ready_ns > ?2, first_seq, enqueued_ns FROM journal WHERE path = ?1`, src, now).
		Scan(&kind, &oldPath, &claimed, &cr.firstSeq, &cr.enqueued)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return e, nil, err
	case claimed:
		// The old name's export is in flight and may find the file gone;
		// the content closed under it waits under the new name from the
		// same place in the queue, so a barrier taken before this rename
		// (hsm wait) still waits for it.
		carry = &cr
	case Kind(kind) == KindDeleted:
	default:
		if _, err := c.wexec(ctx, `DELETE FROM journal WHERE path = ?`, src); err != nil {
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
				// A directory renamed back: what is below may have been
				// exported under src meanwhile (entries of its own), so
				// the tree move still runs, from src.
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
	// origin is where the objects below src still are: src itself, or the
	// older name of a directory renamed twice before its export ran.
	origin := src
	if renamedBack {
		origin = e.Path // renamed back: the objects not moved are where they were
	} else if e.Kind == KindRename {
		origin = e.OldPath
	}
	return e, carry, c.moveBelow(ctx, src, origin, e.Path, now, seq)
}

// moveBelow moves the pending entries below src to below dst (a directory
// rename); origin is where the objects of src's descendants are.
func (c *sqliteCatalog) moveBelow(ctx context.Context, src, origin, dst string, now int64, seq *int64) error {
	type row struct {
		path, kind, oldPath string
		claimed             bool
		firstSeq, enqueued  int64
	}
	lo, hi := prefixRange(src)
	rows, err := c.wc.QueryContext(ctx, `SELECT path, kind, old_path, owner IS NOT NULL AND ready_ns > ?3, first_seq, enqueued_ns
		FROM journal WHERE path >= ?1 AND path < ?2 ORDER BY path`, lo, hi, now)
	if err != nil {
		return err
	}
	var below []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.path, &r.kind, &r.oldPath, &r.claimed, &r.firstSeq, &r.enqueued); err != nil {
			rows.Close()
			return err
		}
		below = append(below, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range below {
		suffix := r.path[len(src):] // "/…"
		to := dst + suffix
		switch {
		case Kind(r.kind) == KindDeleted:
			// That object stays where it is; its deletion is still due.
			continue
		case r.claimed:
			// In flight: its upload writes the object under r.path, from
			// where a RENAME moves it once that entry is gone.
			// It keeps the claimed entry's place in the queue: a
			// barrier taken before this rename still waits for it.
			*seq++
			if _, err := c.wexec(ctx, upsertJournal, to, *seq, string(KindRename), r.path, 0, now); err != nil {
				return err
			}
			if _, err := c.wexec(ctx, `UPDATE journal SET first_seq = min(first_seq, ?), enqueued_ns = min(enqueued_ns, ?) WHERE path = ?`,
				r.firstSeq, r.enqueued, to); err != nil {
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
		if _, err := c.wexec(ctx, `DELETE FROM journal WHERE path = ?`, to); err != nil {
			return err
		}
		if _, err := c.wexec(ctx, `UPDATE journal SET path = ?, kind = ?, old_path = ? WHERE path = ?`, to, string(kind), oldPath, r.path); err != nil {
			return err
		}
	}
	return nil
}

func (c *sqliteCatalog) Claim(ctx context.Context, owner string, n int, lease time.Duration) ([]JournalEntry, error) {
	if owner == "" || n <= 0 || lease <= 0 {
		return nil, fmt.Errorf("catalog: claim needs an owner, n > 0 and a lease > 0")
	}
	var out []JournalEntry
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		now := c.opts.now()
		s, err := c.ws(ctx, `SELECT `+journalCols+` FROM journal WHERE ready_ns <= ? ORDER BY ready_ns, enqueued_ns LIMIT ?`)
		if err != nil {
			return err
		}
		rows, err := s.QueryContext(ctx, now.UnixNano(), n)
		if err != nil {
			return err
		}
		out = out[:0]
		for rows.Next() {
			e, err := scanEntry(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		until := now.Add(lease)
		for i := range out {
			if _, err := c.wexec(ctx, `UPDATE journal SET owner = ?, ready_ns = ? WHERE path = ?`, owner, until.UnixNano(), out[i].Path); err != nil {
				return err
			}
			out[i].Owner, out[i].ReadyAt = owner, until
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: claim: %w", err)
	}
	return out, nil
}

func (c *sqliteCatalog) ExtendLease(ctx context.Context, owner string, entries []JournalEntry, lease time.Duration) (int, error) {
	held := 0
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		held = 0
		until := c.opts.now().Add(lease).UnixNano()
		for _, e := range entries {
			res, err := c.wexec(ctx, `UPDATE journal SET ready_ns = ? WHERE path = ? AND owner = ?`, until, e.Path, owner)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 1 {
				held++
			}
		}
		return nil
	})
	return held, err
}

func (c *sqliteCatalog) Complete(ctx context.Context, e JournalEntry) (bool, error) {
	removed := false
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		res, err := c.wexec(ctx, `DELETE FROM journal WHERE path = ? AND seq = ?`, e.Path, e.Seq)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 1 {
			removed = true
			return nil
		}
		// A newer append superseded e: what e.Seq covered is exported;
		// release the claim so the newer content goes out at once.
		_, err = c.wexec(ctx, `UPDATE journal SET
			first_seq = max(first_seq, ?2 + 1),
			owner = CASE WHEN owner IS ?3 THEN NULL ELSE owner END,
			ready_ns = CASE WHEN owner IS ?3 THEN 0 ELSE ready_ns END,
			attempts = CASE WHEN owner IS ?3 THEN 0 ELSE attempts END
			WHERE path = ?1 AND seq > ?2`, e.Path, e.Seq, nullOwner(e.Owner))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("catalog: complete %q: %w", e.Path, err)
	}
	return removed, nil
}

func nullOwner(o string) any {
	if o == "" {
		return nil
	}
	return o
}

func (c *sqliteCatalog) Fail(ctx context.Context, e JournalEntry, cause string, retryAt time.Time) error {
	return c.unlease(ctx, "fail", e, cause, retryAt, 1)
}

func (c *sqliteCatalog) Defer(ctx context.Context, e JournalEntry, cause string, retryAt time.Time) error {
	return c.unlease(ctx, "defer", e, cause, retryAt, 0)
}

// unlease ends owner's claim on e: ready at retryAt, cause recorded and
// attempts added to its Attempts.
func (c *sqliteCatalog) unlease(ctx context.Context, what string, e JournalEntry, cause string, retryAt time.Time, attempts int) error {
	if len(cause) > 1024 {
		cause = cause[:1024]
	}
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		_, err := c.wexec(ctx, `UPDATE journal SET owner = NULL, ready_ns = ?, attempts = attempts + ?, last_error = ?
			WHERE path = ? AND owner IS ?`, max(ns(retryAt), 1), attempts, cause, e.Path, nullOwner(e.Owner))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: %s %q: %w", what, e.Path, err)
	}
	return nil
}

func (c *sqliteCatalog) Park(ctx context.Context, e JournalEntry, cause string) error {
	if len(cause) > 1024 {
		cause = cause[:1024]
	}
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		res, err := c.wexec(ctx, `UPDATE journal SET owner = NULL, ready_ns = `+parkedSQL+`, attempts = attempts + 1, last_error = ?
			WHERE path = ? AND seq = ? AND owner IS ?`, cause, e.Path, e.Seq, nullOwner(e.Owner))
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 1 {
			return nil
		}
		// Superseded: the newer content may fit; release the claim.
		_, err = c.wexec(ctx, `UPDATE journal SET owner = NULL, ready_ns = 0
			WHERE path = ? AND seq > ? AND owner IS ?`, e.Path, e.Seq, nullOwner(e.Owner))
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: park %q: %w", e.Path, err)
	}
	return nil
}

func (c *sqliteCatalog) ParkedEntries(ctx context.Context, prefix, after string, limit int) ([]JournalEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	lo, hi := prefixRange(prefix)
	q := `SELECT ` + journalCols + ` FROM journal WHERE ready_ns = ` + parkedSQL + ` AND path > ?4 AND (?1 = '' OR path = ?1 OR (path >= ?2 AND path < ?3))`
	if after == "" {
		q = `SELECT ` + journalCols + ` FROM journal WHERE ready_ns = ` + parkedSQL + ` AND (path > ?4 OR path = '') AND (?1 = '' OR path = ?1 OR (path >= ?2 AND path < ?3))`
	}
	rows, err := c.rquery(ctx, q+` ORDER BY path LIMIT ?5`, prefix, lo, hi, after, limit)
	return scanEntries(rows, err)
}

func (c *sqliteCatalog) ReleaseClaims(ctx context.Context, owner string) (int64, error) {
	var n int64
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		res, err := c.wexec(ctx, `UPDATE journal SET owner = NULL, ready_ns = 0 WHERE owner = ?`, owner)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

func (c *sqliteCatalog) Reschedule(ctx context.Context, prefix string) (int64, error) {
	lo, hi := prefixRange(prefix)
	now := c.opts.now().UnixNano()
	var n int64
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		res, err := c.wexec(ctx, `UPDATE journal SET ready_ns = 0
			WHERE owner IS NULL AND ready_ns > ?4 AND ready_ns < `+parkedSQL+`
			AND (?1 = '' OR path = ?1 OR (path >= ?2 AND path < ?3))`, prefix, lo, hi, now)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: reschedule %q: %w", prefix, err)
	}
	return n, nil
}

func (c *sqliteCatalog) Depth(ctx context.Context) (int64, error) {
	return c.scalar(ctx, `SELECT depth FROM journal_stats WHERE one = 1`)
}

func (c *sqliteCatalog) JournalSeq(ctx context.Context) (int64, error) {
	return c.scalar(ctx, `SELECT last_seq FROM journal_stats WHERE one = 1`)
}

func (c *sqliteCatalog) OldestAge(ctx context.Context) (time.Duration, error) {
	oldest, err := c.scalar(ctx, `SELECT coalesce(min(enqueued_ns), 0) FROM journal`)
	if err != nil || oldest == 0 {
		return 0, err
	}
	return max(c.opts.now().Sub(time.Unix(0, oldest)), 0), nil
}

func (c *sqliteCatalog) scalar(ctx context.Context, q string, args ...any) (int64, error) {
	row, err := c.rrow(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	var v int64
	if err := row.Scan(&v); err != nil {
		return 0, fmt.Errorf("catalog: %w", err)
	}
	return v, nil
}

func (c *sqliteCatalog) PendingCount(ctx context.Context, prefix string, barrier int64) (int64, error) {
	if barrier <= 0 {
		barrier = 1<<63 - 1
	}
	// Parked entries are not waited for (see Park); ready_ns < parked
	// excludes them.
	if prefix == "" {
		if barrier == 1<<63-1 {
			return c.scalar(ctx, `SELECT (SELECT depth FROM journal_stats WHERE one = 1) -
				(SELECT count(*) FROM journal WHERE ready_ns = `+parkedSQL+`)`)
		}
		return c.scalar(ctx, `SELECT count(*) FROM journal WHERE first_seq <= ? AND ready_ns < `+parkedSQL, barrier)
	}
	lo, hi := prefixRange(prefix)
	return c.scalar(ctx, `SELECT
		(SELECT count(*) FROM journal WHERE path = ?1 AND first_seq <= ?4 AND ready_ns < `+parkedSQL+`) +
		(SELECT count(*) FROM journal WHERE path >= ?2 AND path < ?3 AND first_seq <= ?4 AND ready_ns < `+parkedSQL+`)`, prefix, lo, hi, barrier)
}

func (c *sqliteCatalog) Pending(ctx context.Context, prefix, after string, limit int) ([]JournalEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	var rows *sql.Rows
	var err error
	if prefix == "" {
		if after == "" {
			// "" is a valid path (the root), which path > '' would skip.
			rows, err = c.rquery(ctx, `SELECT `+journalCols+` FROM journal ORDER BY path LIMIT ?`, limit)
		} else {
			rows, err = c.rquery(ctx, `SELECT `+journalCols+` FROM journal WHERE path > ? ORDER BY path LIMIT ?`, after, limit)
		}
	} else {
		lo, hi := prefixRange(prefix)
		rows, err = c.rquery(ctx, `SELECT * FROM (
			SELECT `+journalCols+` FROM journal WHERE path = ?1 AND path > ?4
			UNION ALL
			SELECT * FROM (SELECT `+journalCols+` FROM journal WHERE path >= ?2 AND path < ?3 AND path > ?4 ORDER BY path LIMIT ?5)
		) ORDER BY 1 LIMIT ?5`, prefix, lo, hi, after, limit)
	}
	return scanEntries(rows, err)
}

func (c *sqliteCatalog) ForwardRenames(ctx context.Context, from, to string) error {
	if err := checkPath(from); err != nil {
		return err
	}
	if err := checkPath(to); err != nil {
		return err
	}
	lo, hi := prefixRange(from)
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		_, err := c.wexec(ctx, `UPDATE journal SET old_path = ?1 || substr(old_path, ?2)
			WHERE kind = 'RENAME' AND (old_path = ?3 OR (old_path >= ?4 AND old_path < ?5))`,
			to, runeOffset(from), from, lo, hi)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: forward renames from %q: %w", from, err)
	}
	return nil
}

func (c *sqliteCatalog) RenamesFrom(ctx context.Context, paths []string, limit int) ([]JournalEntry, error) {
	if len(paths) == 0 || limit <= 0 {
		return nil, nil
	}
	args := make([]any, 0, len(paths)+2)
	args = append(args, parkedNS)
	for _, p := range paths {
		args = append(args, p)
	}
	args = append(args, limit)
	q := `SELECT ` + journalCols + ` FROM journal WHERE kind = 'RENAME' AND ready_ns != ? AND old_path IN (?` +
		strings.Repeat(",?", len(paths)-1) + `) ORDER BY path LIMIT ?`
	es, err := scanEntries(c.rquery(ctx, q, args...))
	if err != nil {
		return nil, fmt.Errorf("catalog: pending renames: %w", err)
	}
	return es, nil
}

// scanEntries reads the journal rows of a query (rows, err as returned).
func scanEntries(rows *sql.Rows, err error) ([]JournalEntry, error) {
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer rows.Close()
	var out []JournalEntry
	for rows.Next() {
		e, err := scanEntry(rows)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
