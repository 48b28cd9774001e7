-- PROCESSING jobs, up to $1 of them (bucket, key).
SELECT bucket, s3_key FROM processed_files WHERE status = 'PROCESSING' ORDER BY bucket, s3_key LIMIT $1
