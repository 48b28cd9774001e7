-- Status and attempts of the known keys among $2 (for `run --dry-run`), and whether `run`
-- would claim each now with $3 attempts at most (`ingestor_claimable`). A permanent
-- failure shows as its own status.
SELECT s3_key,
       CASE WHEN status = 'FAILED' AND next_attempt_at = 'infinity' THEN 'FAILED (permanent)'
            ELSE status END,
       attempts,
       ingestor_claimable(status, attempts, lease_expires_at, next_attempt_at, $3, now(), false)
FROM processed_files
WHERE bucket = $1 AND s3_key = ANY($2)
