//! The Delta side of one source object: one Delta commit holding all its rows, made
//! exactly once across the table and the job queue.
//!
//! Each run of an object has an idempotency key in the table: a `txn` action with the
//! application id `ingestor:<bucket>/<key>` and a version that the job picks and records
//! as pending before anything is written (`Lease::delta_prepare`). The commit carries it;
//! a later attempt of the same run finds it (`txn` version >= its own) and writes nothing
//! again. Two writers of the same run (a worker that lost its lease and the one that took
//! the object over) cannot both commit: Delta's conflict check refuses a commit whose
//! application id another commit used since its snapshot.
//!
//! A run after a committed one (a new version of the object, or `--force`) replaces the
//! object's rows: an overwrite of `source_bucket = .. AND source_key = ..` and the append,
//! in the same commit.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::logical_expr::{LogicalPlan, col, lit};
use deltalake_core::kernel::transaction::CommitProperties;
use deltalake_core::kernel::{EagerSnapshot, Transaction};
use deltalake_core::operations::write::WriteBuilder;
use deltalake_core::protocol::SaveMode;
use deltalake_core::{DeltaTable, DeltaTableError};
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::stream::{Gate, input_plan};
use super::table::{DATE_COLUMN, DeltaError, DeltaSink};
use crate::jobs::Lease;

/// The columns a replacing run deletes the object's earlier rows by.
const SOURCE_COLUMNS: [&str; 2] = ["source_bucket", "source_key"];

/// Batches in flight between the transform and the table's writer.
const QUEUE_BATCHES: usize = 2;

/// What a run's write came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Committed now, at this table version.
    Committed { table_version: i64 },
    /// An earlier attempt of the same run had committed it (found by its `txn`).
    Earlier,
}

/// Why a run could not be committed to the table.
#[derive(Debug, thiserror::Error)]
pub enum DeltaJobError {
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("lease lost: another worker took the file over")]
    LeaseLost,
}

/// The Delta output of one file being written.
pub struct DeltaJob {
    sink: Arc<DeltaSink>,
    version: i64,
    /// Lets the write commit; dropped unopened when the file fails.
    gate: Option<Gate>,
    writer: JoinHandle<Result<Written, DeltaError>>,
}

impl DeltaJob {
    /// Prepares the run of `bucket`/`key` (its `txn` version, recorded pending in the
    /// job) and starts its writer; send the transform's output on the returned sender and
    /// drop it at the end of the file.
    pub async fn start(
        sink: Arc<DeltaSink>,
        pool: &PgPool,
        lease: &Lease,
        bucket: &str,
        key: &str,
    ) -> Result<(Self, mpsc::Sender<RecordBatch>), DeltaJobError> {
        let Some(version) = lease.delta_prepare(pool, sink.display()).await? else {
            return Err(DeltaJobError::LeaseLost);
        };
        let app_id = app_id(bucket, key);
        let table = sink.latest().await?;
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let earlier = committed(&sink, &table, &app_id, version).await?;
        let (writer, gate) = if earlier {
            (tokio::spawn(drain(rx)), None)
        } else {
            let (plan, gate) =
                input_plan(Arc::clone(&sink.schema), rx).map_err(|e| DeltaError::Table {
                    table: sink.display().to_string(),
                    source: DeltaTableError::from(e),
                })?;
            let replace = (version > 1).then(|| (bucket.to_string(), key.to_string()));
            let run = Run {
                sink: Arc::clone(&sink),
                table,
                app_id,
                version,
                replace,
            };
            (tokio::spawn(run.write(plan)), Some(gate))
        };
        Ok((
            Self {
                sink,
                version,
                gate,
                writer,
            },
            tx,
        ))
    }

    /// Waits for the writer (the table's commit) and records the run as committed in
    /// the job, in the transaction `conn` that then marks the file COMPLETED.
    pub async fn publish(
        self,
        conn: &mut PgConnection,
        lease: &Lease,
    ) -> Result<Written, DeltaJobError> {
        if let Some(gate) = self.gate {
            gate.open();
        }
        let written = finished(&self.sink, self.writer).await?;
        let table_version = match written {
            Written::Committed { table_version } => Some(table_version),
            Written::Earlier => None,
        };
        if !lease
            .delta_record(conn, self.sink.display(), self.version, table_version)
            .await?
        {
            return Err(DeltaJobError::LeaseLost);
        }
        Ok(written)
    }

    /// The writer's own error, after the pipeline stopped early (None if it had none).
    pub async fn error(self) -> Option<DeltaError> {
        // A writer still waiting for its input or its gate had no error of its own.
        let own = self.writer.is_finished();
        drop(self.gate);
        let error = finished(&self.sink, self.writer).await.err();
        if own { error } else { None }
    }
}

/// An append of rows that are not a source object's (a day archived by `retention`),
/// made once: the commit carries `app_id` at version 1, and an append whose key the table
/// already holds writes nothing.
pub struct Append {
    sink: Arc<DeltaSink>,
    gate: Option<Gate>,
    writer: JoinHandle<Result<Written, DeltaError>>,
}

impl Append {
    /// Starts the append; send the rows on the returned sender, then [`finish`](Self::finish).
    pub async fn start(
        sink: Arc<DeltaSink>,
        app_id: String,
    ) -> Result<(Self, mpsc::Sender<RecordBatch>), DeltaError> {
        let table = sink.latest().await?;
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        if committed(&sink, &table, &app_id, 1).await? {
            let writer = tokio::spawn(drain(rx));
            return Ok((
                Self {
                    sink,
                    gate: None,
                    writer,
                },
                tx,
            ));
        }
        let (plan, gate) =
            input_plan(Arc::clone(&sink.schema), rx).map_err(|e| DeltaError::Table {
                table: sink.display().to_string(),
                source: DeltaTableError::from(e),
            })?;
        let run = Run {
            sink: Arc::clone(&sink),
            table,
            app_id,
            version: 1,
            replace: None,
        };
        let writer = tokio::spawn(run.write(plan));
        Ok((
            Self {
                sink,
                gate: Some(gate),
                writer,
            },
            tx,
        ))
    }

    /// Commits what was sent (the sender must be dropped first).
    pub async fn finish(self) -> Result<Written, DeltaError> {
        if let Some(gate) = self.gate {
            gate.open();
        }
        finished(&self.sink, self.writer).await
    }

    /// Gives up: nothing is committed. The writer's own error, if it had one.
    pub async fn abort(self) -> Option<DeltaError> {
        let own = self.writer.is_finished();
        drop(self.gate);
        let error = finished(&self.sink, self.writer).await.err();
        if own { error } else { None }
    }
}

/// The idempotency key of a source object's runs.
pub fn app_id(bucket: &str, key: &str) -> String {
    format!("ingestor:{bucket}/{key}")
}

/// Whether the table holds run `version` of `app_id` (or a later one).
pub(super) async fn committed(
    sink: &DeltaSink,
    table: &DeltaTable,
    app_id: &str,
    version: i64,
) -> Result<bool, DeltaError> {
    let err = |source| DeltaError::Table {
        table: sink.display().to_string(),
        source,
    };
    let state = table.snapshot().map_err(err)?;
    let found = state
        .transaction_version(table.log_store().as_ref(), app_id)
        .await
        .map_err(err)?;
    Ok(found.is_some_and(|v| v >= version))
}

/// One run's write into the table.
struct Run {
    sink: Arc<DeltaSink>,
    table: DeltaTable,
    app_id: String,
    version: i64,
    /// Replace the rows of this (bucket, key): the object was written before.
    replace: Option<(String, String)>,
}

impl Run {
    async fn write(self, plan: LogicalPlan) -> Result<Written, DeltaError> {
        let display = self.sink.display().to_string();
        let err = |source| DeltaError::Table {
            table: display.clone(),
            source,
        };
        if self.replace.is_some() {
            for column in SOURCE_COLUMNS {
                if self.sink.schema.field_with_name(column).is_err() {
                    return Err(DeltaError::Config(
                        "the object was written to the table before, and its rows are replaced by \
                         `source_bucket` and `source_key`, which the transform does not output"
                            .into(),
                    ));
                }
            }
        }
        let snapshot: EagerSnapshot = self.table.snapshot().map_err(err)?.snapshot().clone();
        let commit = CommitProperties::default()
            .with_application_transaction(Transaction::new(&self.app_id, self.version));
        let target = std::num::NonZeroU64::new(self.sink.options.row_group_bytes as u64);
        let mut builder = WriteBuilder::new(self.table.log_store(), Some(snapshot))
            .with_input_plan(plan)
            .with_partition_columns([DATE_COLUMN])
            .with_writer_properties(self.sink.properties())
            .with_target_file_size(target)
            .with_commit_properties(commit);
        if let Some((bucket, key)) = &self.replace {
            let predicate = col(SOURCE_COLUMNS[0])
                .eq(lit(bucket.as_str()))
                .and(col(SOURCE_COLUMNS[1]).eq(lit(key.as_str())));
            builder = builder
                .with_save_mode(SaveMode::Overwrite)
                .with_replace_where(predicate);
        }
        match builder.await {
            Ok(table) => Ok(Written::Committed {
                table_version: table.version().unwrap_or_default() as i64,
            }),
            Err(e) => {
                // A conflict on the run's own key means another writer of the same run
                // committed it (a worker that had lost the object): that is the run's
                // commit, made once.
                let latest = self.sink.latest().await?;
                if committed(&self.sink, &latest, &self.app_id, self.version).await? {
                    Ok(Written::Earlier)
                } else {
                    Err(err(e))
                }
            }
        }
    }
}

/// Reads and drops the transform's output of a run the table already holds.
async fn drain(mut input: mpsc::Receiver<RecordBatch>) -> Result<Written, DeltaError> {
    while input.recv().await.is_some() {}
    Ok(Written::Earlier)
}

/// The writer's result, or why it failed.
async fn finished(
    sink: &DeltaSink,
    writer: JoinHandle<Result<Written, DeltaError>>,
) -> Result<Written, DeltaError> {
    match writer.await {
        Ok(result) => result,
        Err(e) => Err(DeltaError::Stopped {
            table: sink.display().to_string(),
            cause: e.to_string(),
        }),
    }
}
