-- `jobs retry --failed`: every FAILED job (of bucket $1 if given) back to PENDING with its
-- attempts reset, permanent or not; checkpoints are kept, so records already committed are
-- not repeated.
UPDATE processed_files
SET status = 'PENDING', attempts = 0, next_attempt_at = NULL,
    metadata = metadata - 'permanent' - 'workersLost', updated_at = now()
WHERE status = 'FAILED' AND ($1::text IS NULL OR bucket = $1)
