-- Claims one known file for this worker: a fresh lease token (made here, as for every claim), the lease's expiry, one more
-- attempt. Eligible: an explicit claim in `ingestor_claimable` (migrations): PENDING,
-- FAILED, PROCESSING whose lease expired (its worker died or stalled); and COMPLETED when
-- $4 (force). With force the checkpoint starts over.
-- Returns the checkpoint to resume from.
UPDATE processed_files
SET status = 'PROCESSING',
    lease_token = gen_random_uuid(),
    lease_expires_at = now() + make_interval(secs => $3),
    attempts = attempts + 1,
    checkpoint = CASE WHEN $4 THEN 0 ELSE checkpoint END,
    records_ingested = CASE WHEN $4 THEN 0 ELSE records_ingested END,
    records_rejected = CASE WHEN $4 THEN 0 ELSE records_rejected END,
    records_filtered = CASE WHEN $4 THEN 0 ELSE records_filtered END,
    size = COALESCE($5, size),
    metadata = metadata || jsonb_strip_nulls(jsonb_build_object('lastAttempt', now(), 'size', COALESCE($5, size))),
    updated_at = now()
WHERE bucket = $1
  AND s3_key = $2
  AND (ingestor_claimable(status, attempts, lease_expires_at, next_attempt_at, NULL, now(), true)
       OR (status = 'COMPLETED' AND $4))
RETURNING lease_token, checkpoint, attempts, checkpoint_version, start_over
