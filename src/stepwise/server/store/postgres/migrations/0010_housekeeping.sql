-- Counters every node reads to notice what another node changed (the function registry).
CREATE TABLE counters (
    name TEXT COLLATE "C" PRIMARY KEY,
    value BIGINT NOT NULL
);

-- History retention finds finished runs by when they ended.
CREATE INDEX runs_by_end ON runs(ended_at) WHERE ended_at IS NOT NULL;
