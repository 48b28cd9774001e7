-- `jobs list`: one page of jobs in (bucket, key) order, after the cursor ($6, $7) when given
-- (keyset paging: each page starts where the last one ended, without OFFSET). Filters, each
-- when given: bucket $1, status $2, key prefix $3, last update in [$4, $5). $8 rows at most
-- (the caller asks one more than it shows, to know whether another page follows).
SELECT bucket, s3_key, status, attempts, checkpoint, records_ingested, records_rejected,
       size, updated_at, metadata->>'error' AS error
FROM processed_files
WHERE ($1::text IS NULL OR bucket = $1)
  AND ($2::text IS NULL OR status = $2)
  AND ($3::text IS NULL OR starts_with(s3_key, $3))
  AND ($4::timestamptz IS NULL OR updated_at >= $4)
  AND ($5::timestamptz IS NULL OR updated_at < $5)
  AND ($6::text IS NULL OR (bucket, s3_key) > ($6::text, $7::text))
ORDER BY bucket, s3_key
LIMIT $8
