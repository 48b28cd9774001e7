-- Status and attempts of the known keys among $2 (for `run --dry-run`).
SELECT s3_key, status, attempts
FROM processed_files
WHERE bucket = $1 AND s3_key = ANY($2)
