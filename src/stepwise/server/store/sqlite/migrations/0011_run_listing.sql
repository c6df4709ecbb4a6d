-- The run listing (GET /v1/runs) reads newest first by (created_at, id): all runs, one
-- function's or those in one status (a rare status, such as Failed, would otherwise scan
-- every run). These keep a page a short index range scan however many runs are stored.
CREATE INDEX runs_by_created ON runs(created_at, id);
CREATE INDEX runs_by_function_created ON runs(function_slug, created_at, id);
CREATE INDEX runs_by_status_created ON runs(status, created_at, id);
