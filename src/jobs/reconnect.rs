//! Riding out database outages: which errors mean the connection failed (not the
//! statement), and retrying with backoff until the database answers again, for at most a
//! bound (`--reconnect-secs`). Past the bound the command gives up (exit 1).

use std::future::Future;
use std::time::{Duration, Instant};

use crate::cancel::Cancel;

/// First wait after a failed connection; doubled per failure up to [`MAX_DELAY`].
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// True for errors of the connection or the server's availability, not of the statement:
/// I/O and TLS failures, a pool that cannot connect, and the server's own "connection
/// exception" (class 08), administrator shutdown / `pg_terminate_backend` (57P01), crash
/// or startup (57P02, 57P03), an idle transaction timed out (25P03), too many connections
/// (53300). Retrying the same work on a new connection can succeed.
pub fn is_connection_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(&*code, "57P01" | "57P02" | "57P03" | "25P03" | "53300")
        }),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        _ => false,
    }
}

/// True when `error` (an `anyhow` chain) was caused by a lost database connection.
pub fn caused_by_connection(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_connection_error)
            || cause.downcast_ref::<DbError>().is_some_and(|e| match e {
                DbError::Statement(e) | DbError::Cancelled(e) => is_connection_error(e),
                DbError::Unreachable(_) => true,
            })
    })
}

/// True when `error` (an `anyhow` chain) says the database stayed unreachable past the
/// bound: the command must give up.
pub fn gave_up(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.is::<Unreachable>()
            || cause
                .downcast_ref::<DbError>()
                .is_some_and(|e| matches!(e, DbError::Unreachable(_)))
    })
}

/// The database did not answer for longer than the bound.
#[derive(Debug, thiserror::Error)]
#[error(
    "the database stayed unreachable for {waited_secs:.0} s (limit {bound_secs:.0} s, --reconnect-secs) while trying to {what}: {source}"
)]
pub struct Unreachable {
    pub what: String,
    pub waited_secs: f64,
    pub bound_secs: f64,
    #[source]
    pub source: sqlx::Error,
}

/// Why a retried database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The statement failed for a reason a new connection cannot fix.
    #[error(transparent)]
    Statement(sqlx::Error),
    /// The connection kept failing past the bound.
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    /// A signal arrived while waiting for the database.
    #[error("stopped by a signal while waiting for the database: {0}")]
    Cancelled(sqlx::Error),
}

/// How long to keep reconnecting, and the signal that stops waiting.
#[derive(Debug, Clone)]
pub struct Reconnect {
    pub bound: Duration,
    pub cancel: Cancel,
}

impl Reconnect {
    pub fn new(bound: Duration, cancel: Cancel) -> Self {
        Self { bound, cancel }
    }

    /// Runs `op` until it succeeds, fails for a reason other than the connection, or the
    /// connection has kept failing for longer than the bound. The pool opens fresh
    /// connections for the next try (sqlx tests idle ones before handing them out).
    ///
    /// Only for operations that are safe to repeat: idempotent statements, or ones whose
    /// effect a lost answer leaves behind harmlessly (a claim whose answer is lost leaves a
    /// lease nobody holds: it expires and the file is taken over).
    pub async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, DbError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = sqlx::Result<T>>,
    {
        let started = Instant::now();
        let mut delay = FIRST_DELAY;
        loop {
            let error = match op().await {
                Ok(value) => return Ok(value),
                Err(error) if is_connection_error(&error) => error,
                Err(error) => return Err(DbError::Statement(error)),
            };
            let waited = started.elapsed();
            if waited >= self.bound {
                return Err(Unreachable {
                    what: what.to_string(),
                    waited_secs: waited.as_secs_f64(),
                    bound_secs: self.bound.as_secs_f64(),
                    source: error,
                }
                .into());
            }
            if self.cancel.is_cancelled() {
                return Err(DbError::Cancelled(error));
            }
            tracing::warn!(
                error = %error,
                waited_ms = waited.as_millis() as u64,
                retry_in_ms = delay.as_millis() as u64,
                "database connection failed while trying to {what}; reconnecting"
            );
            self.cancel.sleep(delay.min(self.bound - waited)).await;
            delay = (delay * 2).min(MAX_DELAY);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_told_from_statement_failures() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_connection_error(&io));
        assert!(is_connection_error(&sqlx::Error::PoolTimedOut));
        assert!(!is_connection_error(&sqlx::Error::RowNotFound));
        let wrapped = anyhow::Error::from(io).context("cannot claim files");
        assert!(caused_by_connection(&wrapped));
        assert!(!gave_up(&wrapped));
        assert!(!caused_by_connection(&anyhow::anyhow!("bad glob")));
    }

    #[tokio::test]
    async fn retries_stop_at_the_bound() {
        let reconnect = Reconnect::new(Duration::from_millis(300), Cancel::default());
        let started = Instant::now();
        let mut tries = 0;
        let result: Result<(), _> = reconnect
            .retry("test", || {
                tries += 1;
                async { Err(sqlx::Error::PoolTimedOut) }
            })
            .await;
        assert!(matches!(result, Err(DbError::Unreachable(_))), "{result:?}");
        let error = anyhow::Error::from(result.unwrap_err()).context("cannot claim files");
        assert!(gave_up(&error), "{error:#}");
        assert!(tries >= 2, "{tries}");
        assert!(started.elapsed() < Duration::from_secs(2));
        let statement: Result<(), _> = reconnect
            .retry("test", || async { Err(sqlx::Error::RowNotFound) })
            .await;
        assert!(matches!(statement, Err(DbError::Statement(_))));
    }
}
