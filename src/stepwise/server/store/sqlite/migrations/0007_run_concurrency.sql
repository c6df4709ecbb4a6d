-- Run-level concurrency ({"fn": [...]}): a run holds one slot per limit from its start
-- until it ends, sleeping and waiting included.
ALTER TABLE runs ADD COLUMN run_concurrency TEXT;

CREATE TABLE run_slots (
    run_id TEXT NOT NULL,
    ckey TEXT NOT NULL,
    PRIMARY KEY (run_id, ckey)
) WITHOUT ROWID;
CREATE INDEX run_slots_by_key ON run_slots(ckey);
