-- Staging as long-running work (docs/architecture.md "Staging"): the DEA a
-- build was handed to, when it must be over (RFC 3339), and the CF error id
-- of a failed build (its `error` is the description).
ALTER TABLE builds ADD COLUMN dea_id TEXT;
ALTER TABLE builds ADD COLUMN staging_deadline TEXT;
ALTER TABLE builds ADD COLUMN error_id TEXT;

-- What a droplet was built with: the buildpacks (JSON array of
-- {name, detect_output}) and the final buildpack's `config_vars` (JSON
-- object), the app's default environment.
ALTER TABLE droplets ADD COLUMN buildpacks TEXT;
ALTER TABLE droplets ADD COLUMN config_vars TEXT;

-- Application security groups (CF /v3/security_groups): egress allow rules
-- (JSON array of {protocol, destination, ports, ...}), on for every space
-- when globally enabled, else for the spaces bound to them.
CREATE TABLE IF NOT EXISTS security_groups (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    rules TEXT NOT NULL,
    running_default BIGINT NOT NULL DEFAULT 0,
    staging_default BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS security_group_spaces (
    security_group_guid TEXT NOT NULL,
    space_guid TEXT NOT NULL,
    -- `running` or `staging`
    lifecycle TEXT NOT NULL,
    PRIMARY KEY (security_group_guid, space_guid, lifecycle)
);

CREATE INDEX IF NOT EXISTS builds_state ON builds (state);
