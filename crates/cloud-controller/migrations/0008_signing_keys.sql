-- The token signing key ring (docs/architecture.md §17 "Signing keys"):
-- tokens name their key in the `kid` header. The active key is the newest
-- one not retired; a retired key still verifies until every token it
-- signed has expired (`retired_at` + the longest token lifetime), then it
-- is deleted. `legacy` is the key of the tokens issued before key ids (it
-- was the `jwt_signing_key` setting): a token without `kid` is checked
-- with it. Times are Unix seconds.
CREATE TABLE IF NOT EXISTS signing_keys (
    kid TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
