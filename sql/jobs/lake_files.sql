-- The Parquet files a source object's last completed run published (paths relative to the
-- lake's root), to remove the ones a new run no longer writes. Guarded by the lease token
-- and locks the job's row: no row means another worker owns the file now.
SELECT COALESCE(
    (SELECT array_agg(f->>'path')
     FROM jsonb_array_elements(
         CASE jsonb_typeof(metadata->'parquet'->'files')
             WHEN 'array' THEN metadata->'parquet'->'files'
             ELSE '[]'::jsonb
         END) AS f),
    ARRAY[]::text[])
FROM processed_files
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
FOR UPDATE
