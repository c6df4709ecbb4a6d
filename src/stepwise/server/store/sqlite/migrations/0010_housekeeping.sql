-- Counters every node reads to notice what another node changed (the function registry).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);

-- History retention finds finished runs by when they ended.
CREATE INDEX runs_by_end ON runs(ended_at) WHERE ended_at IS NOT NULL;
