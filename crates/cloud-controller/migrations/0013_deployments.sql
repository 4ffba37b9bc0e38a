-- Deployments (CF's /v3/deployments; docs/architecture.md §5.12): a
-- rolling or canary replacement of an app's web instances, with the
-- failure policy CF lacks. While a deployment is ACTIVE its row says how
-- many instances of the old and of the new version are desired.
CREATE TABLE IF NOT EXISTS deployments (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    -- ACTIVE | FINALIZED
    status_value TEXT NOT NULL,
    -- DEPLOYING | PAUSED | CANCELING | DEPLOYED | CANCELED | SUPERSEDED
    status_reason TEXT NOT NULL,
    -- Why the platform rolled it back (null otherwise).
    error TEXT,
    strategy TEXT NOT NULL,
    max_in_flight BIGINT NOT NULL,
    -- JSON array of canary instance weights (percent), [] when rolling.
    canary_steps TEXT NOT NULL,
    -- 0-based index of the canary step in progress.
    canary_step BIGINT NOT NULL,
    failure_budget BIGINT NOT NULL,
    progress_deadline_s BIGINT NOT NULL,
    droplet_guid TEXT NOT NULL,
    previous_droplet_guid TEXT,
    revision_guid TEXT,
    -- The web process's instance count to reach.
    target BIGINT NOT NULL,
    new_bus_id TEXT NOT NULL,
    new_version TEXT NOT NULL,
    new_instances BIGINT NOT NULL,
    old_bus_id TEXT NOT NULL,
    old_version TEXT NOT NULL,
    old_env TEXT NOT NULL,
    old_instances BIGINT NOT NULL,
    -- New instances healthy at the last pass; crashes counted so far.
    healthy BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    last_healthy_at TEXT,
    last_progress_at TEXT NOT NULL,
    last_status_change TEXT NOT NULL,
    -- When new_instances / old_instances last changed: each unit's
    -- `updated_at` in the desired document (the HM holds off a unit only
    -- after a change of its own count).
    new_changed_at TEXT NOT NULL,
    old_changed_at TEXT NOT NULL,
    -- Bumped by every write: writers update only the generation they read.
    generation BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS deployments_app ON deployments (app_guid);
CREATE INDEX IF NOT EXISTS deployments_status ON deployments (status_value);

-- The bus id of the web process's instances once a deployment changed it
-- (null: the app's guid for web, the process guid otherwise).
ALTER TABLE processes ADD COLUMN bus_guid TEXT;

-- Work that one controller at a time does (the deployment updater): the
-- holder keeps the lease by renewing it before `expires_at` (Unix
-- seconds); `generation` grows with every change of holder.
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    generation BIGINT NOT NULL
);
