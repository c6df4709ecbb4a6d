-- Durable endpoints (JS SDK 4.x `inngest.endpoint()`): runs an SDK started inside an
-- HTTP handler. One row per such run: the request the server makes to re-enter it
-- (`method`, `url`, `content_type`; the body is the run's event's `data.body`), its retry
-- budget, and the tokens that let the original client read its output (`token`) and its
-- stream (`stream_token`). `stream_seq` and `stream_bytes` count what its stream holds.
CREATE TABLE endpoint_runs (
    run_id TEXT PRIMARY KEY,
    method TEXT NOT NULL,
    url TEXT NOT NULL,
    content_type TEXT NOT NULL,
    retries INTEGER NOT NULL,
    token TEXT NOT NULL,
    stream_token TEXT NOT NULL,
    stream_seq INTEGER NOT NULL,
    stream_bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- What a durable endpoint's handler streamed (`/v1/realtime/publish/tee`), whole SSE
-- frames in the order received, kept so that a subscriber who comes late gets every byte.
CREATE TABLE endpoint_streams (
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    chunk BLOB NOT NULL,
    PRIMARY KEY (run_id, seq)
);
