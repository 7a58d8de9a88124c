package catalog

// The PostgreSQL schema, version by version, as the SQLite one (schema.go):
// the same tables and columns, times as BIGINT Unix nanoseconds, every path
// and key column COLLATE "C" (bytewise, as SQLite's BINARY: a prefix P
// selects P and the half-open range [P+"/", P+"0") whatever the database's
// locale). Open applies the migrations a database lacks in one transaction
// that first takes an advisory lock (pg_advisory_xact_lock(pgSchemaLock)),
// so nodes starting together migrate once; a database whose version is newer than len(pgMigrations) is refused
// (ErrSchemaTooNew). Append-only: never edit a released migration.
//
// What differs from SQLite:
//   - Depth and HintDepth are the sums of small counter tables
//     (journal_depth, hint_depth: one row per shard, shard = backend pid %
//     64) kept by deferred constraint triggers. The triggers fire at commit,
//     after every other lock the transaction takes, so a counter row is
//     never held while a journal row is waited for (no deadlock through it),
//     and concurrent transactions of different connections mostly update
//     different rows.
//   - journal_stats and import_hint_stats keep only last_seq: Append and
//     EnqueueHints lock that row first (SELECT … FOR UPDATE), which
//     serializes them across nodes as SQLite's single writer does, so
//     sequence numbers follow commit order.
//   - moves.id is an identity column.

// pgSchemaLock is the advisory lock key under which the schema is
// created and migrated ("ferry" in ASCII, then 1).
const pgSchemaLock int64 = 0x6665727279_0001

var pgMigrations = []string{
	// 1: the SQLite schema up to its version 5, in one.
	`
CREATE TABLE filesystem (
	one        INTEGER PRIMARY KEY CHECK (one = 1),
	fs_id      TEXT    NOT NULL,
	created_ns BIGINT  NOT NULL,
	store_path TEXT    NOT NULL
);
CREATE TABLE associations (
	id         TEXT COLLATE "C" PRIMARY KEY,
	fs_id      TEXT COLLATE "C" NOT NULL,
	fs_path    TEXT COLLATE "C" NOT NULL,
	repo_path  TEXT COLLATE "C" NOT NULL,
	lifecycle  TEXT   NOT NULL,
	created_ns BIGINT NOT NULL,
	record     TEXT   NOT NULL
);
CREATE INDEX associations_created ON associations (created_ns, id);
CREATE INDEX associations_fs_path ON associations (fs_path);
CREATE INDEX associations_repo_path ON associations (repo_path);
CREATE TABLE tokens (
	operation   TEXT COLLATE "C" NOT NULL,
	token       TEXT COLLATE "C" NOT NULL,
	fingerprint TEXT   NOT NULL,
	resource_id TEXT   NOT NULL,
	created_ns  BIGINT NOT NULL,
	PRIMARY KEY (operation, token)
);
CREATE TABLE listed_dirs (
	path      TEXT COLLATE "C" PRIMARY KEY,
	listed_ns BIGINT NOT NULL,
	marker    TEXT   NOT NULL
);
CREATE TABLE chunk_maps (
	id         BYTEA  PRIMARY KEY,
	bitmap     BYTEA  NOT NULL,
	updated_ns BIGINT NOT NULL
);
CREATE TABLE journal (
	path        TEXT COLLATE "C" PRIMARY KEY,
	seq         BIGINT  NOT NULL,
	first_seq   BIGINT  NOT NULL,
	kind        TEXT    NOT NULL,
	old_path    TEXT COLLATE "C" NOT NULL,
	version     BIGINT  NOT NULL,
	enqueued_ns BIGINT  NOT NULL,
	updated_ns  BIGINT  NOT NULL,
	ready_ns    BIGINT  NOT NULL DEFAULT 0,
	owner       TEXT COLLATE "C",
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX journal_ready ON journal (ready_ns, enqueued_ns, path);
CREATE INDEX journal_enqueued ON journal (enqueued_ns);
CREATE INDEX journal_first_seq ON journal (first_seq);
CREATE INDEX journal_owner ON journal (owner) WHERE owner IS NOT NULL;
CREATE INDEX journal_renamed_from ON journal (old_path) WHERE kind = 'RENAME';
CREATE TABLE journal_stats (
	one      INTEGER PRIMARY KEY CHECK (one = 1),
	last_seq BIGINT NOT NULL
);
INSERT INTO journal_stats VALUES (1, 0);
CREATE TABLE journal_depth (
	shard INTEGER PRIMARY KEY,
	n     BIGINT NOT NULL
);
CREATE FUNCTION ferry_journal_depth() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO journal_depth AS d VALUES (pg_backend_pid() % 64, CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END)
	ON CONFLICT (shard) DO UPDATE SET n = d.n + excluded.n;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER journal_depth AFTER INSERT OR DELETE ON journal
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ferry_journal_depth();
CREATE TABLE tasks (
	id         TEXT COLLATE "C" PRIMARY KEY,
	fs_id      TEXT COLLATE "C" NOT NULL,
	type       TEXT   NOT NULL,
	lifecycle  TEXT COLLATE "C" NOT NULL,
	created_ns BIGINT NOT NULL,
	updated_ns BIGINT NOT NULL DEFAULT 0,
	total      BIGINT NOT NULL DEFAULT 0,
	succeeded  BIGINT NOT NULL DEFAULT 0,
	failed     BIGINT NOT NULL DEFAULT 0,
	released   BIGINT NOT NULL DEFAULT 0,
	record     TEXT   NOT NULL
);
CREATE INDEX tasks_created ON tasks (created_ns, id);
CREATE INDEX tasks_lifecycle ON tasks (lifecycle, created_ns, id);
CREATE TABLE task_associations (
	task_id        TEXT COLLATE "C" NOT NULL,
	association_id TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (task_id, association_id)
);
CREATE INDEX task_associations_assoc ON task_associations (association_id, task_id);
CREATE TABLE access_times (
	path  TEXT COLLATE "C" PRIMARY KEY,
	at_ns BIGINT NOT NULL
);
CREATE INDEX access_times_at ON access_times (at_ns, path);
CREATE TABLE moves (
	id         BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	from_path  TEXT COLLATE "C" NOT NULL,
	to_path    TEXT COLLATE "C" NOT NULL,
	created_ns BIGINT NOT NULL
);
CREATE TABLE links (
	ino  BIGINT NOT NULL,
	path TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (ino, path)
);
CREATE INDEX links_path ON links (path);
CREATE TABLE import_hints (
	bucket      TEXT COLLATE "C" NOT NULL,
	obj_key     TEXT COLLATE "C" NOT NULL,
	kind        TEXT    NOT NULL,
	source      TEXT    NOT NULL,
	sequencer   TEXT    NOT NULL,
	event_ns    BIGINT  NOT NULL,
	size        BIGINT  NOT NULL,
	etag        TEXT    NOT NULL,
	seq         BIGINT  NOT NULL,
	first_seq   BIGINT  NOT NULL,
	enqueued_ns BIGINT  NOT NULL,
	updated_ns  BIGINT  NOT NULL,
	ready_ns    BIGINT  NOT NULL DEFAULT 0,
	owner       TEXT COLLATE "C",
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (bucket, obj_key)
);
CREATE INDEX import_hints_ready ON import_hints (ready_ns, first_seq);
CREATE INDEX import_hints_enqueued ON import_hints (enqueued_ns);
CREATE INDEX import_hints_owner ON import_hints (owner) WHERE owner IS NOT NULL;
CREATE TABLE import_hint_stats (
	one      INTEGER PRIMARY KEY CHECK (one = 1),
	last_seq BIGINT NOT NULL
);
INSERT INTO import_hint_stats VALUES (1, 0);
CREATE TABLE hint_depth (
	shard INTEGER PRIMARY KEY,
	n     BIGINT NOT NULL
);
CREATE FUNCTION ferry_hint_depth() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO hint_depth AS d VALUES (pg_backend_pid() % 64, CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE -1 END)
	ON CONFLICT (shard) DO UPDATE SET n = d.n + excluded.n;
	RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER hint_depth AFTER INSERT OR DELETE ON import_hints
	DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ferry_hint_depth();
CREATE TABLE sessions (
	node_id      TEXT COLLATE "C" PRIMARY KEY,
	host         TEXT    NOT NULL,
	mount_point  TEXT    NOT NULL,
	pid          INTEGER NOT NULL,
	version      TEXT    NOT NULL,
	started_ns   BIGINT  NOT NULL,
	heartbeat_ns BIGINT  NOT NULL,
	expires_ns   BIGINT  NOT NULL
);
CREATE INDEX sessions_expires ON sessions (expires_ns);
`,
}
