-- Records one listing page of bucket $1 (or the objects notifications reported): keys not
-- seen before become PENDING; known keys whose version changed (another ETag, or another
-- size, or, when either side has no ETag, another last-modified) are updated:
-- - COMPLETED ones become PENDING and start over (their rows replaced), unless $6 is false
--   (`--on-change ignore`: left as they are);
-- - FAILED ones become PENDING with their attempts reset (a new version may well read);
-- - PENDING and PROCESSING ones keep their status: their next attempt sees the new
--   version and starts over instead of continuing at a checkpoint of the old one.
-- An object never seen before is always recorded, whatever its timestamps.
-- Returns the number of new keys and of COMPLETED objects to ingest again.
WITH listed AS (
    SELECT o.key, o.size, o.etag, o.last_modified
    FROM unnest($2::text[], $3::bigint[], $4::text[], $5::timestamptz[]) AS o (key, size, etag, last_modified)
),
changed AS (
    SELECT p.s3_key, p.status, o.size, o.etag, o.last_modified
    FROM processed_files p
    JOIN listed o ON p.bucket = $1 AND p.s3_key = o.key
    -- With ETags on both sides the ETag says the version: a notification's event time is
    -- not the object's last-modified, and the same content uploaded again is no new version.
    WHERE ((p.etag IS NOT NULL AND o.etag IS NOT NULL AND p.etag <> o.etag)
           OR (p.size IS NOT NULL AND p.size <> o.size)
           OR ((p.etag IS NULL OR o.etag IS NULL)
               AND p.last_modified IS NOT NULL AND p.last_modified <> o.last_modified))
      AND (p.status <> 'COMPLETED' OR $6)
    FOR UPDATE OF p
),
updated AS (
    UPDATE processed_files p
    SET etag = c.etag,
        size = c.size,
        last_modified = c.last_modified,
        status = CASE WHEN c.status IN ('COMPLETED', 'FAILED') THEN 'PENDING' ELSE p.status END,
        attempts = CASE WHEN c.status IN ('COMPLETED', 'FAILED') THEN 0 ELSE p.attempts END,
        next_attempt_at = CASE WHEN c.status IN ('COMPLETED', 'FAILED') THEN NULL ELSE p.next_attempt_at END,
        start_over = p.start_over OR c.status = 'COMPLETED',
        metadata = (p.metadata - 'permanent' - 'workersLost') || jsonb_build_object('size', c.size, 'replacedAt', now()),
        updated_at = now()
    FROM changed c
    WHERE p.bucket = $1 AND p.s3_key = c.s3_key
    RETURNING c.status = 'COMPLETED' AS replaced
),
inserted AS (
    INSERT INTO processed_files (bucket, s3_key, status, size, etag, last_modified, metadata)
    SELECT $1, o.key, 'PENDING', o.size, o.etag, o.last_modified, jsonb_build_object('size', o.size)
    FROM listed o
    WHERE o.key NOT IN (SELECT s3_key FROM changed)
    ON CONFLICT (bucket, s3_key) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted)::bigint AS new,
       (SELECT count(*) FROM updated WHERE replaced)::bigint AS replaced
