-- Gives a claimed file back when the worker stops (SIGINT/SIGTERM): PENDING again, the
-- attempt not counted, checkpoint kept.
UPDATE processed_files
SET status = 'PENDING',
    lease_token = NULL,
    lease_expires_at = NULL,
    attempts = GREATEST(attempts - 1, 0),
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
