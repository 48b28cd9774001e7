//! Taking a day partition out of its table without stopping the writers: `DETACH PARTITION
//! ... CONCURRENTLY`, then `DROP TABLE` of the detached table.
//!
//! `DETACH ... CONCURRENTLY` takes `SHARE UPDATE EXCLUSIVE` on the parent (a COPY's `ROW
//! EXCLUSIVE` does not conflict), commits, then waits, holding no lock, for the
//! transactions that may still write into the partition; a plain `DETACH` would take
//! `ACCESS EXCLUSIVE` on the parent and stop every COPY behind it. Every statement runs
//! under the session's `lock_timeout` and is tried again after a pause when it times out.
//! A detach stopped in its wait leaves the partition pending: no row goes there any more,
//! and `DETACH ... FINALIZE` completes it. A table with a DEFAULT partition cannot be
//! detached concurrently: the layout has none (docs/partitions.md).

use std::time::Duration;

use sqlx::PgConnection;

use super::catalog::{self, Layout, created_comment, detaching_comment};
use super::day::Slot;
use crate::sink::postgres::quote_ident;

/// How often and how long a statement that timed out on a lock is tried again.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Tries in all.
    pub attempts: u32,
    /// Pause after the first timeout; doubled after each, at most 30 s.
    pub pause: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 6,
            pause: Duration::from_secs(1),
        }
    }
}

/// Why a partition could not be detached or dropped.
#[derive(Debug, thiserror::Error)]
pub enum DetachError {
    #[error(
        "{what} of {table}: still waiting for locks after {attempts} tries (the session's \
         lock_timeout each); nothing was lost, run retention again later"
    )]
    TimedOut {
        what: String,
        table: String,
        attempts: u32,
    },
    #[error("{what} of {table}: {source}")]
    Database {
        what: String,
        table: String,
        #[source]
        source: sqlx::Error,
    },
}

/// True for the error of a statement that gave up waiting for a lock (`lock_timeout`).
fn timed_out(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if e.code().as_deref() == Some("55P03"))
}

/// Runs `statement`, trying again while it times out on a lock.
async fn run(
    conn: &mut PgConnection,
    statement: &str,
    what: &str,
    table: &str,
    retry: Retry,
) -> Result<(), DetachError> {
    let mut pause = retry.pause;
    for attempt in 1..=retry.attempts.max(1) {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_string()))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if timed_out(&e) && attempt < retry.attempts => {
                tracing::info!(table, attempt, what, "lock timeout: trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) if timed_out(&e) => break,
            Err(source) => {
                return Err(DetachError::Database {
                    what: what.to_string(),
                    table: table.to_string(),
                    source,
                });
            }
        }
    }
    Err(DetachError::TimedOut {
        what: what.to_string(),
        table: table.to_string(),
        attempts: retry.attempts,
    })
}

/// Detaches the partition `name` of `layout` (the day `slot`), marked first so that a run
/// stopped before the drop finds it again. A partition left pending by an earlier run is
/// finalised. On return the partition is a table of its own that no transaction can
/// still write into.
pub async fn detach(
    conn: &mut PgConnection,
    layout: &Layout,
    name: &str,
    slot: Slot,
    retry: Retry,
) -> Result<(), DetachError> {
    let parent = layout.quoted();
    let table = layout.sibling(name);
    let comment = detaching_comment(layout.oid, slot);
    let mark = format!("COMMENT ON TABLE {table} IS '{comment}'");
    run(conn, &mark, "marking the partition", &table, retry).await?;
    let mut pause = retry.pause;
    for attempt in 1..=retry.attempts.max(1) {
        let pending =
            pending(conn, layout, name)
                .await
                .map_err(|source| DetachError::Database {
                    what: "reading the partitions".into(),
                    table: parent.clone(),
                    source,
                })?;
        let Some(pending) = pending else {
            // Already detached (the run stopped after the detach).
            return Ok(());
        };
        let statement = if pending {
            format!("ALTER TABLE {parent} DETACH PARTITION {table} FINALIZE")
        } else {
            format!("ALTER TABLE {parent} DETACH PARTITION {table} CONCURRENTLY")
        };
        match sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *conn)
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if timed_out(&e) && attempt < retry.attempts => {
                tracing::info!(partition = %table, attempt, "detach: lock timeout, trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
            Err(e) if timed_out(&e) => break,
            Err(source) => {
                return Err(DetachError::Database {
                    what: "detaching the partition".into(),
                    table: table.clone(),
                    source,
                });
            }
        }
    }
    Err(DetachError::TimedOut {
        what: "detaching the partition".into(),
        table,
        attempts: retry.attempts,
    })
}

/// Whether partition `name` is pending detach; None when it is no longer a partition.
async fn pending(
    conn: &mut PgConnection,
    layout: &Layout,
    name: &str,
) -> sqlx::Result<Option<bool>> {
    let partitions = catalog::partitions(conn, layout.oid).await?;
    Ok(partitions
        .iter()
        .find(|p| p.name == name && p.schema == layout.schema)
        .map(|p| p.pending))
}

/// Drops the detached table `name`.
pub async fn drop_detached(
    conn: &mut PgConnection,
    layout: &Layout,
    name: &str,
    retry: Retry,
) -> Result<(), DetachError> {
    let table = layout.sibling(name);
    run(
        conn,
        &format!("DROP TABLE IF EXISTS {table}"),
        "dropping the detached partition",
        &table,
        retry,
    )
    .await
}

/// Puts the detached table `name` (day `slot`) back into `layout`: attached again, or,
/// when a partition was created for the day meanwhile (late rows), its rows moved there
/// and the table dropped. `columns` are the table's columns.
pub async fn give_back(
    conn: &mut PgConnection,
    layout: &Layout,
    name: &str,
    slot: Slot,
    columns: &[String],
    retry: Retry,
) -> Result<(), DetachError> {
    let parent = layout.quoted();
    let table = layout.sibling(name);
    let database = |what: &str| {
        let what = what.to_string();
        let table = table.clone();
        move |source| DetachError::Database {
            what,
            table,
            source,
        }
    };
    let partitions = catalog::partitions(conn, layout.oid)
        .await
        .map_err(database("reading the partitions"))?;
    let taken = partitions.iter().any(|p| p.bound.overlaps(slot.range()));
    let comment = created_comment(&parent, slot).replace('\'', "''");
    run(
        conn,
        &format!("COMMENT ON TABLE {table} IS '{comment}'"),
        "unmarking the partition",
        &table,
        retry,
    )
    .await?;
    if !taken {
        let attach = format!(
            "ALTER TABLE {parent} ATTACH PARTITION {table} FOR VALUES {}",
            slot.bounds_sql()
        );
        return run(
            conn,
            &attach,
            "attaching the partition again",
            &table,
            retry,
        )
        .await;
    }
    let list = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let mut tx = sqlx::Connection::begin(&mut *conn)
        .await
        .map_err(database("moving the rows back"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {parent} ({list}) SELECT {list} FROM {table}; DROP TABLE {table}"
    )))
    .execute(&mut *tx)
    .await
    .map_err(database("moving the rows back"))?;
    tx.commit()
        .await
        .map_err(database("moving the rows back"))?;
    Ok(())
}
