-- `jobs stats`: the most recent failure.
SELECT bucket, s3_key, updated_at, metadata->>'error'
FROM processed_files
WHERE status = 'FAILED' AND ($1::text IS NULL OR bucket = $1)
  AND ($2::text IS NULL OR starts_with(s3_key, $2))
ORDER BY updated_at DESC
LIMIT 1
