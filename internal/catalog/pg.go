package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/store"
)

// PostgreSQL engine (pgx v5).
//
// Connections: a bounded pool (pgxpool; Options.PoolConns, default 8, or
// pool_max_conns in the URL). Every write is one transaction at READ
// COMMITTED: rows it reads to decide are locked (SELECT … FOR UPDATE), the
// claims of the journal and of import hints take rows with FOR UPDATE SKIP
// LOCKED, and Append and EnqueueHints first lock their stats row, which
// serializes them across nodes (sequence numbers follow commit order). A
// transaction that fails with a serialization failure (40001) or a
// deadlock (40P01) is run again from the start, up to pgRetries times with
// a growing, jittered pause; so the functions given to tx only set their
// results, never accumulate across runs.
//
// Durability: what SQLite commits with synchronous=FULL is a plain commit
// here (durable when the server says so). What SQLite commits with
// synchronous=NORMAL, except journal appends, commits with
// synchronous_commit=off: it survives any crash of the daemon; a crash of
// the server may lose its last moments, which only redoes work (see the
// package comment). Relaxed journal appends are committed as durable ones
// (group commit makes that cheap, and a crash of the server is not one the
// daemon would notice to run its recovery).
type pgCatalog struct {
	opts Options
	pool *pgxpool.Pool
	log  *slog.Logger

	appendMu sync.RWMutex // guards closed against Append's enqueue
	closed   bool
	appendCh chan *appendReq
	commitWG sync.WaitGroup
	closeMu  sync.Mutex
	shut     atomic.Bool // the pool is closed
}

// pgRetries is how many times a transaction is run again after a
// serialization failure or a deadlock.
const pgRetries = 10

// DefaultPoolConns is the PostgreSQL pool size when neither the options nor
// the URL (pool_max_conns) say.
const DefaultPoolConns = 8

// OpenPostgres opens the catalog in the PostgreSQL database dsn (a
// postgres:// URL or a key=value string pgx accepts), creating and
// migrating its schema under an advisory lock.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (Catalog, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %v (a PostgreSQL URL is postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=…])", redact(dsn), redactErr(err))
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultPoolConns
		if opts.PoolConns > 0 {
			cfg.MaxConns = int32(opts.PoolConns)
		}
	}
	cfg.MinConns = 0
	cfg.ConnConfig.RuntimeParams["application_name"] = "ferry"
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %v", redact(dsn), redactErr(err))
	}
	c := &pgCatalog{opts: opts, pool: pool, log: lg}
	if err := c.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("catalog %s: %w", redact(dsn), err)
	}
	c.appendCh = make(chan *appendReq, 1024)
	c.commitWG.Add(1)
	go func() {
		defer c.commitWG.Done()
		groupCommit(c.appendCh, opts.GroupCommitWindow, opts.MaxBatch, c.commitAppends)
	}()
	return c, nil
}

// redactErr hides a password that a connection error may quote.
func redactErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "password="); i >= 0 {
		j := strings.IndexAny(s[i:], " )")
		if j < 0 {
			j = len(s) - i
		}
		s = s[:i] + "password=xxxxx" + s[i+j:]
	}
	return s
}

// migrate creates and upgrades the schema in one transaction that first
// takes pgSchemaLock (pg_advisory_xact_lock: held until the transaction
// ends, also through a connection pooler), so nodes starting at once
// migrate one after the other and the later ones find nothing to do.
func (c *pgCatalog) migrate(ctx context.Context) error {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("connect: %v", redactErr(err))
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, pgSchemaLock); err != nil {
		return fmt.Errorf("schema lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("schema: %w", err)
	}
	var v int
	err = tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version VALUES (0)`); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	if v > len(pgMigrations) {
		return fmt.Errorf("schema version %d, this ferry knows up to %d: %w (use the newer ferry)", v, len(pgMigrations), ErrSchemaTooNew)
	}
	if v == len(pgMigrations) {
		return tx.Commit(ctx) // up to date: nothing written
	}
	for i := v; i < len(pgMigrations); i++ {
		if _, err := tx.Exec(ctx, pgMigrations[i]); err != nil {
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, len(pgMigrations)); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// retryable reports a serialization failure or a deadlock: the server
// rolled the transaction back and it can run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// tx runs fn in one transaction, again after a serialization failure or a
// deadlock, and again when the transaction could not begin or its
// connection was lost before the commit was sent (the server rolled it
// back; the pool connects anew: a restart of the server). A connection
// lost during the commit is returned: the commit may have happened.
func (c *pgCatalog) tx(ctx context.Context, d durability, fn func(ctx context.Context, tx pgx.Tx) error) error {
	if c.isClosed() {
		return ErrClosed
	}
	pause := 2 * time.Millisecond
	for attempt := 0; ; attempt++ {
		lost, err := c.txOnce(ctx, d, fn)
		if err == nil || !(lost || retryable(err)) || attempt >= pgRetries || ctx.Err() != nil {
			return err
		}
		c.log.Debug("catalog: transaction retried", "attempt", attempt+1, "err", err)
		t := time.NewTimer(pause/2 + rand.N(pause))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		pause = min(pause*2, 500*time.Millisecond)
	}
}

// txOnce runs fn in one transaction. lost says the transaction did not
// begin, or its connection was cut before the commit: nothing of it
// happened.
func (c *pgCatalog) txOnce(ctx context.Context, d durability, fn func(ctx context.Context, tx pgx.Tx) error) (lost bool, err error) {
	opts := pgx.TxOptions{}
	if d == relaxed {
		// One round trip for both (the simple protocol runs the two).
		opts.BeginQuery = `BEGIN; SET LOCAL synchronous_commit = off`
	}
	tx, err := c.pool.BeginTx(ctx, opts)
	if err != nil {
		return true, fmt.Errorf("catalog: begin: %w", err)
	}
	defer tx.Rollback(context.Background())
	if err := fn(ctx, tx); err != nil {
		return tx.Conn().IsClosed(), err
	}
	return false, tx.Commit(ctx)
}

func (c *pgCatalog) isClosed() bool { return c.shut.Load() }

// scalar reads one int64 outside a transaction.
func (c *pgCatalog) scalar(ctx context.Context, q string, args ...any) (int64, error) {
	if c.isClosed() {
		return 0, ErrClosed
	}
	var v int64
	if err := c.pool.QueryRow(ctx, q, args...).Scan(&v); err != nil {
		return 0, fmt.Errorf("catalog: %w", err)
	}
	return v, nil
}

// query runs a read outside a transaction.
func (c *pgCatalog) query(ctx context.Context, q string, args ...any) (pgx.Rows, error) {
	if c.isClosed() {
		return nil, ErrClosed
	}
	return c.pool.Query(ctx, q, args...)
}

func (c *pgCatalog) row(ctx context.Context, q string, args ...any) pgx.Row {
	if c.isClosed() {
		return errRow{ErrClosed}
	}
	return c.pool.QueryRow(ctx, q, args...)
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

func (c *pgCatalog) Close() error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	c.appendMu.Lock()
	if c.closed {
		c.appendMu.Unlock()
		return nil
	}
	c.closed = true
	close(c.appendCh)
	c.appendMu.Unlock()
	c.commitWG.Wait() // every accepted append is committed and answered
	c.shut.Store(true)
	c.pool.Close()
	return nil
}

// rebind numbers the '?' placeholders of q ($1, $2, …).
func rebind(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// runeOffset is the 1-based character position after prefix, for substr
// (which counts characters, not bytes).
func runeOffset(prefix string) int { return utf8.RuneCountInString(prefix) + 1 }

// ---- identity

func (c *pgCatalog) FileSystem(ctx context.Context) (FileSystemInfo, error) {
	var fi FileSystemInfo
	var created int64
	err := c.row(ctx, `SELECT fs_id, created_ns, store_path FROM filesystem WHERE one = 1`).Scan(&fi.FileSystemId, &created, &fi.StorePath)
	if errors.Is(err, pgx.ErrNoRows) {
		return fi, fmt.Errorf("file system identity: %w", ErrNotFound)
	} else if err != nil {
		return fi, fmt.Errorf("catalog: %w", err)
	}
	fi.CreationTime = fromNS(created)
	return fi, nil
}

func (c *pgCatalog) InitFileSystem(ctx context.Context, want FileSystemInfo) (FileSystemInfo, error) {
	if err := dra.ValidateFileSystemID(want.FileSystemId); err != nil {
		return FileSystemInfo{}, err
	}
	var got FileSystemInfo
	err := c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO filesystem VALUES (1, $1, $2, $3) ON CONFLICT (one) DO NOTHING`,
			want.FileSystemId, ns(want.CreationTime), want.StorePath); err != nil {
			return err
		}
		var created int64
		if err := tx.QueryRow(ctx, `SELECT fs_id, created_ns, store_path FROM filesystem WHERE one = 1`).Scan(&got.FileSystemId, &created, &got.StorePath); err != nil {
			return err
		}
		got.CreationTime = fromNS(created)
		return nil
	})
	if err != nil {
		return FileSystemInfo{}, fmt.Errorf("catalog: init file system: %w", err)
	}
	return got, nil
}

// ---- tokens

func (c *pgCatalog) LookupToken(ctx context.Context, operation, token string) (dra.TokenRecord, bool, error) {
	rec := dra.TokenRecord{Operation: operation, Token: token}
	err := c.row(ctx, `SELECT fingerprint, resource_id FROM tokens WHERE operation = $1 AND token = $2`, operation, token).
		Scan(&rec.Fingerprint, &rec.ResourceID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return dra.TokenRecord{}, false, nil
	case err != nil:
		return dra.TokenRecord{}, false, fmt.Errorf("catalog: token: %w", err)
	}
	return rec, true, nil
}

func (c *pgCatalog) SaveToken(ctx context.Context, rec dra.TokenRecord) (dra.TokenRecord, bool, error) {
	var prev dra.TokenRecord
	var saved bool
	err := c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		var err error
		prev, saved, err = c.saveTokenTx(ctx, tx, &rec)
		return err
	})
	if err != nil {
		return dra.TokenRecord{}, false, fmt.Errorf("catalog: save token: %w", err)
	}
	return prev, saved, nil
}

// saveTokenTx inserts rec unless its (Operation, Token) exists, in which case
// it returns the existing record and saved=false. A concurrent insert of the
// same token waits for the other transaction (the primary key) and then
// finds its row.
func (c *pgCatalog) saveTokenTx(ctx context.Context, tx pgx.Tx, rec *dra.TokenRecord) (dra.TokenRecord, bool, error) {
	tag, err := tx.Exec(ctx, `INSERT INTO tokens VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING`,
		rec.Operation, rec.Token, rec.Fingerprint, rec.ResourceID, c.opts.now().UnixNano())
	if err != nil {
		return dra.TokenRecord{}, false, err
	}
	if tag.RowsAffected() == 1 {
		return *rec, true, nil
	}
	prev := dra.TokenRecord{Operation: rec.Operation, Token: rec.Token}
	err = tx.QueryRow(ctx, `SELECT fingerprint, resource_id FROM tokens WHERE operation = $1 AND token = $2`, rec.Operation, rec.Token).
		Scan(&prev.Fingerprint, &prev.ResourceID)
	return prev, false, err
}

// ---- associations

func (c *pgCatalog) CreateAssociation(ctx context.Context, a api.DataRepositoryAssociation, tok *dra.TokenRecord) (dra.TokenRecord, bool, error) {
	if a.AssociationId == "" {
		return dra.TokenRecord{}, false, errors.New("catalog: association without an id")
	}
	rec, err := json.Marshal(a)
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
		tag, err := tx.Exec(ctx, `INSERT INTO associations VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
			a.AssociationId, a.FileSystemId, a.FileSystemPath, a.DataRepositoryPath, string(a.Lifecycle), createdNS(a.CreationTime), string(rec))
		if err != nil {
			return err
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("association %s: %w", a.AssociationId, ErrExists)
		}
		created = true
		return nil
	})
	if err != nil {
		return dra.TokenRecord{}, false, fmt.Errorf("catalog: create association: %w", err)
	}
	return prev, created, nil
}

func (c *pgCatalog) Association(ctx context.Context, id string) (api.DataRepositoryAssociation, error) {
	var rec string
	err := c.row(ctx, `SELECT record FROM associations WHERE id = $1`, id).Scan(&rec)
	if errors.Is(err, pgx.ErrNoRows) {
		return api.DataRepositoryAssociation{}, fmt.Errorf("association %s: %w", id, ErrNotFound)
	} else if err != nil {
		return api.DataRepositoryAssociation{}, fmt.Errorf("catalog: %w", err)
	}
	return decodeAssociation(rec)
}

func (c *pgCatalog) Associations(ctx context.Context) ([]api.DataRepositoryAssociation, error) {
	rows, err := c.query(ctx, `SELECT record FROM associations ORDER BY created_ns, id`)
	return pgRecords(decodeAssociation, rows, err)
}

// pgRecords reads the one-column records of a query (rows, err as
// returned) through decode.
func pgRecords[T any](decode func(string) (T, error), rows pgx.Rows, err error) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		var rec string
		if err := rows.Scan(&rec); err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		v, err := decode(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return out, nil
}

// missingID returns the first of ids not in table.
func (c *pgCatalog) missingID(ctx context.Context, table string, ids []string) (string, error) {
	if len(ids) == 0 {
		return "", nil
	}
	rows, err := c.query(ctx, `SELECT id FROM `+table+` WHERE id = ANY($1)`, ids)
	if err != nil {
		return "", fmt.Errorf("catalog: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("catalog: %w", err)
	}
	for _, id := range ids {
		if !slices.Contains(found, id) {
			return id, nil
		}
	}
	return "", nil
}

func (c *pgCatalog) DescribeAssociations(ctx context.Context, q dra.Query) ([]api.DataRepositoryAssociation, *dra.Cursor, error) {
	if id, err := c.missingID(ctx, "associations", q.IDs); err != nil {
		return nil, nil, err
	} else if id != "" {
		return nil, nil, assocNotFound(id)
	}
	var w sqlWhere
	if len(q.IDs) > 0 {
		w.in("id", q.IDs)
	}
	if v, ok := q.Filters[api.FilterFileSystemID]; ok {
		w.in("fs_id", v)
	}
	if v, ok := q.Filters[api.FilterDataRepositoryType]; ok && !slices.Contains(v, api.DataRepositoryTypeS3) {
		return []api.DataRepositoryAssociation{}, nil, nil // every ferry association is S3
	}
	pageWhere(&w, q)
	limit := max(q.MaxResults, 1)
	rows, err := c.query(ctx, rebind(`SELECT record FROM associations`+w.sql()+` ORDER BY created_ns, id LIMIT ?`), append(w.args, limit+1)...)
	items, err := pgRecords(decodeAssociation, rows, err)
	if err != nil || len(items) <= limit {
		return items, nil, err
	}
	items = items[:limit]
	last := items[limit-1]
	return items, &dra.Cursor{CreatedUnixNano: createdNS(last.CreationTime), ID: last.AssociationId}, nil
}

func (c *pgCatalog) UpdateAssociation(ctx context.Context, id string, tok *dra.TokenRecord, fn func(*api.DataRepositoryAssociation) error) (api.DataRepositoryAssociation, dra.TokenRecord, bool, error) {
	var out api.DataRepositoryAssociation
	var prev dra.TokenRecord
	updated := false
	err := c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		out, prev, updated = api.DataRepositoryAssociation{}, dra.TokenRecord{}, false
		var rec string
		err := tx.QueryRow(ctx, `SELECT record FROM associations WHERE id = $1 FOR UPDATE`, id).Scan(&rec)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		found := err == nil
		if tok != nil && tok.Token != "" {
			p, saved, err := c.saveTokenTx(ctx, tx, tok)
			if err != nil {
				return err
			}
			prev = p
			if !saved {
				if found {
					out, err = decodeAssociation(rec)
				}
				return err
			}
		}
		if !found {
			return fmt.Errorf("association %s: %w", id, ErrNotFound)
		}
		a, b, err := updatedAssociation(id, rec, fn)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE associations SET lifecycle = $1, record = $2 WHERE id = $3`, string(a.Lifecycle), string(b), id); err != nil {
			return err
		}
		out, updated = a, true
		return nil
	})
	if err != nil {
		return api.DataRepositoryAssociation{}, dra.TokenRecord{}, false, err
	}
	return out, prev, updated, nil
}

func (c *pgCatalog) DeleteAssociation(ctx context.Context, id string) error {
	return c.tx(ctx, durable, func(ctx context.Context, tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM associations WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("association %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// ---- listed directories

func (c *pgCatalog) MarkListed(ctx context.Context, dirs ...ListedDir) error {
	paths := make([]string, len(dirs))
	ats := make([]int64, len(dirs))
	markers := make([]string, len(dirs))
	for i, d := range dirs {
		if err := checkPath(d.Path); err != nil {
			return err
		}
		if len(d.Marker) > 4096 {
			return fmt.Errorf("catalog: listing marker of %q is %d bytes, over 4096", d.Path, len(d.Marker))
		}
		paths[i], ats[i], markers[i] = d.Path, ns(d.ListedAt), d.Marker
	}
	if len(dirs) == 0 {
		return nil
	}
	// One statement for the batch; a path given twice keeps its last
	// record, as the SQLite engine's upserts in order do.
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO listed_dirs (path, listed_ns, marker)
			SELECT DISTINCT ON (p) p, a, m FROM unnest($1::text[], $2::bigint[], $3::text[]) WITH ORDINALITY AS u(p, a, m, i) ORDER BY p, i DESC
			ON CONFLICT (path) DO UPDATE SET listed_ns = excluded.listed_ns, marker = excluded.marker`, paths, ats, markers)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: mark listed: %w", err)
	}
	return nil
}

func (c *pgCatalog) Listed(ctx context.Context, path string) (ListedDir, bool, error) {
	d := ListedDir{Path: path}
	var at int64
	switch err := c.row(ctx, `SELECT listed_ns, marker FROM listed_dirs WHERE path = $1`, path).Scan(&at, &d.Marker); {
	case errors.Is(err, pgx.ErrNoRows):
		return ListedDir{}, false, nil
	case err != nil:
		return ListedDir{}, false, fmt.Errorf("catalog: %w", err)
	}
	d.ListedAt = fromNS(at)
	return d, true, nil
}

func (c *pgCatalog) ListedBelow(ctx context.Context, dir string) (bool, error) {
	q, args := `SELECT 1 FROM listed_dirs WHERE path <> '' LIMIT 1`, []any{}
	if dir != "" {
		lo, hi := prefixRange(dir)
		q, args = `SELECT 1 FROM listed_dirs WHERE path >= $1 AND path < $2 LIMIT 1`, []any{lo, hi}
	}
	var one int
	switch err := c.row(ctx, q, args...).Scan(&one); {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("catalog: listed below %q: %w", dir, err)
	}
	return true, nil
}

// deleteUnder deletes the rows of table whose path is prefix or below it.
func (c *pgCatalog) deleteUnder(ctx context.Context, table, prefix string) (int64, error) {
	var n int64
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		var tag pgconn.CommandTag
		var err error
		if prefix == "" {
			tag, err = tx.Exec(ctx, `DELETE FROM `+table)
		} else {
			lo, hi := prefixRange(prefix)
			tag, err = tx.Exec(ctx, `DELETE FROM `+table+` WHERE path = $1 OR (path >= $2 AND path < $3)`, prefix, lo, hi)
		}
		n = tag.RowsAffected()
		return err
	})
	return n, err
}

func (c *pgCatalog) ForgetListed(ctx context.Context, prefix string) (int64, error) {
	return c.deleteUnder(ctx, "listed_dirs", prefix)
}

func (c *pgCatalog) MoveListed(ctx context.Context, from, to string) error {
	if from == "" || to == "" {
		return fmt.Errorf("catalog: move listed %q to %q: the root is never renamed", from, to)
	}
	return c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error { return pgMoveListed(ctx, tx, from, to) })
}

// pgMoveListed is MoveListed inside the caller's transaction.
func pgMoveListed(ctx context.Context, tx pgx.Tx, from, to string) error {
	if from == "" || to == "" {
		return nil // the root is never renamed
	}
	lo, hi := prefixRange(to)
	if _, err := tx.Exec(ctx, `DELETE FROM listed_dirs WHERE path = $1 OR (path >= $2 AND path < $3)`, to, lo, hi); err != nil {
		return err
	}
	lo, hi = prefixRange(from)
	_, err := tx.Exec(ctx, `UPDATE listed_dirs SET path = $1 || substr(path, $2) WHERE path = $3 OR (path >= $4 AND path < $5)`,
		to, runeOffset(from), from, lo, hi)
	return err
}

// ---- chunk maps (store.MapStore has no context)

func (c *pgCatalog) LoadChunkMap(id store.MapID) ([]byte, error) {
	var b []byte
	err := c.row(context.Background(), `SELECT bitmap FROM chunk_maps WHERE id = $1`, id[:]).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("chunk map %x: %w", id[:], ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("catalog: chunk map %x: %w", id[:], err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

func (c *pgCatalog) SaveChunkMap(id store.MapID, bitmap []byte) error {
	if bitmap == nil {
		bitmap = []byte{}
	}
	return c.tx(context.Background(), durable, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO chunk_maps VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET bitmap = excluded.bitmap, updated_ns = excluded.updated_ns`,
			id[:], bitmap, c.opts.now().UnixNano())
		return err
	})
}

func (c *pgCatalog) DeleteChunkMap(id store.MapID) error {
	return c.tx(context.Background(), durable, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM chunk_maps WHERE id = $1`, id[:])
		return err
	})
}

// ---- access times

func (c *pgCatalog) RecordAccess(ctx context.Context, accesses ...Access) error {
	if len(accesses) == 0 {
		return nil
	}
	paths := make([]string, len(accesses))
	ats := make([]int64, len(accesses))
	for i, a := range accesses {
		if err := checkPath(a.Path); err != nil {
			return err
		}
		paths[i], ats[i] = a.Path, a.At.UnixNano()
	}
	err := c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO access_times AS t (path, at_ns)
			SELECT p, max(a) FROM unnest($1::text[], $2::bigint[]) AS u(p, a) GROUP BY p
			ON CONFLICT (path) DO UPDATE SET at_ns = greatest(t.at_ns, excluded.at_ns)`, paths, ats)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: record access: %w", err)
	}
	return nil
}

func (c *pgCatalog) LeastRecentlyAccessed(ctx context.Context, after *Access, limit int) ([]Access, error) {
	if limit <= 0 {
		return nil, nil
	}
	var rows pgx.Rows
	var err error
	if after == nil {
		rows, err = c.query(ctx, `SELECT path, at_ns FROM access_times ORDER BY at_ns, path LIMIT $1`, limit)
	} else {
		rows, err = c.query(ctx, `SELECT path, at_ns FROM access_times WHERE (at_ns, path) > ($1, $2) ORDER BY at_ns, path LIMIT $3`, after.At.UnixNano(), after.Path, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer rows.Close()
	var out []Access
	for rows.Next() {
		var a Access
		var at int64
		if err := rows.Scan(&a.Path, &at); err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		a.At = time.Unix(0, at)
		out = append(out, a)
	}
	return out, rows.Err()
}

func (c *pgCatalog) ForgetAccess(ctx context.Context, paths ...string) error {
	if len(paths) == 0 {
		return nil
	}
	return c.tx(ctx, relaxed, func(ctx context.Context, tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM access_times WHERE path = ANY($1)`, paths)
		return err
	})
}
