-- Marks a file FAILED with its cause and releases its lease (guarded by the lease token).
-- $4: the error, $5: seconds until it may be tried again, $6: permanent (the object's
-- bytes cannot be read, or it is gone): never due again ('infinity') until `jobs retry`
-- or a new version of the object sets next_attempt_at back.
UPDATE processed_files
SET status = 'FAILED',
    lease_token = NULL,
    lease_expires_at = NULL,
    next_attempt_at = CASE WHEN $6 THEN 'infinity'::timestamptz
                           ELSE now() + make_interval(secs => $5) END,
    metadata = metadata || jsonb_build_object('error', $4::text, 'lastAttempt', now(),
                                              'attempts', attempts, 'permanent', $6::boolean),
    updated_at = now()
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
