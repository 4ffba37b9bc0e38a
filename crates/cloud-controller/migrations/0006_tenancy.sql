-- Tenancy (docs/architecture.md §17): UAA-side user fields, the controller's
-- own user records, roles, quotas and domain ownership.

-- UAA side: `groups` holds extra scopes (space-separated, e.g.
-- `cloud_controller.admin`); `token_generation` is bumped by a password
-- change, so tokens issued before it stop working.
ALTER TABLE users ADD COLUMN origin TEXT NOT NULL DEFAULT 'uaa';
ALTER TABLE users ADD COLUMN groups TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN given_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN family_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN token_generation BIGINT NOT NULL DEFAULT 0;

-- The controller's users (`POST /v3/users {guid}`).
CREATE TABLE IF NOT EXISTS cc_users (
    guid TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- Roles. Org roles have `space_guid = ''`; space roles keep their space's
-- org in `organization_guid`.
CREATE TABLE IF NOT EXISTS roles (
    guid TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    user_guid TEXT NOT NULL,
    organization_guid TEXT NOT NULL,
    space_guid TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (type, user_guid, organization_guid, space_guid)
);
CREATE INDEX IF NOT EXISTS roles_user ON roles (user_guid);
CREATE INDEX IF NOT EXISTS roles_space ON roles (space_guid);
CREATE INDEX IF NOT EXISTS roles_org ON roles (organization_guid);

-- Quotas: `kind` is `organization` or `space` (a space quota belongs to
-- `organization_guid`); NULL limits are unlimited.
CREATE TABLE IF NOT EXISTS quotas (
    guid TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    organization_guid TEXT NOT NULL DEFAULT '',
    total_memory_in_mb BIGINT,
    per_process_memory_in_mb BIGINT,
    total_instances BIGINT,
    total_routes BIGINT,
    total_apps BIGINT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (kind, organization_guid, name)
);
ALTER TABLE organizations ADD COLUMN quota_guid TEXT;
ALTER TABLE organizations ADD COLUMN suspended BIGINT NOT NULL DEFAULT 0;
ALTER TABLE spaces ADD COLUMN quota_guid TEXT;

-- Domains: a private domain belongs to `organization_guid` (NULL: shared)
-- and may be shared with other orgs.
ALTER TABLE domains ADD COLUMN organization_guid TEXT;
CREATE TABLE IF NOT EXISTS domain_shares (
    domain_guid TEXT NOT NULL,
    organization_guid TEXT NOT NULL,
    PRIMARY KEY (domain_guid, organization_guid)
);

CREATE INDEX IF NOT EXISTS apps_space ON apps (space_guid);
CREATE INDEX IF NOT EXISTS spaces_org ON spaces (organization_guid);
