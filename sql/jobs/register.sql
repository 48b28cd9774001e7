-- Records a file as PENDING unless it is already known.
INSERT INTO processed_files (bucket, s3_key, status, size, metadata)
VALUES ($1, $2, 'PENDING', $3, jsonb_strip_nulls(jsonb_build_object('size', $3::bigint)))
ON CONFLICT (bucket, s3_key) DO NOTHING
