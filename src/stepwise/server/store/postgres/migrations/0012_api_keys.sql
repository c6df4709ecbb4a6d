-- API keys for the REST API (`stepwise keys create | list | revoke`). Only a hash of each
-- key is kept: the key itself is shown once, when it is created.
CREATE TABLE api_keys (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

-- A request's Bearer token is hashed and looked up here.
CREATE UNIQUE INDEX api_keys_by_hash ON api_keys(key_hash);
