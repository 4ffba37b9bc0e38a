-- Refresh tokens on record (docs/architecture.md §6.1): reusable until they
-- expire (`expires_at`, Unix seconds) or are revoked (`cf logout`, UAA's
-- DELETE /oauth/token/revoke/:jti); a refresh token not on record is refused.
CREATE TABLE IF NOT EXISTS refresh_tokens (
    jti TEXT PRIMARY KEY,
    user_guid TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_tokens_user ON refresh_tokens (user_guid);
