-- `jobs stats`: the oldest PENDING job.
SELECT bucket, s3_key, created_at
FROM processed_files
WHERE status = 'PENDING' AND ($1::text IS NULL OR bucket = $1)
  AND ($2::text IS NULL OR starts_with(s3_key, $2))
ORDER BY created_at, s3_key
LIMIT 1
