//! Readiness of `run`: a task that asks the database `SELECT 1` a few times per
//! `--interval` on a connection of its own and tells [`crate::health`] how it went.
//!
//! Its own connection, not one of the pool: a worker whose COPY streams hold every pooled
//! connection is busy, not unready, and a probe waiting for a free one would say otherwise.
//! The connection is opened with the pool's options (the same server, socket and
//! settings); when a probe fails it is dropped and the next probe connects afresh, so
//! readiness comes back as soon as the database does, without restarting the process.

use std::time::Instant;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use crate::cancel::Cancel;
use crate::health::{Checks, health};

/// Probes the database until the stop, as often as `checks` says.
pub async fn probe_database(options: PgConnectOptions, checks: Checks, cancel: Cancel) {
    let mut connection: Option<PgConnection> = None;
    let timeout = checks.probe_timeout();
    loop {
        match tokio::time::timeout(timeout, ping(&mut connection, &options)).await {
            Ok(Ok(())) => health().database_answered(Instant::now()),
            Ok(Err(error)) => {
                connection = None;
                health().database_failed(&one_line(&error));
            }
            Err(_) => {
                connection = None;
                health()
                    .database_failed(&format!("no answer within {:.1} s", timeout.as_secs_f64()));
            }
        }
        if cancel.sleep(checks.probe_every()).await {
            return;
        }
    }
}

/// `SELECT 1`, connecting first when there is no connection.
async fn ping(
    connection: &mut Option<PgConnection>,
    options: &PgConnectOptions,
) -> sqlx::Result<()> {
    let live = match connection {
        Some(live) => live,
        None => connection.insert(PgConnection::connect_with(options).await?),
    };
    sqlx::query("SELECT 1").execute(live).await?;
    Ok(())
}

/// An error as one printable line (sqlx's text names the cause: `error communicating with
/// database: Connection refused (os error 111)`; it never holds the password).
fn one_line(error: &sqlx::Error) -> String {
    crate::text::printable(&error.to_string()).into_owned()
}
