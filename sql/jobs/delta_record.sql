-- Records that run $5 of a source object is committed to the Delta table $4, at table
-- version $6 (guarded by the lease), in the transaction that marks the file COMPLETED;
-- locks the job's row.
UPDATE processed_files
SET metadata = jsonb_set(
        CASE jsonb_typeof(metadata->'delta') WHEN 'object' THEN metadata
             ELSE metadata || '{"delta": {}}'::jsonb END,
        ARRAY['delta', $4],
        jsonb_build_object('version', $5::bigint, 'state', 'committed', 'table_version', $6::bigint)),
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
