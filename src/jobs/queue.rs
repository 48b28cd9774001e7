//! The shared queue of `run`: discovery inserts, page claims, `jobs retry KEY...`, `jobs
//! stats`.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::Prefix;
pub use crate::source::listing::Listed;

/// What discovery recorded of one page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Discovered {
    /// Keys not seen before.
    pub new: u64,
    /// COMPLETED objects with a new version, to ingest again.
    pub replaced: u64,
}

/// Records one listing page (see `sql/jobs/discover.sql`): new keys, and new versions of
/// known ones. `replace_completed`: COMPLETED objects with a new version are ingested again
/// (`--on-change reingest`, the default).
pub async fn discover(
    pool: &PgPool,
    bucket: &str,
    page: &[Listed],
    replace_completed: bool,
) -> sqlx::Result<Discovered> {
    let keys: Vec<&str> = page.iter().map(|o| o.key.as_str()).collect();
    let sizes: Vec<i64> = page.iter().map(|o| o.size as i64).collect();
    let etags: Vec<Option<&str>> = page.iter().map(|o| o.etag.as_deref()).collect();
    let modified: Vec<DateTime<Utc>> = page.iter().map(|o| o.last_modified).collect();
    let (new, replaced): (i64, i64) = sqlx::query_as(include_str!("../../sql/jobs/discover.sql"))
        .bind(bucket)
        .bind(keys)
        .bind(sizes)
        .bind(etags)
        .bind(modified)
        .bind(replace_completed)
        .fetch_one(pool)
        .await?;
    Ok(Discovered {
        new: new as u64,
        replaced: replaced as u64,
    })
}

/// A file claimed from the queue.
#[derive(Debug, Clone)]
pub struct ClaimedFile {
    pub key: String,
    pub token: Uuid,
    pub checkpoint: u64,
    pub size: Option<u64>,
    pub attempts: i32,
    /// The file was PROCESSING under an expired lease: a stuck job taken over.
    pub takeover: bool,
    pub last_modified: Option<DateTime<Utc>>,
    /// The version whose records the checkpoint counts.
    pub version: Option<String>,
    /// A new version was found: start over whatever the checkpoint.
    pub start_over: bool,
}

/// What a claim may take.
#[derive(Debug, Clone, Copy)]
pub struct ClaimRules {
    pub lease_secs: f64,
    pub max_attempts: i32,
}

/// Claims up to `limit` eligible files of `bucket` under `prefix` (see
/// `sql/jobs/claim_page.sql`).
pub async fn claim_page(
    pool: &PgPool,
    bucket: &str,
    prefix: &Prefix,
    limit: usize,
    rules: ClaimRules,
) -> sqlx::Result<Vec<ClaimedFile>> {
    claim(pool, bucket, prefix, limit, rules, None).await
}

/// [`claim_page`] of files whose listed size is at most `max_size` bytes only: the small
/// files that are ingested in groups.
pub async fn claim_small_page(
    pool: &PgPool,
    bucket: &str,
    prefix: &Prefix,
    limit: usize,
    rules: ClaimRules,
    max_size: u64,
) -> sqlx::Result<Vec<ClaimedFile>> {
    claim(pool, bucket, prefix, limit, rules, Some(max_size)).await
}

async fn claim(
    pool: &PgPool,
    bucket: &str,
    prefix: &Prefix,
    limit: usize,
    rules: ClaimRules,
    max_size: Option<u64>,
) -> sqlx::Result<Vec<ClaimedFile>> {
    type Row = (
        String,
        Uuid,
        i64,
        Option<i64>,
        i32,
        Option<String>,
        bool,
        bool,
        Option<DateTime<Utc>>,
    );
    let rows: Vec<Row> = sqlx::query_as(include_str!("../../sql/jobs/claim_page.sql"))
        .bind(bucket)
        .bind(prefix.as_str())
        .bind(limit as i64)
        .bind(rules.lease_secs)
        .bind(rules.max_attempts)
        .bind(max_size.map(|size| size.min(i64::MAX as u64) as i64))
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(
                key,
                token,
                checkpoint,
                size,
                attempts,
                version,
                start_over,
                takeover,
                last_modified,
            )| {
                ClaimedFile {
                    key,
                    token,
                    checkpoint: checkpoint.max(0) as u64,
                    size: size.map(|s| s.max(0) as u64),
                    attempts,
                    takeover,
                    last_modified,
                    version,
                    start_over,
                }
            },
        )
        .collect())
}

/// The named FAILED jobs of `bucket` back to PENDING (`jobs retry KEY...`); returns how
/// many. Every FAILED job: [`super::retry_failed`].
pub async fn retry_keys(pool: &PgPool, bucket: Option<&str>, keys: &[String]) -> sqlx::Result<u64> {
    let done = sqlx::query(include_str!("../../sql/jobs/retry_keys.sql"))
        .bind(bucket)
        .bind(keys)
        .execute(pool)
        .await?;
    Ok(done.rows_affected())
}

/// Files of `bucket` under `prefix` whose worker was lost (their lease expired while
/// PROCESSING) on their last allowed attempt: marked FAILED ("worker lost N times") instead
/// of being taken over again, so a file that crashes every worker that reads it stops.
/// Returns their keys and errors.
pub async fn give_up_lost(
    pool: &PgPool,
    bucket: &str,
    prefix: &Prefix,
    max_attempts: i32,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(include_str!("../../sql/jobs/give_up_lost.sql"))
        .bind(bucket)
        .bind(prefix.as_str())
        .bind(max_attempts)
        .fetch_all(pool)
        .await
}

/// When the next retryable FAILED file may be tried again (permanent failures are never
/// due).
pub async fn next_retry(
    pool: &PgPool,
    bucket: &str,
    prefix: &Prefix,
    max_attempts: i32,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar(include_str!("../../sql/jobs/next_retry.sql"))
        .bind(bucket)
        .bind(prefix.as_str())
        .bind(max_attempts)
        .fetch_one(pool)
        .await
}

/// `jobs stats`: counts by status, the oldest pending job, the last failure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    pub counts: Vec<(String, i64)>,
    pub oldest_pending: Option<(String, String, DateTime<Utc>)>,
    pub last_failure: Option<(String, String, DateTime<Utc>, Option<String>)>,
}

/// Of `bucket` and under `prefix` when given.
pub async fn stats(
    pool: &PgPool,
    bucket: Option<&str>,
    prefix: Option<&Prefix>,
) -> sqlx::Result<Stats> {
    let prefix = prefix.map(Prefix::as_str);
    let counts = sqlx::query_as(include_str!("../../sql/jobs/stats_counts.sql"))
        .bind(bucket)
        .bind(prefix)
        .fetch_all(pool)
        .await?;
    let oldest_pending = sqlx::query_as(include_str!("../../sql/jobs/stats_oldest_pending.sql"))
        .bind(bucket)
        .bind(prefix)
        .fetch_optional(pool)
        .await?;
    let last_failure = sqlx::query_as(include_str!("../../sql/jobs/stats_last_failure.sql"))
        .bind(bucket)
        .bind(prefix)
        .fetch_optional(pool)
        .await?;
    Ok(Stats {
        counts,
        oldest_pending,
        last_failure,
    })
}

/// Statuses of known keys of `bucket` among `keys` (for `run --dry-run`).
pub async fn known_statuses(
    pool: &PgPool,
    bucket: &str,
    keys: &[String],
    max_attempts: i32,
) -> sqlx::Result<Vec<Known>> {
    let rows: Vec<(String, String, i32, bool)> =
        sqlx::query_as(include_str!("../../sql/jobs/known_statuses.sql"))
            .bind(bucket)
            .bind(keys)
            .bind(max_attempts)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(key, status, attempts, claimable)| Known {
            key,
            status,
            attempts,
            claimable,
        })
        .collect())
}

/// A known job, as `run --dry-run` shows it.
#[derive(Debug, Clone)]
pub struct Known {
    pub key: String,
    pub status: String,
    pub attempts: i32,
    /// `run` would claim it now (`ingestor_claimable`).
    pub claimable: bool,
}

/// Jobs of `bucket` under `prefix` still to do: PENDING, or FAILED with attempts left.
pub async fn remaining(
    pool: &PgPool,
    bucket: &str,
    prefix: &str,
    max_attempts: i32,
) -> sqlx::Result<u64> {
    let count: i64 = sqlx::query_scalar(include_str!("../../sql/jobs/remaining.sql"))
        .bind(bucket)
        .bind(prefix)
        .bind(max_attempts)
        .fetch_one(pool)
        .await?;
    Ok(count.max(0) as u64)
}
