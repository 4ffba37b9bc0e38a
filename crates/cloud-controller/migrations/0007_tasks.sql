-- One-off tasks (CF's /v3/tasks; docs/architecture.md §5.9). `sequence_id`
-- counts per app from 1; `dea_id` is where the task was placed.
CREATE TABLE IF NOT EXISTS tasks (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    name TEXT NOT NULL,
    command TEXT NOT NULL,
    state TEXT NOT NULL,
    memory_in_mb BIGINT NOT NULL,
    disk_in_mb BIGINT NOT NULL,
    sequence_id BIGINT NOT NULL,
    failure_reason TEXT,
    droplet_guid TEXT NOT NULL,
    dea_id TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_guid, sequence_id)
);

CREATE INDEX IF NOT EXISTS tasks_app ON tasks (app_guid);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks (state);
