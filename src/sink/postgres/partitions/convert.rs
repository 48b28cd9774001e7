//! `ingestor migrate --partition-by day`: the target table becomes partitioned by day.
//!
//! An empty plain table is rebuilt as `PARTITION BY RANGE (id)` in one transaction (its
//! columns, defaults, constraints, indexes and comments kept, indexes under their old
//! names); a table already partitioned by day is kept; a table with rows is refused (a
//! rewrite under `ACCESS EXCLUSIVE` is not something to do by surprise): the message says
//! how to move its rows instead.

use std::time::Duration;

use sqlx::PgPool;

use super::catalog::{Kind, Layout};
use crate::sink::postgres::quote_ident;

/// How long the conversion waits for the table's lock (workers writing into it hold one).
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Name the partitioned table is built under before it takes the table's name.
const BUILDING: &str = "ingestor_partitioned_build";

/// What the conversion did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Converted {
    /// The empty plain table was rebuilt, partitioned by day.
    Rebuilt,
    /// The table was already partitioned by day.
    Already,
}

/// Why the table cannot be partitioned by day.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("table {0} does not exist")]
    NoTable(String),
    #[error(
        "table {table} has rows: converting it would rewrite them all under an ACCESS \
         EXCLUSIVE lock, so ingestor leaves it plain. To partition it, stop the workers, \
         move it aside and build the new table from it (`BEGIN; ALTER TABLE {table} RENAME \
         TO {name}_plain; CREATE TABLE {table} (LIKE {name}_plain INCLUDING ALL); COMMIT;`), \
         run `ingestor migrate --partition-by day` again, then copy the rows a day at a time \
         (`INSERT INTO {table} SELECT * FROM {name}_plain WHERE id >= ingestor_id_floor(DAY) \
         AND id < ingestor_id_floor(DAY + 1)`) and drop {name}_plain; see docs/partitions.md"
    )]
    NotEmpty { table: String, name: String },
    #[error(
        "table {table} is partitioned by {key}, not by day (RANGE (id) on a uuid id, without a \
         DEFAULT partition): ingestor leaves it as it is"
    )]
    OtherPartitioning { table: String, key: String },
    #[error("{table} is not a table (relkind {kind})")]
    NotATable { table: String, kind: String },
    #[error(
        "cannot lock table {table} within {secs} s: workers are writing into it; stop them \
         and run `ingestor migrate --partition-by day` again"
    )]
    Busy { table: String, secs: u64 },
    #[error("cannot partition table {table} by day: {source}")]
    Database {
        table: String,
        #[source]
        source: sqlx::Error,
    },
}

/// Partitions table `quoted` (`"schema"."name"` or `"name"`) by day; returns its layout.
pub async fn partition_by_day(
    pool: &PgPool,
    quoted: &str,
) -> Result<(Converted, Layout), ConvertError> {
    let database = |source: sqlx::Error| {
        let busy =
            matches!(&source, sqlx::Error::Database(e) if e.code().as_deref() == Some("55P03"));
        if busy {
            ConvertError::Busy {
                table: quoted.to_string(),
                secs: LOCK_TIMEOUT.as_secs(),
            }
        } else {
            ConvertError::Database {
                table: quoted.to_string(),
                source,
            }
        }
    };
    let mut tx = pool.begin().await.map_err(database)?;
    let Some(layout) = Layout::load(&mut tx, quoted).await.map_err(database)? else {
        return Err(ConvertError::NoTable(quoted.to_string()));
    };
    match &layout.kind {
        Kind::Partitioned(key) if key.by_day() => {
            id_floor(&mut tx).await.map_err(database)?;
            tx.commit().await.map_err(database)?;
            return Ok((Converted::Already, layout));
        }
        Kind::Partitioned(key) => {
            return Err(ConvertError::OtherPartitioning {
                table: layout.quoted(),
                key: key.describe(),
            });
        }
        Kind::Other(kind) => {
            return Err(ConvertError::NotATable {
                table: layout.quoted(),
                kind: kind.clone(),
            });
        }
        Kind::Plain => {}
    }
    let table = layout.quoted();
    let building = layout.sibling(BUILDING);
    let statements = [
        format!("SET LOCAL lock_timeout = '{}ms'", LOCK_TIMEOUT.as_millis()),
        format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"),
    ];
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .map_err(database)?;
    }
    let has_rows: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM {table})"
    )))
    .fetch_one(&mut *tx)
    .await
    .map_err(database)?;
    if has_rows {
        return Err(ConvertError::NotEmpty {
            table: table.clone(),
            name: layout.name.clone(),
        });
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {building} (LIKE {table} INCLUDING ALL) PARTITION BY RANGE (id)"
    )))
    .execute(&mut *tx)
    .await
    .map_err(database)?;
    let names: Vec<(String, String)> =
        sqlx::query_as(include_str!("../../../../sql/sink/index_names.sql"))
            .bind(&table)
            .bind(&building)
            .fetch_all(&mut *tx)
            .await
            .map_err(database)?;
    let mut statements = vec![
        format!("DROP TABLE {table}"),
        format!(
            "ALTER TABLE {building} RENAME TO {}",
            quote_ident(&layout.name)
        ),
    ];
    for (old, new) in names {
        statements.push(format!(
            "ALTER INDEX {} RENAME TO {}",
            layout.sibling(&new),
            quote_ident(&old)
        ));
    }
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await
            .map_err(database)?;
    }
    id_floor(&mut tx).await.map_err(database)?;
    let rebuilt = Layout::load(&mut tx, &table)
        .await
        .map_err(database)?
        .ok_or_else(|| ConvertError::NoTable(table.clone()))?;
    tx.commit().await.map_err(database)?;
    tracing::info!(table = %table, "table rebuilt, partitioned by day (RANGE (id))");
    Ok((Converted::Rebuilt, rebuilt))
}

/// Creates (or replaces) `ingestor_id_floor(timestamptz)`, which queries use to prune the
/// day partitions (sql/sink/id_floor.sql).
async fn id_floor(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::raw_sql(include_str!("../../../../sql/sink/id_floor.sql"))
        .execute(conn)
        .await?;
    Ok(())
}
