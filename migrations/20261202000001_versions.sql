-- Versions and destinations of jobs.
-- checkpoint_version: the version of the object (ETag, or size and modification time)
--   whose records the checkpoint counts; an attempt that reads another version starts
--   the object over instead of continuing at the checkpoint.
-- start_over: discovery found a new version of a COMPLETED object (or a run was asked to
--   write it again): its next attempt replaces its rows.
-- destinations: the sinks and table a COMPLETED job was written to.
ALTER TABLE processed_files
    ADD COLUMN IF NOT EXISTS checkpoint_version text,
    ADD COLUMN IF NOT EXISTS start_over boolean NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS destinations text[];
