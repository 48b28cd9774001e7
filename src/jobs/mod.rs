//! `processed_files`: the job of each file, its lease and its checkpoint.
//!
//! Every state change after a claim (checkpoint, heartbeat, complete, fail) matches the
//! lease token the claim set. A statement that updates no row means another worker took the
//! file over (our lease expired): the caller must stop and roll back. This fencing is what
//! makes taking over stuck files safe while their first worker is merely slow.

mod prefix;
mod queue;
mod reconnect;

use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Embedded migrations (`migrations/`): the tables jobs track files in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub use prefix::Prefix;
pub use queue::{
    ClaimRules, ClaimedFile, Discovered, JobRow, Listed, Stats, claim_page, discover, give_up_lost,
    known_statuses, list, next_retry, remaining, retry, stats,
};
pub use reconnect::{
    DbError, Reconnect, Unreachable, caused_by_connection, gave_up, is_connection_error,
};

/// The claim of one file by this worker.
#[derive(Debug, Clone)]
pub struct Lease {
    pub bucket: String,
    pub key: String,
    pub token: Uuid,
    pub duration: Duration,
    /// Attempts so far, this one included.
    pub attempts: i32,
}

/// Delay before attempt `attempts + 1` of a failing file: `base` doubled per attempt,
/// capped at `cap`, jittered down to 50-100% (from the lease token, so workers that failed
/// together do not retry together).
pub fn backoff(base: Duration, cap: Duration, attempts: i32, token: Uuid) -> Duration {
    let doublings = attempts.clamp(1, 30) as u32 - 1;
    let full = base.saturating_mul(1u32 << doublings.min(20)).min(cap);
    let jitter = 0.5 + (token.as_u128() as u16) as f64 / (2.0 * f64::from(u16::MAX));
    full.mul_f64(jitter)
}

/// What a claim returns.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Records already committed: the first source index to ingest.
    pub checkpoint: u64,
    pub attempts: i32,
    /// The version of the object whose records the checkpoint counts.
    pub version: Option<String>,
    /// A new version was found: the object starts over whatever its checkpoint.
    pub start_over: bool,
}

/// Progress of one chunk, written with its checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkCounts {
    pub ingested: u64,
    pub rejected: u64,
    pub filtered: u64,
    /// Records the transform read (its input rows): with a whole-file plan, rows written
    /// and records read are not related one to one.
    pub read: u64,
}

fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Records a file as PENDING unless known.
pub async fn register(
    pool: &PgPool,
    bucket: &str,
    key: &str,
    size: Option<u64>,
) -> sqlx::Result<()> {
    sqlx::query(include_str!("../../sql/jobs/register.sql"))
        .bind(bucket)
        .bind(key)
        .bind(size.map(|s| s as i64))
        .execute(pool)
        .await?;
    Ok(())
}

/// Claims a known file (see `sql/jobs/claim_one.sql`). None: not eligible (completed, or
/// leased by a live worker).
pub async fn claim_one(
    conn: &mut PgConnection,
    lease: &Lease,
    force: bool,
    size: Option<u64>,
) -> sqlx::Result<Option<Claimed>> {
    let row: Option<(i64, i32, Option<String>, bool)> =
        sqlx::query_as(include_str!("../../sql/jobs/claim_one.sql"))
            .bind(&lease.bucket)
            .bind(&lease.key)
            .bind(lease.token)
            .bind(secs(lease.duration))
            .bind(force)
            .bind(size.map(|s| s as i64))
            .fetch_optional(conn)
            .await?;
    Ok(
        row.map(|(checkpoint, attempts, version, start_over)| Claimed {
            checkpoint: checkpoint.max(0) as u64,
            attempts,
            version,
            start_over,
        }),
    )
}

/// The status of a file, if known.
pub async fn status(pool: &PgPool, bucket: &str, key: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(include_str!("../../sql/jobs/status.sql"))
        .bind(bucket)
        .bind(key)
        .fetch_optional(pool)
        .await
}

/// Records the version the current attempt reads (guarded); with a checkpoint of 0 it is
/// the version the next checkpoints count. False: the lease is lost.
pub async fn record_version(
    pool: &PgPool,
    lease: &Lease,
    version: &crate::source::ObjectVersion,
) -> sqlx::Result<bool> {
    let done = sqlx::query(include_str!("../../sql/jobs/record_version.sql"))
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .bind(version.id())
        .bind(version.etag.as_deref())
        .bind(version.size as i64)
        .bind(version.last_modified)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Advances the checkpoint to `next` (guarded). False: the lease is lost.
pub async fn checkpoint(
    conn: &mut PgConnection,
    lease: &Lease,
    next: u64,
    counts: ChunkCounts,
) -> sqlx::Result<bool> {
    let done = sqlx::query(include_str!("../../sql/jobs/checkpoint.sql"))
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .bind(next as i64)
        .bind(counts.ingested as i64)
        .bind(counts.rejected as i64)
        .bind(counts.filtered as i64)
        .bind(secs(lease.duration))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Stores rejected records `(index, raw, error)`.
pub async fn insert_rejects(
    conn: &mut PgConnection,
    lease: &Lease,
    rejects: &[crate::decode::Reject],
) -> sqlx::Result<()> {
    let index: Vec<i64> = rejects.iter().map(|r| r.index as i64).collect();
    let raw: Vec<&str> = rejects.iter().map(|r| r.raw.as_str()).collect();
    let error: Vec<&str> = rejects.iter().map(|r| r.error.as_str()).collect();
    sqlx::query(include_str!("../../sql/jobs/insert_rejects.sql"))
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(index)
        .bind(raw)
        .bind(error)
        .execute(conn)
        .await?;
    Ok(())
}

/// Forgets the rejected records of a file (`--force`).
pub async fn delete_rejects(conn: &mut PgConnection, bucket: &str, key: &str) -> sqlx::Result<()> {
    sqlx::query(include_str!("../../sql/jobs/delete_rejects.sql"))
        .bind(bucket)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(())
}

async fn guarded(conn: &mut PgConnection, sql: &'static str, lease: &Lease) -> sqlx::Result<bool> {
    let done = sqlx::query(sql)
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the file COMPLETED (guarded). False: the lease is lost.
pub async fn complete(
    conn: &mut PgConnection,
    lease: &Lease,
    destinations: &[String],
) -> sqlx::Result<bool> {
    let done = sqlx::query(include_str!("../../sql/jobs/complete.sql"))
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .bind(destinations)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// COMPLETED jobs of `bucket` (keys starting with `prefix`, or exactly `keys` when given)
/// that were written to other destinations than `destinations`: up to `limit` keys, and
/// how many there are. Jobs completed before destinations were recorded are not counted.
pub async fn other_destinations(
    pool: &PgPool,
    bucket: &str,
    prefix: &str,
    keys: Option<&[String]>,
    destinations: &[String],
    limit: i64,
) -> sqlx::Result<(i64, Vec<String>)> {
    sqlx::query_as(include_str!("../../sql/jobs/other_destinations.sql"))
        .bind(bucket)
        .bind(prefix)
        .bind(keys)
        .bind(destinations)
        .bind(limit)
        .fetch_one(pool)
        .await
}

/// Makes the COMPLETED jobs written to other destinations PENDING again, to start over
/// (`run --force`). Returns how many.
pub async fn rewrite_other_destinations(
    pool: &PgPool,
    bucket: &str,
    prefix: &str,
    destinations: &[String],
) -> sqlx::Result<u64> {
    let done = sqlx::query(include_str!(
        "../../sql/jobs/rewrite_other_destinations.sql"
    ))
    .bind(bucket)
    .bind(prefix)
    .bind(destinations)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Starts a claimed file over from its first record (guarded). False: the lease is lost.
pub async fn restart(conn: &mut PgConnection, lease: &Lease) -> sqlx::Result<bool> {
    guarded(conn, include_str!("../../sql/jobs/restart.sql"), lease).await
}

/// The Parquet files (relative paths) the file's last completed run published; locks the
/// job (guarded). None: the lease is lost.
pub async fn lake_files(
    conn: &mut PgConnection,
    lease: &Lease,
) -> sqlx::Result<Option<Vec<String>>> {
    sqlx::query_scalar(include_str!("../../sql/jobs/lake_files.sql"))
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .fetch_optional(conn)
        .await
}

/// Records the file's Parquet output (guarded), before [`complete`] in the same
/// transaction. False: the lease is lost.
pub async fn record_lake(
    conn: &mut PgConnection,
    lease: &Lease,
    outputs: &serde_json::Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query(include_str!("../../sql/jobs/record_lake.sql"))
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .bind(sqlx::types::Json(outputs))
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks the file FAILED with `error` (guarded). A transient fault may be retried after
/// `retry_after`; a `permanent` one (the object's bytes cannot be read, the object is
/// gone) is never due again (`next_attempt_at` = infinity) until `jobs retry` or a new
/// version of the object resets it.
pub async fn fail(
    pool: &PgPool,
    lease: &Lease,
    error: &str,
    permanent: bool,
    retry_after: Duration,
) -> sqlx::Result<bool> {
    let done = sqlx::query(include_str!("../../sql/jobs/fail.sql"))
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .bind(error)
        .bind(secs(retry_after))
        .bind(permanent)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Heartbeat (guarded). False: the lease is lost.
pub async fn renew(pool: &PgPool, lease: &Lease) -> sqlx::Result<bool> {
    let done = sqlx::query(include_str!("../../sql/jobs/renew.sql"))
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .bind(secs(lease.duration))
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives a claimed file back (shutdown): PENDING again, the attempt not counted.
pub async fn release(pool: &PgPool, lease: &Lease) -> sqlx::Result<bool> {
    guarded_pool(pool, include_str!("../../sql/jobs/release.sql"), lease).await
}

async fn guarded_pool(pool: &PgPool, sql: &'static str, lease: &Lease) -> sqlx::Result<bool> {
    let mut conn = pool.acquire().await?;
    guarded(&mut conn, sql, lease).await
}
