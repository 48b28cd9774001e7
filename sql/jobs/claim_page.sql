-- Claims up to $3 files of bucket $1 under prefix $2 in one atomic statement, oldest first
-- (last-modified, then key); with $6, only files of known size up to $6 bytes (the small
-- files a group takes). Eligible: see `ingestor_claimable` (migrations), with $5
-- attempts at most. A file whose worker was lost on its last attempt is not taken over:
-- `give_up_lost.sql` fails it.
-- SKIP LOCKED lets any number of workers on any number of machines claim at once; each
-- claimed row gets a fresh lease token. A takeover counts in metadata.workersLost.
WITH picked AS (
    SELECT bucket, s3_key, status AS previous_status
    FROM processed_files
    WHERE bucket = $1
      AND starts_with(s3_key, $2)
      AND ingestor_claimable(status, attempts, lease_expires_at, next_attempt_at, $5, now(), false)
      AND ($6::bigint IS NULL OR size <= $6)
    ORDER BY last_modified NULLS FIRST, s3_key
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE processed_files p
SET status = 'PROCESSING',
    lease_token = gen_random_uuid(),
    lease_expires_at = now() + make_interval(secs => $4),
    attempts = p.attempts + 1,
    metadata = p.metadata || jsonb_build_object('lastAttempt', now())
        || CASE WHEN picked.previous_status = 'PROCESSING'
                THEN jsonb_build_object('workersLost', COALESCE((p.metadata->>'workersLost')::int, 0) + 1)
                ELSE '{}'::jsonb END,
    updated_at = now()
FROM picked
WHERE p.bucket = picked.bucket AND p.s3_key = picked.s3_key
RETURNING p.s3_key, p.lease_token, p.checkpoint, p.size, p.attempts, p.checkpoint_version, p.start_over,
          picked.previous_status = 'PROCESSING' AS takeover, p.last_modified
