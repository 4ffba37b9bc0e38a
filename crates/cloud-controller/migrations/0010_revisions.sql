-- Revisions (CF's /v3/revisions; docs/architecture.md §5.10): what an app
-- ran with (droplet, environment, process commands), numbered per app.
CREATE TABLE IF NOT EXISTS revisions (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    version BIGINT NOT NULL,
    droplet_guid TEXT NOT NULL,
    environment_variables TEXT NOT NULL,
    commands TEXT NOT NULL,
    description TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_guid, version)
);

CREATE INDEX IF NOT EXISTS revisions_app ON revisions (app_guid);

-- Per-app features (`/v3/apps/:guid/features`); no row: the default
-- (revisions enabled).
CREATE TABLE IF NOT EXISTS app_features (
    app_guid TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    PRIMARY KEY (app_guid, name)
);
