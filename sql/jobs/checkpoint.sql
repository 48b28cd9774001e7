-- Advances a file's checkpoint with a chunk, in the chunk's transaction. Matches the lease
-- token: zero rows means another worker owns the file now, and the chunk must roll back.
-- Taking the row lock first also keeps a competing claim waiting until this commits.
UPDATE processed_files
SET checkpoint = $4,
    records_ingested = records_ingested + $5,
    records_rejected = records_rejected + $6,
    records_filtered = records_filtered + $7,
    lease_expires_at = now() + make_interval(secs => $8),
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
