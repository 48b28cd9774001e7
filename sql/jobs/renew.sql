-- Heartbeat: extends the lease while the file is processed. Zero rows: the lease is lost.
UPDATE processed_files
SET lease_expires_at = now() + make_interval(secs => $4)
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
