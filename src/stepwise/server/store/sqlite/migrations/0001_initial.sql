-- Stepwise schema, version 1 (SQLite).
CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    sdk TEXT NOT NULL,
    framework TEXT NOT NULL,
    checksum TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE functions (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES apps(id),
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    config BLOB NOT NULL,
    url TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE events (
    internal_id TEXT PRIMARY KEY,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    user BLOB NOT NULL,
    ts INTEGER NOT NULL,
    v TEXT,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_by_name ON events(name, internal_id);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    function_id TEXT NOT NULL,
    function_slug TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_ids BLOB NOT NULL,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    ended_at INTEGER,
    output BLOB,
    error BLOB,
    request_version INTEGER NOT NULL DEFAULT -1,
    force_step_plan INTEGER NOT NULL DEFAULT 0,
    cron TEXT
) WITHOUT ROWID;
CREATE INDEX runs_by_event ON runs(event_id);

-- Memoized step results, in completion order (seq).
CREATE TABLE steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    memo BLOB NOT NULL,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;

-- The durable queue. A leased job's run_at is its lease expiry, so a crashed worker's
-- job falls due again by itself; ``lease`` fences late commits from a lost lease.
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT UNIQUE,
    run_id TEXT,
    kind TEXT NOT NULL,
    step_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    run_at INTEGER NOT NULL,
    lease TEXT,
    payload BLOB
);
CREATE INDEX jobs_due ON jobs(run_at);
CREATE INDEX jobs_by_run ON jobs(run_id);

-- One run per function per idempotency key (event id) per 24 h.
CREATE TABLE idempotency (
    function_id TEXT NOT NULL,
    key TEXT NOT NULL,
    run_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (function_id, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_expiry ON idempotency(expires_at);
