-- The built-in transform: pino-style HTTP logs onto the `logs` table (README, "Mapping").
--
-- `raw_logs` is lenient by design: every leaf field arrives as text (JSON numbers and
-- booleans as their JSON text), `req.query` / `req.headers` / `req.params` as their original
-- JSON text, plus `_source_bucket`, `_source_key`, `_source_index` and `_raw` (the record's
-- original text). Types are decided here, with NULL for values that do not fit.
--
-- Timestamps are microseconds (`TIMESTAMP(6)`, PostgreSQL's own precision), never
-- nanoseconds, whose range (1677-2262) is narrower than PostgreSQL's: `time` (epoch
-- milliseconds) becomes a millisecond timestamp, then microseconds with `try_cast`, which
-- makes a value beyond the range NULL instead of failing. The COPY encoder writes NULL for
-- what PostgreSQL cannot hold (before 4714 BC).
WITH typed AS (
    SELECT
        *,
        COALESCE(
            try_cast("timestamp" AS TIMESTAMP(6)),
            try_cast(try_cast(try_cast("time" AS BIGINT) AS TIMESTAMP(3)) AS TIMESTAMP(6))
        ) AS ts
    FROM raw_logs
)
SELECT
    ingestor_record_id(_source_bucket, _source_key, _source_index, ts) AS id,
    ts AS "timestamp",
    CASE level
        WHEN '10' THEN 'trace'
        WHEN '20' THEN 'debug'
        WHEN '30' THEN 'info'
        WHEN '40' THEN 'warn'
        WHEN '50' THEN 'error'
        WHEN '60' THEN 'fatal'
        ELSE level
    END AS level,
    req['method'] AS method,
    req['url'] AS url,
    req['query'] AS query,
    req['headers'] AS headers,
    req['params'] AS params,
    context,
    COALESCE(message, msg) AS message,
    hostname,
    try_cast("authUserId" AS BIGINT) AS auth_user_id,
    try_cast(pid AS INT) AS pid,
    req['remoteAddress'] AS remote_address,
    try_cast(req['remotePort'] AS INT) AS remote_port,
    try_cast("processingTimeMs" AS DOUBLE) AS processing_time_ms,
    try_cast("cacheHit" AS BOOLEAN) AS cache_hit,
    try_cast("documentCount" AS INT) AS document_count,
    try_cast("lastUpdated" AS TIMESTAMP(6)) AS last_updated,
    _raw AS raw_data,
    req['id'] AS request_id,
    _source_bucket AS source_bucket,
    _source_key AS source_key,
    _source_index AS source_index
FROM typed
