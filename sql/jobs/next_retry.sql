-- When the next FAILED file of bucket $1 under prefix $2 with attempts left ($3) may be
-- tried again (NULL: none). Permanent failures ('infinity') are never due.
SELECT min(next_attempt_at)
FROM processed_files
WHERE bucket = $1 AND starts_with(s3_key, $2) AND status = 'FAILED'
  AND next_attempt_at < 'infinity'
  -- Claimable once its retry is due.
  AND ingestor_claimable(status, attempts, lease_expires_at, next_attempt_at, $3, next_attempt_at, false)
