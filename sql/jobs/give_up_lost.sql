-- Files of bucket $1 under prefix $2 whose worker was lost (lease expired while
-- PROCESSING) on their last allowed attempt ($3): FAILED for good (until `jobs retry`),
-- instead of being taken over by every worker in turn. A file that crashes or stalls each
-- worker that reads it (out of memory, a hang) ends here. Checkpoint and rows are kept.
UPDATE processed_files
SET status = 'FAILED',
    lease_token = NULL,
    lease_expires_at = NULL,
    next_attempt_at = NULL,
    metadata = metadata || jsonb_build_object(
        'workersLost', COALESCE((metadata->>'workersLost')::int, 0) + 1,
        'error', format('worker lost %s time%s: each worker that took the file died or stalled past its lease (last at record %s); given up after %s attempts',
                        COALESCE((metadata->>'workersLost')::int, 0) + 1,
                        CASE WHEN COALESCE((metadata->>'workersLost')::int, 0) = 0 THEN '' ELSE 's' END,
                        checkpoint, attempts),
        'attempts', attempts),
    updated_at = now()
WHERE bucket = $1
  AND starts_with(s3_key, $2)
  AND status = 'PROCESSING'
  AND attempts >= $3
  AND (lease_expires_at IS NULL OR lease_expires_at < now())
RETURNING s3_key, metadata->>'error'
