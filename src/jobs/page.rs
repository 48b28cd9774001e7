//! Walking `processed_files` by key, for the operator's commands on large queues: `jobs
//! list` a page at a time and `jobs retry` in batches.
//!
//! Both are keyset walks: jobs in (bucket, key) order, each page or batch starting after
//! the last (bucket, key) of the one before, so a bucket of millions of jobs is walked
//! without OFFSET (which reads and throws away every row before the page) and each job is
//! seen once, whatever the jobs added or changed behind the cursor meanwhile. The primary
//! key (bucket, s3_key) serves the walk, and `processed_files_status_key_idx` (status,
//! bucket, s3_key) serves it for one status. Keys compare in the column's collation, the
//! same for the cursor and the order, so no job falls between two pages.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::Prefix;

/// One row of `jobs list`.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct JobRow {
    pub bucket: String,
    pub s3_key: String,
    pub status: String,
    pub attempts: i32,
    pub checkpoint: i64,
    pub records_ingested: i64,
    pub records_rejected: i64,
    pub size: Option<i64>,
    pub updated_at: DateTime<Utc>,
    pub error: Option<String>,
}

/// Which jobs `jobs list` shows.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub bucket: Option<String>,
    pub status: Option<String>,
    pub prefix: Option<Prefix>,
    /// Last updated at or after.
    pub since: Option<DateTime<Utc>>,
    /// Last updated before.
    pub until: Option<DateTime<Utc>>,
}

/// One page of jobs.
#[derive(Debug, Clone)]
pub struct JobPage {
    pub rows: Vec<JobRow>,
    /// More jobs follow the last row.
    pub more: bool,
}

/// Up to `limit` jobs matching `filter`, in (bucket, key) order, after `after` (a bucket
/// and key) when given.
pub async fn list_page(
    pool: &PgPool,
    filter: &JobFilter,
    after: Option<(&str, &str)>,
    limit: i64,
) -> sqlx::Result<JobPage> {
    let limit = limit.max(1);
    // One more row than asked tells whether another page follows.
    let mut rows: Vec<JobRow> = sqlx::query_as(include_str!("../../sql/jobs/list.sql"))
        .bind(filter.bucket.as_deref())
        .bind(filter.status.as_deref())
        .bind(filter.prefix.as_ref().map(Prefix::as_str))
        .bind(filter.since)
        .bind(filter.until)
        .bind(after.map(|(bucket, _)| bucket))
        .bind(after.map(|(_, key)| key))
        .bind(limit.saturating_add(1))
        // Planned with its values: the optional filters fold away and the cursor becomes
        // an index range.
        .persistent(false)
        .fetch_all(pool)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    Ok(JobPage { rows, more })
}

/// Jobs each statement of `jobs retry --failed` puts back: one short transaction per
/// batch, so a million FAILED jobs never make one statement that locks them all.
pub const RETRY_BATCH: i64 = 5_000;

/// Every FAILED job of `bucket` and under `prefix` (all when None) back to PENDING, in
/// batches of [`RETRY_BATCH`] (see `sql/jobs/retry_failed.sql`). Returns how many.
pub async fn retry_failed(
    pool: &PgPool,
    bucket: Option<&str>,
    prefix: Option<&Prefix>,
) -> sqlx::Result<u64> {
    let mut after: Option<(String, String)> = None;
    let mut retried = 0u64;
    loop {
        let (seen, done, last_bucket, last_key): (i64, i64, Option<String>, Option<String>) =
            sqlx::query_as(include_str!("../../sql/jobs/retry_failed.sql"))
                .bind(bucket)
                .bind(after.as_ref().map(|(bucket, _)| bucket.as_str()))
                .bind(after.as_ref().map(|(_, key)| key.as_str()))
                .bind(RETRY_BATCH)
                .bind(prefix.map(Prefix::as_str))
                .persistent(false)
                .fetch_one(pool)
                .await?;
        retried += done.max(0) as u64;
        tracing::debug!(batch = seen, retried = done, "jobs retry: batch done");
        match (last_bucket, last_key) {
            (Some(bucket), Some(key)) if seen >= RETRY_BATCH => after = Some((bucket, key)),
            _ => return Ok(retried),
        }
    }
}

/// FAILED jobs back to PENDING: all of them (of `bucket` if given, in batches), or the
/// named keys. Returns how many.
pub async fn retry(
    pool: &PgPool,
    bucket: Option<&str>,
    keys: Option<&[String]>,
) -> sqlx::Result<u64> {
    match keys {
        None => retry_failed(pool, bucket, None).await,
        Some(keys) => super::queue::retry_keys(pool, bucket, keys).await,
    }
}
