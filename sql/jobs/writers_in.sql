-- PROCESSING jobs with rows in a table ({table}: a quoted table holding source_bucket and
-- source_key, such as one day's partition): files still being written into it. $1: the
-- most to return.
SELECT p.bucket, p.s3_key
FROM processed_files p
WHERE p.status = 'PROCESSING'
  AND EXISTS (SELECT 1 FROM {table} l
              WHERE l.source_bucket = p.bucket AND l.source_key = p.s3_key)
ORDER BY p.bucket, p.s3_key
LIMIT $1
