-- `jobs retry --failed`, one batch: the next $4 FAILED jobs in (bucket, key) order after the
-- cursor ($2, $3) when given (of bucket $1 and under key prefix $5 if given) back to PENDING
-- with their attempts reset, permanent or not; checkpoints are kept, so records already
-- committed are not repeated. A job a worker changed meanwhile is left as it now is.
-- Returns the jobs the batch looked at, those it put back, and its last (bucket, key): the
-- next batch starts after it.
WITH batch AS (
    SELECT bucket, s3_key
    FROM processed_files
    WHERE status = 'FAILED'
      AND ($1::text IS NULL OR bucket = $1)
      AND ($5::text IS NULL OR starts_with(s3_key, $5))
      AND ($2::text IS NULL OR (bucket, s3_key) > ($2::text, $3::text))
    ORDER BY bucket, s3_key
    LIMIT $4
), retried AS (
    UPDATE processed_files AS job
    SET status = 'PENDING', attempts = 0, next_attempt_at = NULL,
        metadata = job.metadata - 'permanent' - 'workersLost', updated_at = now()
    FROM batch
    WHERE job.bucket = batch.bucket AND job.s3_key = batch.s3_key AND job.status = 'FAILED'
    RETURNING 1
), last AS (
    SELECT bucket, s3_key FROM batch ORDER BY bucket DESC, s3_key DESC LIMIT 1
)
SELECT (SELECT count(*) FROM batch), (SELECT count(*) FROM retried),
       (SELECT bucket FROM last), (SELECT s3_key FROM last)
