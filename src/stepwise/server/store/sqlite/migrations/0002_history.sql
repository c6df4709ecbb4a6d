-- What happened in each run, in order, for the REST API and the dashboard.
-- Written in the same transaction as the state change it describes.
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    step_id TEXT,
    name TEXT,
    attempt INTEGER,
    data BLOB
);
CREATE INDEX history_by_run ON history(run_id, id);
