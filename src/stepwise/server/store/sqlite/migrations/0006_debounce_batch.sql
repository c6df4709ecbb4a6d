-- Debounce: the latest event per key, started as one run when the key goes quiet.
CREATE TABLE debounces (
    key TEXT PRIMARY KEY,
    function_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_ts INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    due_at INTEGER NOT NULL,
    job_key TEXT NOT NULL
) WITHOUT ROWID;

-- Batches: events collected per key, started as one run when full or timed out.
CREATE TABLE batches (
    key TEXT PRIMARY KEY,
    batch_id TEXT NOT NULL,
    function_id TEXT NOT NULL,
    function_slug TEXT NOT NULL,
    event_ids TEXT NOT NULL,
    first_at INTEGER NOT NULL
) WITHOUT ROWID;
