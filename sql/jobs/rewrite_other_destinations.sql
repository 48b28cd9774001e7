-- `run --force`: COMPLETED jobs of bucket $1 under prefix $2 written to other destinations
-- than $3 become PENDING, to start over (their rows replaced) for this run's destinations.
UPDATE processed_files
SET status = 'PENDING',
    attempts = 0,
    next_attempt_at = NULL,
    start_over = true,
    updated_at = now()
WHERE bucket = $1
  AND starts_with(s3_key, $2)
  AND status = 'COMPLETED'
  AND destinations IS NOT NULL
  AND NOT destinations @> $3::text[]
