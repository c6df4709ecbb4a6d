-- Pauses: a run waiting for an event (wait), a cancellation trigger (cancel), an invoked
-- child's result (invoke) or a signal (signal). The id orders pauses against events: an
-- event only matches pauses that existed when it was stored (its horizon).
CREATE TABLE pauses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL,
    step_id TEXT,
    kind TEXT NOT NULL,
    event_name TEXT,
    expression TEXT,
    index_path TEXT,
    index_value TEXT,
    signal TEXT UNIQUE,
    expires_at INTEGER,
    created_at INTEGER NOT NULL,
    data BLOB
);
CREATE INDEX pauses_by_event ON pauses(event_name, index_path, index_value);
CREATE INDEX pauses_by_run ON pauses(run_id);

-- Bulk cancellations (POST /v1/cancellations).
CREATE TABLE cancellations (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    function_slug TEXT NOT NULL,
    started_after INTEGER,
    started_before INTEGER NOT NULL,
    expression TEXT,
    created_at INTEGER NOT NULL
);

ALTER TABLE runs ADD COLUMN correlation_id TEXT;
CREATE INDEX runs_by_function ON runs(function_id, id);
