-- Optimistic locking of apps and processes (ActiveRecord's
-- `lock_version`, as CF's own controller uses): every write of a row adds
-- one, and a read-modify-write only succeeds when the row still has the
-- version it read, so two controllers changing one app at once lose no
-- update (docs/architecture.md §5.2).
ALTER TABLE apps ADD COLUMN lock_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE processes ADD COLUMN lock_version BIGINT NOT NULL DEFAULT 0;
