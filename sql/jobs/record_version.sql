-- The version ($4, with its ETag $5, size $6 and last-modified $7) that the current
-- attempt reads (guarded by the lease token). The caller has started the object over
-- first if records of another version were committed, so the checkpoint counts records of
-- this version from now on.
UPDATE processed_files
SET checkpoint_version = $4,
    etag = COALESCE($5, etag),
    size = $6,
    last_modified = COALESCE($7, last_modified),
    metadata = metadata || jsonb_build_object('size', $6),
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
