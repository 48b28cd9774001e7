-- `jobs retry KEY...`: the named FAILED jobs back to PENDING with their attempts reset,
-- permanent or not.
UPDATE processed_files
SET status = 'PENDING', attempts = 0, next_attempt_at = NULL,
    metadata = metadata - 'permanent' - 'workersLost', updated_at = now()
WHERE status = 'FAILED' AND s3_key = ANY($2) AND ($1::text IS NULL OR bucket = $1)
