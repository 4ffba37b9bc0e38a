-- Admin buildpacks (CF v3 /v3/buildpacks). `stack` is '' for "any stack";
-- positions are 1..n without gaps, kept so by the store.
CREATE TABLE IF NOT EXISTS buildpacks (
    guid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    stack TEXT NOT NULL DEFAULT '',
    position BIGINT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    locked BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    filename TEXT,
    sha256 TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (name, stack)
);
