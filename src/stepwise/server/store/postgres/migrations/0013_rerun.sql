-- A run started by rerunning another (`POST /v1/runs/{id}/rerun`) names the run it reruns.
ALTER TABLE runs ADD COLUMN original_run_id TEXT COLLATE "C";
