//! A detached day written to the lake before it is dropped (`--archive parquet=URL` or
//! `--archive delta=URL`).
//!
//! Exactly once: the table is detached first, so no writer can add a row while it is read;
//! its rows are read in id order into the Parquet sink's day writers (spooled files), and
//! the files are published (renamed or uploaded whole) under names made from the table's
//! content (its name, day, row count and first and last ids). A run stopped half-way left
//! the table in place, detached: the next run reads the same rows into the same names,
//! replacing what the first run published, and drops the table only after that. Rows of
//! the same day ingested later (a late file) land in a new partition, whose content, and
//! so whose names, differ.
//!
//! A Delta archive appends the day in one commit that carries a key made from the same
//! content (`txn` app id `ingestor-archive:<hash>`): a run stopped after that commit finds
//! the key on the next run and appends nothing again.

use std::sync::Arc;

use futures::TryStreamExt;
use sqlx::PgConnection;
use tokio::sync::mpsc;

use crate::sink::delta::{Append, DeltaError, DeltaSink};
use crate::sink::parquet::{DayWriters, Lake, LakeError, Published, write_stage};
use crate::transform::object_hash;

use super::read::Columns;

/// Rows per Arrow batch handed to the Parquet writer.
const BATCH_ROWS: usize = 8_192;

/// Where archived days go.
#[derive(Debug, Clone)]
pub enum Archive {
    /// A Parquet lake (`--archive parquet=URL`), laid out as the Parquet sink lays out
    /// its own: `date=YYYY-MM-DD/<partition>-<hash>.parquet`.
    Parquet(Arc<Lake>),
    /// A Delta table (`--archive delta=URL`) with the table's columns and `date`,
    /// partitioned by `date`, as the Delta sink writes its tables.
    Delta(Arc<DeltaSink>),
}

/// Why a day could not be archived (the table stays detached for the next run).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read table {table}: {source}")]
    Read {
        table: String,
        #[source]
        source: sqlx::Error,
    },
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error(transparent)]
    Delta(#[from] Box<DeltaError>),
    #[error("cannot build a batch of table {table}: {source}")]
    Arrow {
        table: String,
        #[source]
        source: arrow::error::ArrowError,
    },
}

/// What was archived.
#[derive(Debug, Clone, Default)]
pub struct Archived {
    pub rows: u64,
    pub files: Vec<Published>,
}

impl Archive {
    /// How messages name the archive.
    pub fn display(&self) -> String {
        match self {
            Self::Parquet(lake) => format!("parquet={}", lake.display()),
            Self::Delta(sink) => format!("delta={}", sink.display()),
        }
    }

    /// Writes every row of the detached table `table` (quoted; `name` unquoted) to the
    /// archive.
    pub async fn write(
        &self,
        conn: &mut PgConnection,
        table: &str,
        name: &str,
        columns: &Columns,
    ) -> Result<Archived, ArchiveError> {
        match self {
            Self::Parquet(lake) => parquet(lake, conn, table, name, columns).await,
            Self::Delta(sink) => delta(sink, conn, table, name, columns).await,
        }
    }
}

async fn parquet(
    lake: &Arc<Lake>,
    conn: &mut PgConnection,
    table: &str,
    name: &str,
    columns: &Columns,
) -> Result<Archived, ArchiveError> {
    let Some(stem) = content_stem(conn, table, name).await? else {
        return Ok(Archived::default());
    };
    lake.clean_spool(&stem)?;
    let (tx, rx) = mpsc::channel(2);
    let writers = DayWriters::new(Arc::clone(lake), stem.clone(), table);
    let writer = tokio::task::spawn_blocking(move || write_stage(rx, writers));
    let sent = send_rows(conn, table, columns, &tx).await;
    drop(tx);
    let staged = match writer.await {
        Ok(staged) => staged,
        Err(e) => Err(LakeError::Io {
            path: lake.display(),
            source: std::io::Error::other(e),
        }),
    };
    // The writer's own error explains why sending stopped.
    let staged = match (sent, staged) {
        (_, Err(e)) => return Err(e.into()),
        (Err(e), Ok(_)) => return Err(e),
        (Ok(_), Ok(staged)) => staged,
    };
    let files = lake.publish(&stem, staged).await?;
    Ok(Archived {
        rows: files.iter().map(|f| f.rows).sum(),
        files,
    })
}

async fn delta(
    sink: &Arc<DeltaSink>,
    conn: &mut PgConnection,
    table: &str,
    name: &str,
    columns: &Columns,
) -> Result<Archived, ArchiveError> {
    let boxed = |e: DeltaError| ArchiveError::Delta(Box::new(e));
    let Some(stem) = content_stem(conn, table, name).await? else {
        return Ok(Archived::default());
    };
    let (append, tx) = Append::start(Arc::clone(sink), format!("ingestor-archive:{stem}"))
        .await
        .map_err(boxed)?;
    let sent = send_rows(conn, table, columns, &tx).await;
    drop(tx);
    match sent {
        Ok(rows) => {
            append.finish().await.map_err(boxed)?;
            Ok(Archived {
                rows,
                files: Vec::new(),
            })
        }
        Err(e) => Err(match append.abort().await {
            Some(own) => boxed(own),
            None => e,
        }),
    }
}

/// A name made from the detached table's content (its name, row count, first and last
/// ids): the same rows give the same name. None when the table is empty.
async fn content_stem(
    conn: &mut PgConnection,
    table: &str,
    name: &str,
) -> Result<Option<String>, ArchiveError> {
    let read = |source| ArchiveError::Read {
        table: table.to_string(),
        source,
    };
    let (count, first, last): (i64, Option<String>, Option<String>) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), (SELECT id::text FROM ONLY {table} ORDER BY id LIMIT 1), \
             (SELECT id::text FROM ONLY {table} ORDER BY id DESC LIMIT 1) FROM ONLY {table}"
        )))
        .fetch_one(&mut *conn)
        .await
        .map_err(read)?;
    if count == 0 {
        return Ok(None);
    }
    let content = format!(
        "{name}/{count}/{}/{}",
        first.unwrap_or_default(),
        last.unwrap_or_default()
    );
    let stem = format!(
        "{}-{:016x}",
        sanitize(name),
        object_hash("archive", &content)
    );
    Ok(Some(stem))
}

/// Reads every row of `table` in id order and sends it in batches; the rows sent.
async fn send_rows(
    conn: &mut PgConnection,
    table: &str,
    columns: &Columns,
    tx: &mpsc::Sender<arrow::record_batch::RecordBatch>,
) -> Result<u64, ArchiveError> {
    let read = |source| ArchiveError::Read {
        table: table.to_string(),
        source,
    };
    let mut sent = 0;
    {
        let select = columns.select(table, "id");
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch(&mut *conn);
        let mut batcher = columns.batcher();
        let arrow = |source| ArchiveError::Arrow {
            table: table.to_string(),
            source,
        };
        while let Some(row) = rows.try_next().await.map_err(read)? {
            batcher.push(&row).map_err(read)?;
            if batcher.rows() >= BATCH_ROWS {
                let batch = batcher.finish().map_err(arrow)?;
                sent += batch.num_rows() as u64;
                if tx.send(batch).await.is_err() {
                    return Err(LakeError::Stopped.into());
                }
            }
        }
        if batcher.rows() > 0 {
            let batch = batcher.finish().map_err(arrow)?;
            sent += batch.num_rows() as u64;
            if tx.send(batch).await.is_err() {
                return Err(LakeError::Stopped.into());
            }
        }
    }
    Ok(sent)
}

/// A table name as a file name: letters, digits, `-` and `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'A'..='Z' | 'a'..='z' | '0'..='9' | '-' | '_' => c,
            _ => '_',
        })
        .take(80)
        .collect()
}
