-- Services (CF's v3 service resources over the Open Service Broker API;
-- docs/architecture.md §5.11). Brokers' catalogs are synced into offerings
-- and plans; instances are managed (a broker's) or user-provided;
-- credential bindings are of type `app` or `key`. JSON columns are text.
CREATE TABLE IF NOT EXISTS service_brokers (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    username TEXT NOT NULL,
    password TEXT NOT NULL,
    space_guid TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS service_offerings (
    guid TEXT PRIMARY KEY,
    broker_guid TEXT NOT NULL,
    broker_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    tags TEXT NOT NULL,
    requires TEXT NOT NULL,
    bindable BIGINT NOT NULL,
    plan_updateable BIGINT NOT NULL,
    instances_retrievable BIGINT NOT NULL,
    bindings_retrievable BIGINT NOT NULL,
    metadata TEXT NOT NULL,
    available BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (broker_guid, broker_id)
);

-- `visibility`: admin (new plans), public, or organization (the orgs in
-- service_plan_visibilities).
CREATE TABLE IF NOT EXISTS service_plans (
    guid TEXT PRIMARY KEY,
    offering_guid TEXT NOT NULL,
    broker_id TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    free BIGINT NOT NULL,
    bindable BIGINT NOT NULL,
    plan_updateable BIGINT NOT NULL,
    metadata TEXT NOT NULL,
    maximum_polling_duration BIGINT,
    visibility TEXT NOT NULL,
    available BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (offering_guid, broker_id)
);

CREATE TABLE IF NOT EXISTS service_plan_visibilities (
    plan_guid TEXT NOT NULL,
    organization_guid TEXT NOT NULL,
    PRIMARY KEY (plan_guid, organization_guid)
);

-- `kind`: managed or user-provided. The last operation is CF's
-- (type create|update|delete, state initial|in progress|succeeded|failed);
-- `broker_operation` is the broker's opaque `operation` while polling.
CREATE TABLE IF NOT EXISTS service_instances (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    space_guid TEXT NOT NULL,
    plan_guid TEXT,
    tags TEXT NOT NULL,
    parameters TEXT NOT NULL,
    credentials TEXT NOT NULL,
    syslog_drain_url TEXT,
    route_service_url TEXT,
    dashboard_url TEXT,
    op_type TEXT NOT NULL,
    op_state TEXT NOT NULL,
    op_description TEXT NOT NULL,
    op_created_at TEXT NOT NULL,
    op_updated_at TEXT NOT NULL,
    broker_operation TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (space_guid, name)
);

CREATE INDEX IF NOT EXISTS service_instances_plan ON service_instances (plan_guid);

-- `kind`: app or key; `app_guid` is set for app bindings.
CREATE TABLE IF NOT EXISTS service_bindings (
    guid TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT,
    instance_guid TEXT NOT NULL,
    app_guid TEXT,
    credentials TEXT NOT NULL,
    syslog_drain_url TEXT,
    volume_mounts TEXT NOT NULL,
    parameters TEXT NOT NULL,
    op_type TEXT NOT NULL,
    op_state TEXT NOT NULL,
    op_description TEXT NOT NULL,
    op_created_at TEXT NOT NULL,
    op_updated_at TEXT NOT NULL,
    broker_operation TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS service_bindings_instance ON service_bindings (instance_guid);
CREATE INDEX IF NOT EXISTS service_bindings_app ON service_bindings (app_guid);

-- Asynchronous jobs (`/v3/jobs/:guid`) that talk to brokers: PROCESSING,
-- POLLING, COMPLETE or FAILED; `errors` and `warnings` are JSON arrays.
-- A controller that restarts resumes the unfinished ones.
CREATE TABLE IF NOT EXISTS jobs (
    guid TEXT PRIMARY KEY,
    operation TEXT NOT NULL,
    state TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_guid TEXT NOT NULL,
    errors TEXT NOT NULL,
    warnings TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
