//! The lease: one worker's claim of one file, and everything done under it — checkpoints,
//! completion, failure, release, renewal (the [`LeaseKeeper`]) — each guarded by the lease
//! token, so a worker that lost its claim can change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

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

impl Lease {
    /// Records the version the current attempt reads (guarded); with a checkpoint of 0 it is
    /// the version the next checkpoints count. False: the lease is lost.
    pub async fn record_version(
        &self,
        pool: &PgPool,
        version: &crate::source::ObjectVersion,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(include_str!("../../sql/jobs/record_version.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
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
        &self,
        conn: &mut PgConnection,
        next: u64,
        counts: ChunkCounts,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(include_str!("../../sql/jobs/checkpoint.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
            .bind(next as i64)
            .bind(counts.ingested as i64)
            .bind(counts.rejected as i64)
            .bind(counts.filtered as i64)
            .bind(secs(self.duration))
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks the file COMPLETED (guarded). False: the lease is lost.
    pub async fn complete(
        &self,
        conn: &mut PgConnection,
        destinations: &[String],
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(include_str!("../../sql/jobs/complete.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
            .bind(destinations)
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Starts a claimed file over from its first record (guarded). False: the lease is lost.
    pub async fn restart(&self, conn: &mut PgConnection) -> sqlx::Result<bool> {
        guarded(conn, include_str!("../../sql/jobs/restart.sql"), self).await
    }

    /// The Parquet files (relative paths) the file's last completed run published; locks the
    /// job (guarded). None: the lease is lost.
    pub async fn lake_files(&self, conn: &mut PgConnection) -> sqlx::Result<Option<Vec<String>>> {
        sqlx::query_scalar(include_str!("../../sql/jobs/lake_files.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
            .fetch_optional(conn)
            .await
    }

    /// Records the file's Parquet output (guarded), before [`complete`] in the same
    /// transaction. False: the lease is lost.
    pub async fn record_lake(
        &self,
        conn: &mut PgConnection,
        outputs: &serde_json::Value,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(include_str!("../../sql/jobs/record_lake.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
            .bind(sqlx::types::Json(outputs))
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Picks and records (pending) the Delta application-transaction version of this run
    /// for `table`, in its own short transaction on `pool` (guarded). None: the lease is
    /// lost. See sql/jobs/delta_prepare.sql.
    pub async fn delta_prepare(&self, pool: &PgPool, table: &str) -> sqlx::Result<Option<i64>> {
        sqlx::query_scalar(include_str!("../../sql/jobs/delta_prepare.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
            .bind(table)
            .fetch_optional(pool)
            .await
    }

    /// Records run `version` as committed to `table` at `table_version` (guarded), before
    /// [`complete`] in the same transaction. False: the lease is lost.
    pub async fn delta_record(
        &self,
        conn: &mut PgConnection,
        table: &str,
        version: i64,
        table_version: Option<i64>,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(include_str!("../../sql/jobs/delta_record.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
            .bind(table)
            .bind(version)
            .bind(table_version)
            .execute(conn)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks the file FAILED with `error` (guarded). A transient fault may be retried after
    /// `retry_after`; a `permanent` one (the object's bytes cannot be read, the object is
    /// gone) is never due again (`next_attempt_at` = infinity) until `jobs retry` or a new
    /// version of the object resets it.
    pub async fn fail(
        &self,
        pool: &PgPool,
        error: &str,
        permanent: bool,
        retry_after: Duration,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(include_str!("../../sql/jobs/fail.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
            .bind(error)
            .bind(secs(retry_after))
            .bind(permanent)
            .execute(pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Heartbeat (guarded). False: the lease is lost.
    pub async fn renew(&self, pool: &PgPool) -> sqlx::Result<bool> {
        let done = sqlx::query(include_str!("../../sql/jobs/renew.sql"))
            .bind(&self.bucket)
            .bind(&self.key)
            .bind(self.token)
            .bind(secs(self.duration))
            .execute(pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claimed file back (shutdown): PENDING again, the attempt not counted.
    pub async fn release(&self, pool: &PgPool) -> sqlx::Result<bool> {
        guarded_pool(pool, include_str!("../../sql/jobs/release.sql"), self).await
    }
}

/// What becomes of a file whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// A transient fault (network, storage, database): tried again after a backoff.
    Retry(Duration),
    /// The bytes of this version cannot be read, or the transform cannot run on them: not
    /// tried again until the object changes or `jobs retry`.
    Permanent,
    /// The database itself is gone: the pass stops, the claim is given back once it
    /// answers again.
    Fatal,
}

/// How a failed attempt is handled: the one place that holds the permanent/transient rule.
/// `retry_after` is the first backoff, doubled per attempt up to `retry_cap`.
pub fn disposition(
    lease: &Lease,
    permanent: bool,
    connection_lost: bool,
    retry_after: Duration,
    retry_cap: Duration,
) -> Disposition {
    if connection_lost {
        Disposition::Fatal
    } else if permanent {
        Disposition::Permanent
    } else {
        Disposition::Retry(backoff(retry_after, retry_cap, lease.attempts, lease.token))
    }
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

/// Renews a lease every third of its duration while its file is processed, and notices
/// when it was lost (another worker took the file over).
pub struct LeaseKeeper {
    task: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl LeaseKeeper {
    pub fn start(pool: PgPool, lease: Lease) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        let every = lease.duration / 3;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match lease.renew(&pool).await {
                    Ok(true) => {}
                    Ok(false) => {
                        flag.store(true, Ordering::SeqCst);
                        return;
                    }
                    // A transient database error: the next beat tries again.
                    Err(e) => tracing::warn!(file = %lease.key, error = %e, "lease renewal failed"),
                }
            }
        });
        Self { task, lost }
    }

    /// Stops renewing; true when the lease was seen lost.
    pub fn stop(self) -> bool {
        self.task.abort();
        self.lost.load(Ordering::SeqCst)
    }
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

async fn guarded(conn: &mut PgConnection, sql: &'static str, lease: &Lease) -> sqlx::Result<bool> {
    let done = sqlx::query(sql)
        .bind(&lease.bucket)
        .bind(&lease.key)
        .bind(lease.token)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

async fn guarded_pool(pool: &PgPool, sql: &'static str, lease: &Lease) -> sqlx::Result<bool> {
    let mut conn = pool.acquire().await?;
    guarded(&mut conn, sql, lease).await
}
pub(super) fn secs(duration: Duration) -> f64 {
    duration.as_secs_f64()
}
