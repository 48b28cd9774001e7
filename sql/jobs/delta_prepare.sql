-- Picks the Delta application-transaction version of this run of a source object for the
-- table $4 and records it as pending (guarded by the lease), before anything of the run
-- is committed to the table. A run after a committed one takes the next version (it
-- replaces the object's rows); a run after a pending one keeps its version, so that a
-- commit the earlier attempt made before it died is found in the table (`txn` action)
-- and not made twice. A pending run older than a day takes the next version too, and so
-- replaces whatever rows of the object the table holds: the table forgets idempotency keys
-- after two days (delta.setTransactionRetentionDuration), so an old one cannot be trusted.
-- Returns the version, or no row if the lease is lost.
WITH job AS (
    SELECT metadata->'delta'->$4 AS run
    FROM processed_files
    WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
),
chosen AS (
    SELECT CASE
        WHEN run IS NULL OR jsonb_typeof(run->'version') <> 'number' THEN 1
        WHEN run->>'state' = 'committed' THEN (run->>'version')::bigint + 1
        WHEN run->>'at' IS NULL OR (run->>'at')::timestamptz < now() - interval '1 day'
            THEN (run->>'version')::bigint + 1
        ELSE (run->>'version')::bigint
    END AS version
    FROM job
)
UPDATE processed_files
SET metadata = jsonb_set(
        CASE jsonb_typeof(metadata->'delta') WHEN 'object' THEN metadata
             ELSE metadata || '{"delta": {}}'::jsonb END,
        ARRAY['delta', $4],
        jsonb_build_object('version', chosen.version, 'state', 'pending', 'at', now())),
    updated_at = now()
FROM chosen
WHERE bucket = $1 AND s3_key = $2 AND lease_token = $3 AND status = 'PROCESSING'
RETURNING chosen.version
