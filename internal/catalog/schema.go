package catalog

// The SQLite schema, version by version. A catalog records its version in
// schema_version; Open applies the migrations it lacks in one transaction
// and refuses a catalog whose version is newer than len(sqliteMigrations)
// (ErrSchemaTooNew). Migrations are append-only: never edit a released one.
//
// All times are Unix nanoseconds (INTEGER). Paths are store-relative TEXT
// compared bytewise (BINARY collation), so a prefix P selects P and the
// half-open range [P+"/", P+"0").
//
//	schema_version(version)                 one row
//	filesystem(one=1, fs_id, created_ns, store_path)
//	                                        the identity, one row
//	associations(id PK, fs_id, fs_path, repo_path, lifecycle, created_ns,
//	             record JSON)               api.DataRepositoryAssociation;
//	                                        index (created_ns, id) for describe
//	                                        paging, index fs_path, repo_path
//	tokens(operation, token PK, fingerprint, resource_id, created_ns)
//	                                        ClientRequestToken → request
//	                                        fingerprint → resource
//	listed_dirs(path PK, listed_ns, marker) directories lazily listed once
//	chunk_maps(id BLOB(16) PK, bitmap, updated_ns)
//	                                        store.MapStore
//	journal(path PK, seq, first_seq, kind, old_path, version, enqueued_ns,
//	        updated_ns, ready_ns, owner, attempts, last_error)
//	                                        one pending entry per path (dedup);
//	                                        index (ready_ns, enqueued_ns) for
//	                                        Claim, (enqueued_ns) for OldestAge,
//	                                        (first_seq) for the hsm wait barrier,
//	                                        partial (owner) for ReleaseClaims
//	journal_stats(one=1, depth, last_seq)   kept by triggers and Append: Depth
//	                                        and JournalSeq without a scan
//	tasks(id PK, fs_id, type, lifecycle, created_ns, updated_ns, total,
//	      succeeded, failed, released, record JSON)
//	                                        api.DataRepositoryTask; counters in
//	                                        columns (AddTaskCounts adds without
//	                                        reading); index (created_ns, id),
//	                                        (lifecycle, created_ns, id)
//	task_associations(task_id, association_id PK)
//	                                        for the association filter
//	access_times(path PK, at_ns)            index (at_ns, path): least recently
//	                                        accessed first
//	moves(id PK, from_path, to_path, created_ns)
//	                                        renames begun and not yet journaled
//	                                        (BeginMove/EndMove)
//	links(ino, path PK)                     names of multiply linked inodes;
//	                                        index path for renames
//	import_hints(bucket, obj_key PK, kind, source, sequencer, event_ns,
//	             size, etag, seq, first_seq, enqueued_ns, updated_ns,
//	             ready_ns, owner, attempts, last_error)
//	                                        one pending import hint per
//	                                        object key (dedup); index
//	                                        (ready_ns, first_seq) for
//	                                        ClaimHints, (enqueued_ns) for
//	                                        HintOldestAge
//	import_hint_stats(one=1, depth, last_seq)
//	                                        kept by triggers and
//	                                        EnqueueHints: HintDepth without a
//	                                        scan, sequence numbers
//	sessions(node_id PK, host, mount_point, pid, version, started_ns,
//	         heartbeat_ns, expires_ns)      daemons serving the file system
//	                                        (Sessions); index expires_ns
var sqliteMigrations = []string{
	// 1: the first schema.
	`
CREATE TABLE filesystem (
	one        INTEGER PRIMARY KEY CHECK (one = 1),
	fs_id      TEXT    NOT NULL,
	created_ns INTEGER NOT NULL,
	store_path TEXT    NOT NULL
);
CREATE TABLE associations (
	id         TEXT    PRIMARY KEY,
	fs_id      TEXT    NOT NULL,
	fs_path    TEXT    NOT NULL,
	repo_path  TEXT    NOT NULL,
	lifecycle  TEXT    NOT NULL,
	created_ns INTEGER NOT NULL,
	record     TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX associations_created ON associations (created_ns, id);
CREATE INDEX associations_fs_path ON associations (fs_path);
CREATE INDEX associations_repo_path ON associations (repo_path);
CREATE TABLE tokens (
	operation   TEXT    NOT NULL,
	token       TEXT    NOT NULL,
	fingerprint TEXT    NOT NULL,
	resource_id TEXT    NOT NULL,
	created_ns  INTEGER NOT NULL,
	PRIMARY KEY (operation, token)
) WITHOUT ROWID;
CREATE TABLE listed_dirs (
	path      TEXT    PRIMARY KEY,
	listed_ns INTEGER NOT NULL,
	marker    TEXT    NOT NULL
) WITHOUT ROWID;
CREATE TABLE chunk_maps (
	id         BLOB    PRIMARY KEY,
	bitmap     BLOB    NOT NULL,
	updated_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE journal (
	path        TEXT    PRIMARY KEY,
	seq         INTEGER NOT NULL,
	first_seq   INTEGER NOT NULL,
	kind        TEXT    NOT NULL,
	old_path    TEXT    NOT NULL,
	version     INTEGER NOT NULL,
	enqueued_ns INTEGER NOT NULL,
	updated_ns  INTEGER NOT NULL,
	ready_ns    INTEGER NOT NULL DEFAULT 0,
	owner       TEXT,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE INDEX journal_ready ON journal (ready_ns, enqueued_ns);
CREATE INDEX journal_enqueued ON journal (enqueued_ns);
CREATE INDEX journal_first_seq ON journal (first_seq);
CREATE INDEX journal_owner ON journal (owner) WHERE owner IS NOT NULL;
CREATE TABLE journal_stats (
	one      INTEGER PRIMARY KEY CHECK (one = 1),
	depth    INTEGER NOT NULL,
	last_seq INTEGER NOT NULL
);
INSERT INTO journal_stats VALUES (1, 0, 0);
CREATE TRIGGER journal_depth_ins AFTER INSERT ON journal BEGIN
	UPDATE journal_stats SET depth = depth + 1 WHERE one = 1;
END;
CREATE TRIGGER journal_depth_del AFTER DELETE ON journal BEGIN
	UPDATE journal_stats SET depth = depth - 1 WHERE one = 1;
END;
CREATE TABLE tasks (
	id         TEXT    PRIMARY KEY,
	fs_id      TEXT    NOT NULL,
	type       TEXT    NOT NULL,
	lifecycle  TEXT    NOT NULL,
	created_ns INTEGER NOT NULL,
	updated_ns INTEGER NOT NULL DEFAULT 0,
	total      INTEGER NOT NULL DEFAULT 0,
	succeeded  INTEGER NOT NULL DEFAULT 0,
	failed     INTEGER NOT NULL DEFAULT 0,
	released   INTEGER NOT NULL DEFAULT 0,
	record     TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX tasks_created ON tasks (created_ns, id);
CREATE INDEX tasks_lifecycle ON tasks (lifecycle, created_ns, id);
CREATE TABLE task_associations (
	task_id        TEXT NOT NULL,
	association_id TEXT NOT NULL,
	PRIMARY KEY (task_id, association_id)
) WITHOUT ROWID;
CREATE INDEX task_associations_assoc ON task_associations (association_id, task_id);
CREATE TABLE access_times (
	path  TEXT    PRIMARY KEY,
	at_ns INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX access_times_at ON access_times (at_ns, path);
`,
	// 2: rename intents (moves) and hard-link names (links).
	`
CREATE TABLE moves (
	id         INTEGER PRIMARY KEY,
	from_path  TEXT    NOT NULL,
	to_path    TEXT    NOT NULL,
	created_ns INTEGER NOT NULL
);
CREATE TABLE links (
	ino  INTEGER NOT NULL,
	path TEXT    NOT NULL,
	PRIMARY KEY (ino, path)
) WITHOUT ROWID;
CREATE INDEX links_path ON links (path);
`,
	// 3: pending renames by old path (RenamesFrom).
	`
CREATE INDEX journal_renamed_from ON journal (old_path) WHERE kind = 'RENAME';
`,
	// 4: import hints from bucket events (EnqueueHints, ClaimHints).
	`
CREATE TABLE import_hints (
	bucket      TEXT    NOT NULL,
	obj_key     TEXT    NOT NULL,
	kind        TEXT    NOT NULL,
	source      TEXT    NOT NULL,
	sequencer   TEXT    NOT NULL,
	event_ns    INTEGER NOT NULL,
	size        INTEGER NOT NULL,
	etag        TEXT    NOT NULL,
	seq         INTEGER NOT NULL,
	first_seq   INTEGER NOT NULL,
	enqueued_ns INTEGER NOT NULL,
	updated_ns  INTEGER NOT NULL,
	ready_ns    INTEGER NOT NULL DEFAULT 0,
	owner       TEXT,
	attempts    INTEGER NOT NULL DEFAULT 0,
	last_error  TEXT    NOT NULL DEFAULT '',
	PRIMARY KEY (bucket, obj_key)
) WITHOUT ROWID;
CREATE INDEX import_hints_ready ON import_hints (ready_ns, first_seq);
CREATE INDEX import_hints_enqueued ON import_hints (enqueued_ns);
CREATE TABLE import_hint_stats (
	one      INTEGER PRIMARY KEY CHECK (one = 1),
	depth    INTEGER NOT NULL,
	last_seq INTEGER NOT NULL
);
INSERT INTO import_hint_stats VALUES (1, 0, 0);
CREATE TRIGGER import_hints_depth_ins AFTER INSERT ON import_hints BEGIN
	UPDATE import_hint_stats SET depth = depth + 1 WHERE one = 1;
END;
CREATE TRIGGER import_hints_depth_del AFTER DELETE ON import_hints BEGIN
	UPDATE import_hint_stats SET depth = depth - 1 WHERE one = 1;
END;
`,
	// 5: daemon sessions (Sessions: nodes, heartbeats, expiry).
	`
CREATE TABLE sessions (
	node_id      TEXT    PRIMARY KEY,
	host         TEXT    NOT NULL,
	mount_point  TEXT    NOT NULL,
	pid          INTEGER NOT NULL,
	version      TEXT    NOT NULL,
	started_ns   INTEGER NOT NULL,
	heartbeat_ns INTEGER NOT NULL,
	expires_ns   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_expires ON sessions (expires_ns);
CREATE INDEX import_hints_owner ON import_hints (owner) WHERE owner IS NOT NULL;
`,
}
