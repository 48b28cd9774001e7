-- `jobs stats`: jobs by status (of bucket $1 if given).
SELECT status, count(*)
FROM processed_files
WHERE ($1::text IS NULL OR bucket = $1)
GROUP BY status
ORDER BY status
