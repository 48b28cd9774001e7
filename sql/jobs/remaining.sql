-- Jobs of bucket $1 under prefix $2 still to do: PENDING, or FAILED with attempts left ($3).
SELECT count(*)
FROM processed_files
WHERE bucket = $1
  AND starts_with(s3_key, $2)
  AND (status = 'PENDING' OR (status = 'FAILED' AND attempts < $3))
