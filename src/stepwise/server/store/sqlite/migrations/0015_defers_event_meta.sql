-- Defers (JS SDK 4.x `defer`): runs a run asks for, started when it ends. One row per
-- defer id (its hashed id) of a run. `status` is `after_run` (starts when the run ends),
-- `aborted` or `rejected` (never starts: the reason is in the run's history). `seq` keeps
-- the order they were added in; `input` is the deferred event's data (JSON), `meta` the
-- op's event meta (its session layers), resolved when the deferred event is made.
CREATE TABLE defers (
    run_id TEXT NOT NULL,
    hashed_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    user_id TEXT,
    fn_slug TEXT NOT NULL,
    input BLOB,
    meta BLOB,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (run_id, hashed_id)
);

-- An event's `meta` as its sender gave it, with its session layers resolved (`sessions`).
ALTER TABLE events ADD COLUMN meta BLOB;
