CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    guid TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS organizations (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS spaces (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    organization_guid TEXT NOT NULL REFERENCES organizations (guid),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (organization_guid, name)
);

CREATE TABLE IF NOT EXISTS domains (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    internal BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS apps (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    space_guid TEXT NOT NULL REFERENCES spaces (guid),
    state TEXT NOT NULL,
    version TEXT NOT NULL,
    buildpack TEXT,
    stack TEXT NOT NULL,
    env TEXT NOT NULL,
    current_droplet_guid TEXT,
    state_changed_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (space_guid, name)
);

CREATE TABLE IF NOT EXISTS processes (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    type TEXT NOT NULL,
    command TEXT,
    instances BIGINT NOT NULL,
    memory_in_mb BIGINT NOT NULL,
    disk_in_mb BIGINT NOT NULL,
    health_check_type TEXT NOT NULL,
    health_check_timeout BIGINT,
    health_check_endpoint TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (app_guid, type)
);

CREATE TABLE IF NOT EXISTS packages (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    type TEXT NOT NULL,
    state TEXT NOT NULL,
    sha256 TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS builds (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    package_guid TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    droplet_guid TEXT,
    uploaded_sha256 TEXT,
    created_by_guid TEXT NOT NULL,
    created_by_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS droplets (
    guid TEXT PRIMARY KEY,
    app_guid TEXT NOT NULL,
    package_guid TEXT NOT NULL,
    state TEXT NOT NULL,
    sha256 TEXT,
    process_types TEXT NOT NULL,
    buildpack TEXT,
    stack TEXT NOT NULL,
    error TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS routes (
    guid TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    domain_guid TEXT NOT NULL REFERENCES domains (guid),
    path TEXT NOT NULL,
    space_guid TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (host, domain_guid, path)
);

CREATE TABLE IF NOT EXISTS route_destinations (
    guid TEXT PRIMARY KEY,
    route_guid TEXT NOT NULL,
    app_guid TEXT NOT NULL,
    process_type TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (route_guid, app_guid, process_type)
);

CREATE TABLE IF NOT EXISTS audit_events (
    guid TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    actor_guid TEXT NOT NULL,
    actor_type TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    target_guid TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_name TEXT NOT NULL,
    data TEXT NOT NULL,
    space_guid TEXT,
    organization_guid TEXT,
    created_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS audit_events_target ON audit_events (target_guid);
CREATE INDEX IF NOT EXISTS processes_app ON processes (app_guid);
CREATE INDEX IF NOT EXISTS route_destinations_app ON route_destinations (app_guid);
