-- API keys for the REST API (`stepwise keys create | list | revoke`). Only a hash of each
-- key is kept: the key itself is shown once, when it is created.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at INTEGER
);

-- A request's Bearer token is hashed and looked up here.
CREATE UNIQUE INDEX api_keys_by_hash ON api_keys(key_hash);
