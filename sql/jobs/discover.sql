-- Records listed objects not seen before as PENDING, one page at a time. Known keys are
-- left alone whatever their timestamps: an object never seen before is always ingested.
INSERT INTO processed_files (bucket, s3_key, status, size, etag, last_modified, metadata)
SELECT $1, o.key, 'PENDING', o.size, o.etag, o.last_modified, jsonb_build_object('size', o.size)
FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[]) AS o (key, size, etag, last_modified)
ON CONFLICT (bucket, s3_key) DO NOTHING
