-- COMPLETED jobs of bucket $1 (keys starting with $2, or exactly the keys $3 when given)
-- written to other destinations than $4: how many, and up to $5 of their keys. Jobs
-- completed before destinations were recorded (NULL) are not counted.
WITH other AS (
    SELECT s3_key
    FROM processed_files
    WHERE bucket = $1
      AND starts_with(s3_key, $2)
      AND ($3::text[] IS NULL OR s3_key = ANY ($3::text[]))
      AND status = 'COMPLETED'
      AND destinations IS NOT NULL
      AND NOT destinations @> $4::text[]
)
SELECT (SELECT count(*) FROM other),
       ARRAY(SELECT s3_key FROM other ORDER BY s3_key LIMIT $5)
