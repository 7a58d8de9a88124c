package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-hpc/ferry/internal/api"
	"github.com/ferry-hpc/ferry/internal/dra"
	"github.com/ferry-hpc/ferry/internal/store"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, pure Go
)

// SQLite engine.
//
// Connections: one writer connection, held for the catalog's life and used
// under a one-slot semaphore (SQLite has one writer per database anyway;
// holding it avoids SQLITE_BUSY between our own goroutines and lets
// statements stay prepared on it), and a pool of query_only readers (WAL lets
// them read while the writer writes). Every write is one BEGIN IMMEDIATE …
// COMMIT on the writer.
//
// synchronous: WAL mode with synchronous=FULL fsyncs the WAL at every commit;
// NORMAL fsyncs only at checkpoints, so a commit survives a crash of the
// process (kill -9) but not necessarily a power cut. Each transaction picks
// (see durability): FULL for whatever acknowledges a user's write or request
// — journal appends, associations, tokens, tasks, chunk maps — and NORMAL for
// listed directories and access times, which are written in bulk and only
// save work, and for journal appends marked Relaxed (the mount's close(2)). A FULL commit also makes every earlier NORMAL commit durable
// (the WAL is one ordered log). The journal's cost of FULL is paid once per
// group commit, not per entry.
type sqliteCatalog struct {
	opts Options
	path string

	wdb   *sql.DB
	wc    *sql.Conn
	wsem  chan struct{} // holds the writer
	wsync string        // current synchronous setting of wc (under wsem)
	wstmt map[string]*sql.Stmt
	res   *reserve // space kept for a full disk

	rdb   *sql.DB
	rmu   sync.Mutex
	rstmt map[string]*sql.Stmt

	appendMu sync.RWMutex // guards closed against Append's enqueue
	closed   bool
	appendCh chan *appendReq
	commitWG sync.WaitGroup
	closeMu  sync.Mutex
}

type durability int

const (
	relaxed durability = iota // synchronous=NORMAL
	durable                   // synchronous=FULL
)

// OpenSQLite opens the SQLite catalog at path (an absolute file name),
// creating it (mode 0600) and migrating its schema when needed.
func OpenSQLite(ctx context.Context, path string, opts Options) (Catalog, error) {
	if !filepath.IsAbs(path) || strings.ContainsAny(path, "?#\x00") {
		return nil, fmt.Errorf("catalog: SQLite path %q must be absolute, without '?', '#' or NUL", path)
	}
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 4096
	}
	if opts.ReadConns <= 0 {
		opts.ReadConns = 4
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = 10 * time.Second
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	f.Close()
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", opts.BusyTimeout.Milliseconds())
	c := &sqliteCatalog{opts: opts, path: path, wsem: make(chan struct{}, 1), wstmt: map[string]*sql.Stmt{}, rstmt: map[string]*sql.Stmt{}}
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	size := opts.Reserve
	if size == 0 {
		size = DefaultReserve
	}
	c.res = newReserve(path+"-reserve", size, lg)
	c.wdb, err = sql.Open("sqlite", path+"?"+busy+"&_pragma=journal_mode(wal)&_pragma=synchronous(full)&_pragma=cache_size(-16000)")
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	c.wdb.SetMaxOpenConns(1)
	c.wdb.SetConnMaxIdleTime(0)
	c.wdb.SetConnMaxLifetime(0)
	if c.wc, err = c.wdb.Conn(ctx); err != nil {
		c.wdb.Close()
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	c.wsync = "FULL"
	var mode string
	if err := c.wc.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "wal") {
		c.wc.Close()
		c.wdb.Close()
		return nil, fmt.Errorf("catalog %s: cannot use WAL mode (journal_mode %q): %v", path, mode, err)
	}
	if err := c.migrate(ctx); err != nil {
		c.wc.Close()
		c.wdb.Close()
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	c.rdb, err = sql.Open("sqlite", path+"?"+busy+"&_pragma=query_only(1)")
	if err != nil {
		c.wc.Close()
		c.wdb.Close()
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	c.rdb.SetMaxOpenConns(opts.ReadConns)
	c.rdb.SetMaxIdleConns(opts.ReadConns)
	c.appendCh = make(chan *appendReq, 1024)
	c.commitWG.Add(1)
	go c.committer()
	return c, nil
}

func (c *sqliteCatalog) migrate(ctx context.Context) error {
	return c.write(ctx, durable, func(ctx context.Context) error {
		if _, err := c.wc.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var v int
		err := c.wc.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := c.wc.ExecContext(ctx, `INSERT INTO schema_version VALUES (0)`); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		if v > len(sqliteMigrations) {
			return fmt.Errorf("schema version %d, this ferry knows up to %d: %w (use the newer ferry)", v, len(sqliteMigrations), ErrSchemaTooNew)
		}
		for i := v; i < len(sqliteMigrations); i++ {
			if _, err := c.wc.ExecContext(ctx, sqliteMigrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		_, err = c.wc.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(sqliteMigrations))
		return err
	})
}

// write runs fn in one transaction on the writer connection.
// write runs fn in one write transaction. A transaction that fails because
// the disk is full is retried once after the catalog's reserve is given up
// (see reserve).
func (c *sqliteCatalog) write(ctx context.Context, d durability, fn func(ctx context.Context) error) error {
	err := c.writeOnce(ctx, d, fn)
	if diskFull(err) && c.res.release() {
		err = c.writeOnce(ctx, d, fn)
	}
	if err == nil {
		c.res.refill(c.opts.now()) // cheap unless the reserve is gone
	}
	return err
}

func (c *sqliteCatalog) writeOnce(ctx context.Context, d durability, fn func(ctx context.Context) error) (err error) {
	select {
	case c.wsem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.wsem }()
	if c.wc == nil {
		return ErrClosed
	}
	want := "NORMAL"
	if d == durable {
		want = "FULL"
	}
	if c.wsync != want {
		if _, err := c.wc.ExecContext(ctx, "PRAGMA synchronous = "+want); err != nil {
			return fmt.Errorf("catalog: set synchronous: %w", err)
		}
		c.wsync = want
	}
	if _, err := c.wc.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("catalog: begin: %w", err)
	}
	if err := fn(ctx); err != nil {
		c.rollback()
		return err
	}
	if _, err := c.wc.ExecContext(ctx, "COMMIT"); err != nil {
		c.rollback()
		return fmt.Errorf("catalog: commit: %w", err)
	}
	return nil
}

func (c *sqliteCatalog) rollback() {
	// A failed statement may already have ended the transaction; the
	// error of a second ROLLBACK says only that.
	_, _ = c.wc.ExecContext(context.Background(), "ROLLBACK")
}

// ws returns q prepared on the writer (call under write).
func (c *sqliteCatalog) ws(ctx context.Context, q string) (*sql.Stmt, error) {
	if s, ok := c.wstmt[q]; ok {
		return s, nil
	}
	s, err := c.wc.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("catalog: prepare: %w", err)
	}
	c.wstmt[q] = s
	return s, nil
}

func (c *sqliteCatalog) wexec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	s, err := c.ws(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.ExecContext(ctx, args...)
}

func (c *sqliteCatalog) wrow(ctx context.Context, q string, args ...any) *sql.Row {
	s, err := c.ws(ctx, q)
	if err != nil {
		// Surface the prepare error through Scan.
		return c.wc.QueryRowContext(ctx, q, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

// rs returns q prepared on the read pool.
func (c *sqliteCatalog) rs(ctx context.Context, q string) (*sql.Stmt, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.rdb == nil {
		return nil, ErrClosed
	}
	if s, ok := c.rstmt[q]; ok {
		return s, nil
	}
	s, err := c.rdb.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("catalog: prepare: %w", err)
	}
	c.rstmt[q] = s
	return s, nil
}

func (c *sqliteCatalog) rrow(ctx context.Context, q string, args ...any) (*sql.Row, error) {
	s, err := c.rs(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryRowContext(ctx, args...), nil
}

func (c *sqliteCatalog) rquery(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := c.rs(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

// Room implements SpaceKeeper.
func (c *sqliteCatalog) Room() error { return c.res.room(c.opts.now) }

func (c *sqliteCatalog) Close() error {
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

	var errs []error
	c.rmu.Lock()
	for _, s := range c.rstmt {
		s.Close()
	}
	errs = append(errs, c.rdb.Close())
	c.rdb = nil
	c.rmu.Unlock()

	c.wsem <- struct{}{}
	for _, s := range c.wstmt {
		s.Close()
	}
	// Fold the WAL into the database so the file is whole on its own.
	_, _ = c.wc.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)")
	errs = append(errs, c.wc.Close(), c.wdb.Close())
	c.wc = nil
	<-c.wsem
	return errors.Join(errs...)
}

func ns(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// createdNS is the sort key of a creation time: microseconds, the precision
// the record's JSON keeps, so a cursor made from a returned record matches.
func createdNS(t api.Time) int64 { return t.Truncate(time.Microsecond).UnixNano() }

func fromNS(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// ---- identity

func (c *sqliteCatalog) FileSystem(ctx context.Context) (FileSystemInfo, error) {
	var fi FileSystemInfo
	var created int64
	row, err := c.rrow(ctx, `SELECT fs_id, created_ns, store_path FROM filesystem WHERE one = 1`)
	if err != nil {
		return fi, err
	}
	if err := row.Scan(&fi.FileSystemId, &created, &fi.StorePath); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fi, fmt.Errorf("file system identity: %w", ErrNotFound)
		}
		return fi, fmt.Errorf("catalog: %w", err)
	}
	fi.CreationTime = fromNS(created)
	return fi, nil
}

func (c *sqliteCatalog) InitFileSystem(ctx context.Context, want FileSystemInfo) (FileSystemInfo, error) {
	if err := dra.ValidateFileSystemID(want.FileSystemId); err != nil {
		return FileSystemInfo{}, err
	}
	var got FileSystemInfo
	err := c.write(ctx, durable, func(ctx context.Context) error {
		if _, err := c.wexec(ctx, `INSERT INTO filesystem VALUES (1, ?, ?, ?) ON CONFLICT (one) DO NOTHING`,
			want.FileSystemId, ns(want.CreationTime), want.StorePath); err != nil {
			return err
		}
		var created int64
		if err := c.wrow(ctx, `SELECT fs_id, created_ns, store_path FROM filesystem WHERE one = 1`).Scan(&got.FileSystemId, &created, &got.StorePath); err != nil {
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

func (c *sqliteCatalog) LookupToken(ctx context.Context, operation, token string) (dra.TokenRecord, bool, error) {
	rec := dra.TokenRecord{Operation: operation, Token: token}
	row, err := c.rrow(ctx, `SELECT fingerprint, resource_id FROM tokens WHERE operation = ? AND token = ?`, operation, token)
	if err != nil {
		return rec, false, err
	}
	switch err := row.Scan(&rec.Fingerprint, &rec.ResourceID); {
	case errors.Is(err, sql.ErrNoRows):
		return dra.TokenRecord{}, false, nil
	case err != nil:
		return dra.TokenRecord{}, false, fmt.Errorf("catalog: token: %w", err)
	}
	return rec, true, nil
}

func (c *sqliteCatalog) SaveToken(ctx context.Context, rec dra.TokenRecord) (dra.TokenRecord, bool, error) {
	var prev dra.TokenRecord
	var saved bool
	err := c.write(ctx, durable, func(ctx context.Context) error {
		var err error
		prev, saved, err = c.saveTokenTx(ctx, &rec)
		return err
	})
	if err != nil {
		return dra.TokenRecord{}, false, fmt.Errorf("catalog: save token: %w", err)
	}
	return prev, saved, nil
}

// saveTokenTx inserts rec unless its (Operation, Token) exists, in which case
// it returns the existing record and saved=false.
func (c *sqliteCatalog) saveTokenTx(ctx context.Context, rec *dra.TokenRecord) (dra.TokenRecord, bool, error) {
	res, err := c.wexec(ctx, `INSERT INTO tokens VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		rec.Operation, rec.Token, rec.Fingerprint, rec.ResourceID, c.opts.now().UnixNano())
	if err != nil {
		return dra.TokenRecord{}, false, err
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return *rec, true, nil
	}
	prev := dra.TokenRecord{Operation: rec.Operation, Token: rec.Token}
	err = c.wrow(ctx, `SELECT fingerprint, resource_id FROM tokens WHERE operation = ? AND token = ?`, rec.Operation, rec.Token).
		Scan(&prev.Fingerprint, &prev.ResourceID)
	return prev, false, err
}

// ---- associations

func (c *sqliteCatalog) CreateAssociation(ctx context.Context, a api.DataRepositoryAssociation, tok *dra.TokenRecord) (dra.TokenRecord, bool, error) {
	if a.AssociationId == "" {
		return dra.TokenRecord{}, false, errors.New("catalog: association without an id")
	}
	rec, err := json.Marshal(a)
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
		res, err := c.wexec(ctx, `INSERT INTO associations VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			a.AssociationId, a.FileSystemId, a.FileSystemPath, a.DataRepositoryPath, string(a.Lifecycle), createdNS(a.CreationTime), string(rec))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
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

func decodeAssociation(rec string) (api.DataRepositoryAssociation, error) {
	var a api.DataRepositoryAssociation
	if err := json.Unmarshal([]byte(rec), &a); err != nil {
		return a, fmt.Errorf("catalog: corrupt association record: %w", err)
	}
	return a, nil
}

func (c *sqliteCatalog) Association(ctx context.Context, id string) (api.DataRepositoryAssociation, error) {
	row, err := c.rrow(ctx, `SELECT record FROM associations WHERE id = ?`, id)
	if err != nil {
		return api.DataRepositoryAssociation{}, err
	}
	var rec string
	if err := row.Scan(&rec); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return api.DataRepositoryAssociation{}, fmt.Errorf("association %s: %w", id, ErrNotFound)
		}
		return api.DataRepositoryAssociation{}, fmt.Errorf("catalog: %w", err)
	}
	return decodeAssociation(rec)
}

func (c *sqliteCatalog) Associations(ctx context.Context) ([]api.DataRepositoryAssociation, error) {
	rows, err := c.rquery(ctx, `SELECT record FROM associations ORDER BY created_ns, id`)
	if err != nil {
		return nil, err
	}
	return scanRecords(rows, decodeAssociation)
}

func scanRecords[T any](rows *sql.Rows, decode func(string) (T, error)) ([]T, error) {
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

// missingIDs returns the first of ids not in table.
func (c *sqliteCatalog) missingID(ctx context.Context, table string, ids []string) (string, error) {
	if len(ids) == 0 {
		return "", nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := c.rdb.QueryContext(ctx, `SELECT id FROM `+table+` WHERE id IN (`+placeholders(len(ids))+`)`, args...)
	if err != nil {
		return "", fmt.Errorf("catalog: %w", err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return "", err
		}
		found[id] = true
	}
	if err := rows.Err(); err != nil {
		return "", err
	}
	for _, id := range ids {
		if !found[id] {
			return id, nil
		}
	}
	return "", nil
}

// queryPage builds the WHERE/ORDER/LIMIT of a describe page over a table
// with id and created_ns columns.
type sqlWhere struct {
	conds []string
	args  []any
}

func (w *sqlWhere) in(col string, vals []string) {
	w.conds = append(w.conds, col+` IN (`+placeholders(len(vals))+`)`)
	for _, v := range vals {
		w.args = append(w.args, v)
	}
}

func (w *sqlWhere) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *sqlWhere) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func pageWhere(w *sqlWhere, q dra.Query) {
	if q.After != nil {
		w.add(`(created_ns, id) > (?, ?)`, q.After.CreatedUnixNano, q.After.ID)
	}
}

func (c *sqliteCatalog) DescribeAssociations(ctx context.Context, q dra.Query) ([]api.DataRepositoryAssociation, *dra.Cursor, error) {
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
	rows, err := c.rdb.QueryContext(ctx, `SELECT record FROM associations`+w.sql()+` ORDER BY created_ns, id LIMIT ?`, append(w.args, limit+1)...)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: %w", err)
	}
	items, err := scanRecords(rows, decodeAssociation)
	if err != nil || len(items) <= limit {
		return items, nil, err
	}
	items = items[:limit]
	last := items[limit-1]
	return items, &dra.Cursor{CreatedUnixNano: createdNS(last.CreationTime), ID: last.AssociationId}, nil
}

func (c *sqliteCatalog) UpdateAssociation(ctx context.Context, id string, tok *dra.TokenRecord, fn func(*api.DataRepositoryAssociation) error) (api.DataRepositoryAssociation, dra.TokenRecord, bool, error) {
	var out api.DataRepositoryAssociation
	var prev dra.TokenRecord
	updated := false
	err := c.write(ctx, durable, func(ctx context.Context) error {
		var rec string
		err := c.wrow(ctx, `SELECT record FROM associations WHERE id = ?`, id).Scan(&rec)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		found := err == nil
		if tok != nil && tok.Token != "" {
			p, saved, err := c.saveTokenTx(ctx, tok)
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
		if _, err := c.wexec(ctx, `UPDATE associations SET lifecycle = ?, record = ? WHERE id = ?`, string(a.Lifecycle), string(b), id); err != nil {
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

func (c *sqliteCatalog) DeleteAssociation(ctx context.Context, id string) error {
	return c.write(ctx, durable, func(ctx context.Context) error {
		res, err := c.wexec(ctx, `DELETE FROM associations WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("association %s: %w", id, ErrNotFound)
		}
		return nil
	})
}

// ---- listed directories

func (c *sqliteCatalog) MarkListed(ctx context.Context, dirs ...ListedDir) error {
	for _, d := range dirs {
		if err := checkPath(d.Path); err != nil {
			return err
		}
		if len(d.Marker) > 4096 {
			return fmt.Errorf("catalog: listing marker of %q is %d bytes, over 4096", d.Path, len(d.Marker))
		}
	}
	return c.write(ctx, relaxed, func(ctx context.Context) error {
		for _, d := range dirs {
			if _, err := c.wexec(ctx, `INSERT INTO listed_dirs VALUES (?, ?, ?) ON CONFLICT (path) DO UPDATE SET listed_ns = excluded.listed_ns, marker = excluded.marker`,
				d.Path, ns(d.ListedAt), d.Marker); err != nil {
				return fmt.Errorf("catalog: mark listed %q: %w", d.Path, err)
			}
		}
		return nil
	})
}

func (c *sqliteCatalog) Listed(ctx context.Context, path string) (ListedDir, bool, error) {
	row, err := c.rrow(ctx, `SELECT listed_ns, marker FROM listed_dirs WHERE path = ?`, path)
	if err != nil {
		return ListedDir{}, false, err
	}
	d := ListedDir{Path: path}
	var at int64
	switch err := row.Scan(&at, &d.Marker); {
	case errors.Is(err, sql.ErrNoRows):
		return ListedDir{}, false, nil
	case err != nil:
		return ListedDir{}, false, fmt.Errorf("catalog: %w", err)
	}
	d.ListedAt = fromNS(at)
	return d, true, nil
}

func (c *sqliteCatalog) ListedBelow(ctx context.Context, dir string) (bool, error) {
	q, args := `SELECT 1 FROM listed_dirs WHERE path <> '' LIMIT 1`, []any{}
	if dir != "" {
		lo, hi := prefixRange(dir)
		q, args = `SELECT 1 FROM listed_dirs WHERE path >= ? AND path < ? LIMIT 1`, []any{lo, hi}
	}
	row, err := c.rrow(ctx, q, args...)
	if err != nil {
		return false, err
	}
	var one int
	switch err := row.Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("catalog: listed below %q: %w", dir, err)
	}
	return true, nil
}

// deleteUnder deletes the rows of table whose path is prefix or below it.
func (c *sqliteCatalog) deleteUnder(ctx context.Context, table, prefix string) (int64, error) {
	var n int64
	err := c.write(ctx, relaxed, func(ctx context.Context) error {
		var res sql.Result
		var err error
		if prefix == "" {
			res, err = c.wexec(ctx, `DELETE FROM `+table)
		} else {
			lo, hi := prefixRange(prefix)
			res, err = c.wexec(ctx, `DELETE FROM `+table+` WHERE path = ? OR (path >= ? AND path < ?)`, prefix, lo, hi)
		}
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	return n, err
}

func (c *sqliteCatalog) ForgetListed(ctx context.Context, prefix string) (int64, error) {
	return c.deleteUnder(ctx, "listed_dirs", prefix)
}

func (c *sqliteCatalog) MoveListed(ctx context.Context, from, to string) error {
	if from == "" || to == "" {
		return fmt.Errorf("catalog: move listed %q to %q: the root is never renamed", from, to)
	}
	return c.write(ctx, relaxed, func(ctx context.Context) error { return c.moveListed(ctx, from, to) })
}

// moveListed is MoveListed inside the caller's transaction.
func (c *sqliteCatalog) moveListed(ctx context.Context, from, to string) error {
	if from == "" || to == "" {
		return nil // the root is never renamed
	}
	lo, hi := prefixRange(to)
	if _, err := c.wexec(ctx, `DELETE FROM listed_dirs WHERE path = ? OR (path >= ? AND path < ?)`, to, lo, hi); err != nil {
		return err
	}
	lo, hi = prefixRange(from)
	_, err := c.wexec(ctx, `UPDATE listed_dirs SET path = ? || substr(path, ?) WHERE path = ? OR (path >= ? AND path < ?)`,
		to, runeOffset(from), from, lo, hi)
	return err
}

// ---- chunk maps (store.MapStore has no context: they run under the busy
// timeout)

func (c *sqliteCatalog) LoadChunkMap(id store.MapID) ([]byte, error) {
	ctx := context.Background()
	row, err := c.rrow(ctx, `SELECT bitmap FROM chunk_maps WHERE id = ?`, id[:])
	if err != nil {
		return nil, err
	}
	var b []byte
	if err := row.Scan(&b); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("chunk map %x: %w", id[:], ErrNotFound)
		}
		return nil, fmt.Errorf("catalog: chunk map %x: %w", id[:], err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

func (c *sqliteCatalog) SaveChunkMap(id store.MapID, bitmap []byte) error {
	if bitmap == nil {
		bitmap = []byte{}
	}
	return c.write(context.Background(), durable, func(ctx context.Context) error {
		_, err := c.wexec(ctx, `INSERT INTO chunk_maps VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET bitmap = excluded.bitmap, updated_ns = excluded.updated_ns`,
			id[:], bitmap, c.opts.now().UnixNano())
		return err
	})
}

func (c *sqliteCatalog) DeleteChunkMap(id store.MapID) error {
	return c.write(context.Background(), durable, func(ctx context.Context) error {
		_, err := c.wexec(ctx, `DELETE FROM chunk_maps WHERE id = ?`, id[:])
		return err
	})
}

// ---- access times

func (c *sqliteCatalog) RecordAccess(ctx context.Context, accesses ...Access) error {
	for _, a := range accesses {
		if err := checkPath(a.Path); err != nil {
			return err
		}
	}
	return c.write(ctx, relaxed, func(ctx context.Context) error {
		for _, a := range accesses {
			if _, err := c.wexec(ctx, `INSERT INTO access_times VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET at_ns = max(at_ns, excluded.at_ns)`,
				a.Path, a.At.UnixNano()); err != nil {
				return fmt.Errorf("catalog: record access %q: %w", a.Path, err)
			}
		}
		return nil
	})
}

func (c *sqliteCatalog) LeastRecentlyAccessed(ctx context.Context, after *Access, limit int) ([]Access, error) {
	if limit <= 0 {
		return nil, nil
	}
	var rows *sql.Rows
	var err error
	if after == nil {
		rows, err = c.rquery(ctx, `SELECT path, at_ns FROM access_times ORDER BY at_ns, path LIMIT ?`, limit)
	} else {
		rows, err = c.rquery(ctx, `SELECT path, at_ns FROM access_times WHERE (at_ns, path) > (?, ?) ORDER BY at_ns, path LIMIT ?`, after.At.UnixNano(), after.Path, limit)
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

func (c *sqliteCatalog) ForgetAccess(ctx context.Context, paths ...string) error {
	return c.write(ctx, relaxed, func(ctx context.Context) error {
		for _, p := range paths {
			if _, err := c.wexec(ctx, `DELETE FROM access_times WHERE path = ?`, p); err != nil {
				return err
			}
		}
		return nil
	})
}
