-- CF's per-process `log_rate_limit_in_bytes_per_second` (-1 = unlimited;
-- the DEA's platform-wide cap still applies; docs/architecture.md §5.3).
ALTER TABLE processes ADD COLUMN log_rate_limit BIGINT NOT NULL DEFAULT -1;
