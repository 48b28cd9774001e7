-- Completes a group of files ingested in one transaction ($1: bucket, $2: destinations),
-- in that transaction: each file's version, checkpoint, counts and COMPLETED at once,
-- guarded by its lease token. Returns the keys whose lease held: fewer than were given
-- means a lease was lost, and the whole group must roll back.
UPDATE processed_files p
SET status = 'COMPLETED',
    checkpoint = g.checkpoint,
    checkpoint_version = COALESCE(g.version, p.checkpoint_version),
    etag = COALESCE(g.etag, p.etag),
    size = COALESCE(g.size, p.size),
    last_modified = COALESCE(g.last_modified, p.last_modified),
    records_ingested = p.records_ingested + g.ingested,
    records_rejected = p.records_rejected + g.rejected,
    records_filtered = p.records_filtered + g.filtered,
    processed_at = now(),
    lease_token = NULL,
    lease_expires_at = NULL,
    next_attempt_at = NULL,
    destinations = ARRAY(SELECT DISTINCT d FROM unnest(COALESCE(p.destinations, '{}') || $2::text[]) AS d ORDER BY d),
    metadata = (p.metadata - 'error') || jsonb_strip_nulls(jsonb_build_object('size', g.size)) || jsonb_build_object(
        'records', p.records_ingested + g.ingested, 'rejected', p.records_rejected + g.rejected,
        'filtered', p.records_filtered + g.filtered, 'attempts', p.attempts),
    updated_at = now()
FROM unnest($3::text[], $4::uuid[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[],
            $9::text[], $10::text[], $11::bigint[], $12::timestamptz[])
     AS g(key, token, checkpoint, ingested, rejected, filtered, version, etag, size, last_modified)
WHERE p.bucket = $1 AND p.s3_key = g.key AND p.lease_token = g.token AND p.status = 'PROCESSING'
RETURNING p.s3_key
