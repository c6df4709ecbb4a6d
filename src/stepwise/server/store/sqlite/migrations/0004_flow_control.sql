-- Flow control decided when a run is created: rate limits (GCRA state per key),
-- singletons (one active run per key), and runs that were skipped, with the reason.
ALTER TABLE runs ADD COLUMN skip_reason TEXT;
ALTER TABLE runs ADD COLUMN singleton_key TEXT;
CREATE INDEX runs_by_singleton ON runs(function_id, singleton_key) WHERE singleton_key IS NOT NULL;

-- GCRA: the theoretical arrival time of the next event allowed for a key.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat INTEGER NOT NULL
) WITHOUT ROWID;
