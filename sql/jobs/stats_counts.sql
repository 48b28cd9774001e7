-- `jobs stats`: jobs by status (of bucket $1 and prefix $2 if given).
SELECT status, count(*)
FROM processed_files
WHERE ($1::text IS NULL OR bucket = $1)
  AND ($2::text IS NULL OR starts_with(s3_key, $2))
GROUP BY status
ORDER BY status
