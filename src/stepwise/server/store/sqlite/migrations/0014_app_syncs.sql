-- Every app URL the server syncs, with its last sync attempt: when, whether it worked and
-- why not. `added_at` is set for a URL added through `POST /v1/apps`: the server keeps
-- syncing it (every node reads this table), as it does the URLs given with `-u`.
CREATE TABLE app_syncs (
    url TEXT PRIMARY KEY,
    app_name TEXT,
    added_at INTEGER,
    attempted_at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT
);
