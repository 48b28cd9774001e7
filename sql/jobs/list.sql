-- Jobs for `jobs list`, optionally of one bucket and one status.
SELECT bucket, s3_key, status, attempts, checkpoint, records_ingested, records_rejected,
       size, updated_at, metadata->>'error' AS error
FROM processed_files
WHERE ($1::text IS NULL OR bucket = $1)
  AND ($2::text IS NULL OR status = $2)
ORDER BY bucket, last_modified NULLS FIRST, s3_key
LIMIT $3
