-- A job refused at lease time by a concurrency limit or a throttle waits for that key
-- (`flow/waiters.py`): `wait_key` is the key it waits for, `wait_rank` its place in line,
-- `wait_since` when it was first refused. A woken job keeps its rank and no key; a leased
-- one keeps neither. A run's steps take their place from the run's `queue_rank`: when it
-- was created, moved earlier by its priority (NULL for runs created before: `created_at`).
ALTER TABLE runs ADD COLUMN queue_rank INTEGER;
ALTER TABLE jobs ADD COLUMN wait_key TEXT;
ALTER TABLE jobs ADD COLUMN wait_rank INTEGER;
ALTER TABLE jobs ADD COLUMN wait_since INTEGER;
-- The best-ranked waiters of a key, first.
CREATE INDEX jobs_waiting ON jobs(wait_key, wait_rank, id) WHERE wait_key IS NOT NULL;
