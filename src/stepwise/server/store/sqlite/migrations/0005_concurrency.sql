-- Lease-time flow control. A run's concurrency limits ([[key, limit], ...]) and throttle
-- ([key, limit, period_ms, burst]) are fixed when it is created; a leased step holds one
-- slot per limit until its transition commits, its run ends, or its lease expires.
ALTER TABLE runs ADD COLUMN concurrency TEXT;
ALTER TABLE runs ADD COLUMN throttle TEXT;

CREATE TABLE concurrency_slots (
    job_id INTEGER NOT NULL,
    ckey TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, ckey)
) WITHOUT ROWID;
CREATE INDEX concurrency_slots_by_key ON concurrency_slots(ckey, expires_at);
