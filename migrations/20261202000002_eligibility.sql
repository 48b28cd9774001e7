-- Which jobs a worker may claim, defined once: every claim (`run`'s pages, `ingest-file`),
-- the look-up of the next retry and `run --dry-run` ask this function.
--   PENDING: always.
--   PROCESSING: only once its lease has expired at `at` (its worker died or stalled), and
--     with attempts left unless the claim is `explicit` (`ingest-file` names the file).
--   FAILED: with attempts left and its backoff elapsed at `at` (a permanent failure waits
--     until 'infinity': never), or whenever the claim is `explicit`.
--   COMPLETED: never here (`--force` and new versions reopen a job first).
CREATE FUNCTION ingestor_claimable(
    status text,
    attempts integer,
    lease_expires_at timestamptz,
    next_attempt_at timestamptz,
    max_attempts integer,
    at timestamptz,
    explicit boolean
) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE status
        WHEN 'PENDING' THEN true
        WHEN 'PROCESSING' THEN (lease_expires_at IS NULL OR lease_expires_at < at)
                               AND (explicit OR attempts < max_attempts)
        WHEN 'FAILED' THEN explicit
                           OR (attempts < max_attempts
                               AND (next_attempt_at IS NULL OR next_attempt_at <= at))
        ELSE false
    END
$$;
