//! `processed_files`: the job of each file, its lease and its checkpoint.
//!
//! Every state change after a claim (checkpoint, heartbeat, complete, fail) matches the
//! lease token the claim set. A statement that updates no row means another worker took the
//! file over (our lease expired): the caller must stop and roll back. This fencing is what
//! makes taking over stuck files safe while their first worker is merely slow.

mod group;
mod lease;
mod mark;
mod page;
mod prefix;
mod queue;
mod reconnect;
mod writers;

use std::time::Duration;

use sqlx::{PgConnection, PgPool};

/// Embedded migrations (`migrations/`): the tables jobs track files in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

pub use group::{GroupEntry, complete_group};
pub use lease::{ChunkCounts, Disposition, Lease, LeaseKeeper, backoff, disposition};
pub use mark::{ListingMark, advance_mark, listing_mark};
pub use page::{JobFilter, JobPage, JobRow, RETRY_BATCH, list_page, retry, retry_failed};
pub use prefix::Prefix;
pub use queue::{
    ClaimRules, ClaimedFile, Discovered, Known, Listed, Stats, claim_page, claim_small_page,
    discover, give_up_lost, known_statuses, next_retry, remaining, retry_keys, stats,
};
pub use reconnect::{
    DbError, Reconnect, Unreachable, caused_by_connection, gave_up, is_connection_error,
};
pub use writers::{processing, writing_into};

/// What a claim returns.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The claim: its token made by the database, as for every claim.
    pub lease: Lease,
    /// Records already committed: the first source index to ingest.
    pub checkpoint: u64,
    /// The version of the object whose records the checkpoint counts.
    pub version: Option<String>,
    /// A new version was found: the object starts over whatever its checkpoint.
    pub start_over: bool,
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
    bucket: &str,
    key: &str,
    lease_duration: Duration,
    force: bool,
    size: Option<u64>,
) -> sqlx::Result<Option<Claimed>> {
    let row: Option<(uuid::Uuid, i64, i32, Option<String>, bool)> =
        sqlx::query_as(include_str!("../../sql/jobs/claim_one.sql"))
            .bind(bucket)
            .bind(key)
            .bind(lease_duration.as_secs_f64())
            .bind(force)
            .bind(size.map(|s| s as i64))
            .fetch_optional(conn)
            .await?;
    Ok(row.map(
        |(token, checkpoint, attempts, version, start_over)| Claimed {
            lease: Lease {
                bucket: bucket.to_string(),
                key: key.to_string(),
                token,
                duration: lease_duration,
                attempts,
            },
            checkpoint: checkpoint.max(0) as u64,
            version,
            start_over,
        },
    ))
}

/// The status of a file, if known.
pub async fn status(pool: &PgPool, bucket: &str, key: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(include_str!("../../sql/jobs/status.sql"))
        .bind(bucket)
        .bind(key)
        .fetch_optional(pool)
        .await
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
