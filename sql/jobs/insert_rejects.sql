-- The rejected records of one chunk, in the chunk's transaction.
INSERT INTO rejected_records (bucket, s3_key, source_index, raw, error)
SELECT $1, $2, r.source_index, r.raw, r.error
FROM unnest($3::bigint[], $4::text[], $5::text[]) AS r (source_index, raw, error)
