-- Status and attempts of the known keys among $2 (for `run --dry-run`). A permanent
-- failure is not a retry: it shows as its own status.
SELECT s3_key,
       CASE WHEN status = 'FAILED' AND next_attempt_at = 'infinity' THEN 'FAILED (permanent)'
            ELSE status END,
       attempts
FROM processed_files
WHERE bucket = $1 AND s3_key = ANY($2)
