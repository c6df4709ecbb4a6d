-- Every received copy of an event is kept, as the reference keeps them. A send retried
-- with the same x-inngest-event-id-seed header derives the same internal id again, so the
-- internal id alone no longer names a row: ``copy`` numbers the copies of one internal id
-- from 0, in the order they arrived. Only copy 0 starts runs and matches pauses.
-- SQLite cannot change a primary key in place, so the table is rebuilt.
CREATE TABLE events_with_copies (
    internal_id TEXT NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    user BLOB NOT NULL,
    ts INTEGER NOT NULL,
    v TEXT,
    received_at INTEGER NOT NULL,
    copy INTEGER NOT NULL,
    PRIMARY KEY (internal_id, copy)
) WITHOUT ROWID;

INSERT INTO events_with_copies (internal_id, id, name, data, user, ts, v, received_at, copy)
    SELECT internal_id, id, name, data, user, ts, v, received_at, 0 FROM events;

DROP TABLE events;

ALTER TABLE events_with_copies RENAME TO events;

CREATE INDEX events_by_name ON events(name, internal_id, copy);
