-- Starts a claimed file over from its first record (guarded by the lease token): used when
-- a Parquet sink is on, because a source object's Parquet output is written in one piece.
-- The caller deletes the rows and rejects of the earlier attempt in the same transaction.
UPDATE processed_files
SET checkpoint = 0,
    records_ingested = 0,
    records_rejected = 0,
    records_filtered = 0,
    start_over = false,
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
