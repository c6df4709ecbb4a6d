-- Open steps: steps a run planned (a targeted call, a sleep, a wait, an invoke, a fetch)
-- that have no result yet. A step is planned at most once and never after its result is
-- stored; a parallel batch (``batch``) calls the SDK again when its last step settles, a
-- race (``race``) after each one.
CREATE TABLE open_steps (
    run_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    batch INTEGER NOT NULL DEFAULT 0,
    race INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, step_id)
) WITHOUT ROWID;

-- generation: dispatches of a job that ended without an answer (fences late checkpoints).
-- faults: times the server itself failed handling the job (bounded, then the run fails).
ALTER TABLE jobs ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN faults INTEGER NOT NULL DEFAULT 0;
