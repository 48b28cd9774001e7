-- Marks a file FAILED with its cause and releases its lease (guarded by the lease token).
-- $4: the error, $5: seconds until it may be tried again.
UPDATE processed_files
SET status = 'FAILED',
    lease_token = NULL,
    lease_expires_at = NULL,
    next_attempt_at = now() + make_interval(secs => $5),
    metadata = metadata || jsonb_build_object('error', $4::text, 'lastAttempt', now(), 'attempts', attempts),
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
