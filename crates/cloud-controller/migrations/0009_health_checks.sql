-- Health checks as CF defines them (docs/architecture.md §5.3): the
-- liveness check's per-probe invocation timeout and interval, and the
-- readiness check (`process` = none).
ALTER TABLE processes ADD COLUMN health_check_invocation_timeout BIGINT;
ALTER TABLE processes ADD COLUMN health_check_interval BIGINT;
ALTER TABLE processes ADD COLUMN readiness_type TEXT NOT NULL DEFAULT 'process';
ALTER TABLE processes ADD COLUMN readiness_endpoint TEXT;
ALTER TABLE processes ADD COLUMN readiness_invocation_timeout BIGINT;
ALTER TABLE processes ADD COLUMN readiness_interval BIGINT;
