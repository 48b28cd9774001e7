-- Records the Parquet files of a source object (guarded by the lease token), in the
-- transaction that marks the file COMPLETED.
UPDATE processed_files
SET metadata = metadata || jsonb_build_object('parquet', $4::jsonb),
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
