//! Ingesting one file, from its claim to its outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use bytes::BytesMut;
use sqlx::PgPool;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::decode::SourceName;
use crate::jobs::{self, ChunkCounts, Lease};
use crate::lake::{Lake, LakeError};
use crate::limit::Limits;
use crate::metrics::{self, METRICS};
use crate::sink::SinkPlan;
use crate::source::{
    ByteCounter, CountingReader, READ_BUFFER_BYTES, SourceRef, decompress, open, read_parquet,
};
use crate::transform::{Transform, TransformError, TransformSql};

use super::Settings;
use super::commit::{self, EncodedPiece};
use super::decode_stage::{self, Decoded, DecodedPiece};
use super::lake_stage::LakeJob;
use crate::buffers::RowsBuffer;

/// Everything the pipeline needs, shared by all files of a pass.
pub struct Ingest {
    pub pool: PgPool,
    pub transform: TransformSql,
    /// The PostgreSQL sink (`--sink postgres`, the default).
    pub postgres: Option<SinkPlan>,
    /// The Parquet sink (`--sink parquet=URL`).
    pub lake: Option<Arc<Lake>>,
    pub settings: Settings,
    pub limits: Arc<Limits>,
}

/// One file to ingest.
#[derive(Debug, Clone)]
pub struct FileTask {
    /// `processed_files.bucket` (`local` for `ingest-file`).
    pub bucket: String,
    /// `processed_files.s3_key` (the canonical path for `ingest-file`).
    pub key: String,
    /// How errors and logs name the file (`s3://bucket/key` or the path).
    pub display: String,
    pub source: SourceRef,
    pub size: Option<u64>,
}

/// How a file ended in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed(String),
    Skipped(String),
    /// Another worker took the file over; our uncommitted chunk was rolled back.
    LeaseLost,
}

/// One file's outcome and what this pass committed of it.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub display: String,
    pub outcome: Outcome,
    pub counts: ChunkCounts,
    pub elapsed: Duration,
}

/// Why a file did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The input cannot be read to its end (the message names the byte offset).
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error("cannot encode rows for COPY: {0}")]
    Encode(#[from] arrow::error::ArrowError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("lease lost: another worker took the file over")]
    LeaseLost,
    #[error("stopped by a signal")]
    Cancelled,
}

/// Errors that end the whole pass (the database is gone), not just one file.
#[derive(Debug, thiserror::Error)]
#[error("{display}: {source}")]
pub struct FatalError {
    pub display: String,
    #[source]
    pub source: sqlx::Error,
}

/// True for errors of the connection rather than of the data.
fn is_connection_error(error: &sqlx::Error) -> bool {
    !matches!(
        error,
        sqlx::Error::Database(_) | sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_)
    )
}

/// Ingests one file: claims it, streams it into the target table chunk by chunk, and marks
/// it COMPLETED or FAILED. Returns Err only when the database itself is unusable.
pub async fn ingest_file(
    ingest: &Ingest,
    task: FileTask,
    force: bool,
) -> Result<FileReport, FatalError> {
    let started = Instant::now();
    let fatal = |source| FatalError {
        display: task.display.clone(),
        source,
    };
    let lease = Lease {
        bucket: task.bucket.clone(),
        key: task.key.clone(),
        token: Uuid::new_v4(),
        duration: ingest.settings.lease,
        attempts: 1,
    };
    let Some((resume, attempts)) = claim(ingest, &task, &lease, force).await.map_err(fatal)? else {
        let status = jobs::status(&ingest.pool, &task.bucket, &task.key)
            .await
            .map_err(fatal)?;
        let reason = match status.as_deref() {
            Some("COMPLETED") => "already COMPLETED (use --force to ingest it again)",
            _ => "being processed by another worker",
        };
        return Ok(FileReport {
            display: task.display.clone(),
            outcome: Outcome::Skipped(reason.into()),
            counts: ChunkCounts::default(),
            elapsed: started.elapsed(),
        });
    };
    let lease = Lease { attempts, ..lease };
    process_claimed(ingest, &task, &lease, resume, &Cancel::default()).await
}

/// Streams a file this worker has claimed (`lease`), from checkpoint `resume`, and records
/// its outcome. Returns Err only when the database itself is unusable.
pub async fn process_claimed(
    ingest: &Ingest,
    task: &FileTask,
    lease: &Lease,
    resume: u64,
    cancel: &Cancel,
) -> Result<FileReport, FatalError> {
    let started = Instant::now();
    let fatal = |source| FatalError {
        display: task.display.clone(),
        source,
    };
    if lease.attempts > 1 {
        metrics::add(&METRICS.retries, 1);
    }
    let heartbeat = Heartbeat::start(ingest.pool.clone(), lease.clone());
    let mut counts = ChunkCounts::default();
    let result = stream_file(ingest, task, lease, resume, cancel, &mut counts).await;
    let lost = heartbeat.stop();
    let outcome = match result {
        Ok(()) => Outcome::Completed,
        Err(FileError::LeaseLost) => Outcome::LeaseLost,
        Err(_) if lost => Outcome::LeaseLost,
        Err(FileError::Cancelled) => {
            jobs::release(&ingest.pool, lease).await.map_err(fatal)?;
            Outcome::Skipped("stopped by a signal; released for the next run".into())
        }
        Err(FileError::Database(e)) if is_connection_error(&e) => return Err(fatal(e)),
        Err(error) => {
            let cause = error.to_string();
            let settings = ingest.settings;
            let retry_after = jobs::backoff(
                settings.retry_after,
                settings.retry_cap,
                lease.attempts,
                lease.token,
            );
            match jobs::fail(&ingest.pool, lease, &cause, retry_after).await {
                Ok(true) => Outcome::Failed(cause),
                Ok(false) => Outcome::LeaseLost,
                Err(e) => return Err(fatal(e)),
            }
        }
    };
    Ok(FileReport {
        display: task.display.clone(),
        outcome,
        counts,
        elapsed: started.elapsed(),
    })
}

/// Set when the process is asked to stop: files stop between chunks and release their lease.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Registers and claims the file; with `force`, forgets its earlier rows in the same
/// transaction. Returns the checkpoint to resume from and the attempt count, None when not
/// eligible.
async fn claim(
    ingest: &Ingest,
    task: &FileTask,
    lease: &Lease,
    force: bool,
) -> sqlx::Result<Option<(u64, i32)>> {
    jobs::register(&ingest.pool, &task.bucket, &task.key, task.size).await?;
    let mut tx = ingest.pool.begin().await?;
    let Some(claimed) = jobs::claim_one(&mut tx, lease, force, task.size).await? else {
        tx.rollback().await?;
        return Ok(None);
    };
    if force {
        forget_rows(&mut tx, ingest, &task.bucket, &task.key).await?;
    }
    tx.commit().await?;
    Ok(Some((claimed.checkpoint, claimed.attempts)))
}

/// Deletes the rows (PostgreSQL sink) and rejected records an object produced before.
async fn forget_rows(
    conn: &mut sqlx::PgConnection,
    ingest: &Ingest,
    bucket: &str,
    key: &str,
) -> sqlx::Result<()> {
    if let Some(plan) = &ingest.postgres {
        let delete = format!(
            "DELETE FROM {} WHERE source_bucket = $1 AND source_key = $2",
            plan.table.quoted
        );
        sqlx::query(sqlx::AssertSqlSafe(delete))
            .bind(bucket)
            .bind(key)
            .execute(&mut *conn)
            .await?;
    }
    jobs::delete_rejects(conn, bucket, key).await
}

/// With a Parquet sink a file is written in one piece: a file an earlier run left at a
/// checkpoint starts over, its committed rows and rejects deleted in the same transaction.
async fn restart(ingest: &Ingest, lease: &Lease) -> Result<(), FileError> {
    if ingest
        .postgres
        .as_ref()
        .is_some_and(|p| !p.has_source_columns)
    {
        return Err(FileError::Input(
            "cannot start the file over for the Parquet sink: an earlier run committed part \
             of it, and the table has no source_bucket/source_key columns to find those rows"
                .into(),
        ));
    }
    let mut tx = ingest.pool.begin().await?;
    forget_rows(&mut tx, ingest, &lease.bucket, &lease.key).await?;
    if !jobs::restart(&mut tx, lease).await? {
        return Err(FileError::LeaseLost);
    }
    tx.commit().await?;
    Ok(())
}

/// Runs the stages for one claimed file and commits its chunks.
async fn stream_file(
    ingest: &Ingest,
    task: &FileTask,
    lease: &Lease,
    mut resume: u64,
    cancel: &Cancel,
    counts: &mut ChunkCounts,
) -> Result<(), FileError> {
    let settings = ingest.settings;
    if ingest.lake.is_some() && resume > 0 {
        restart(ingest, lease).await?;
        resume = 0;
    }
    let (mut lake_job, lake_tx) = match &ingest.lake {
        Some(lake) => {
            let (job, tx) = LakeJob::start(Arc::clone(lake), task)?;
            (Some(job), Some(tx))
        }
        None => (None, None),
    };
    let transform = Transform::plan(&ingest.transform, settings.batch_records).await?;
    let compressed = ByteCounter::default();
    let (bytes_tx, bytes_rx) = mpsc::channel(4);
    let (decoded_tx, decoded_rx) = mpsc::channel(1);
    let (encoded_tx, mut encoded_rx) = mpsc::channel(1);

    let limits = Arc::clone(&ingest.limits);
    let reader = tokio::spawn(read_source(
        task.source.clone(),
        compressed.clone(),
        limits,
        bytes_tx,
    ));
    let name = SourceName {
        bucket: task.bucket.as_str().into(),
        key: task.key.as_str().into(),
    };
    let decoder = tokio::task::spawn_blocking(move || {
        decode_stage::run(bytes_rx, decoded_tx, name, resume, settings, compressed)
    });
    let sink = ingest.postgres.clone();
    let transformer = tokio::spawn(transform_stage(
        transform, sink, lake_tx, decoded_rx, encoded_tx,
    ));

    let result = async {
        let completion = commit::commit_chunks(
            ingest,
            lease,
            cancel,
            &mut encoded_rx,
            counts,
            &mut lake_job,
        )
        .await?;
        match completion {
            commit::Completion::WithLastChunk => Ok(()),
            commit::Completion::Pending => {
                commit::complete(&ingest.pool, lease, lake_job.take()).await
            }
        }
    }
    .await;
    // Dropping the receiver stops the stages early on error.
    drop(encoded_rx);
    let _ = transformer.await;
    let _ = decoder.await;
    let _ = reader.await;
    match (result, lake_job) {
        // The Parquet writer's own error explains why the pipeline stopped.
        (Err(error), Some(job)) => Err(job.error().await.map_or(error, FileError::Lake)),
        (result, _) => result,
    }
}

/// Reads the object, decompressed, into `out` in buffers of up to `READ_BUFFER_BYTES`.
pub(super) async fn read_source(
    source: SourceRef,
    compressed: ByteCounter,
    limits: Arc<Limits>,
    out: mpsc::Sender<std::io::Result<bytes::Bytes>>,
) {
    let result: std::io::Result<()> = async {
        if source.is_parquet() {
            return read_parquet(&source, &compressed, &limits, &out).await;
        }
        let raw = open(&source).await?;
        let counter = compressed.clone();
        let mut reader = decompress(Box::new(CountingReader::new(raw, counter))).await?;
        let mut charged = 0;
        loop {
            let read = compressed.get();
            limits.take_bytes(read - charged).await;
            charged = read;
            let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
            while buffer.len() < READ_BUFFER_BYTES {
                if reader.read_buf(&mut buffer).await? == 0 {
                    break;
                }
            }
            if buffer.is_empty() {
                return Ok(());
            }
            if out.send(Ok(buffer.freeze())).await.is_err() {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        let _ = out.send(Err(e)).await;
    }
}

/// Runs each decoded piece through the transform, hands its rows to the Parquet writer and
/// encodes them for COPY.
async fn transform_stage(
    mut transform: Transform,
    sink: Option<SinkPlan>,
    lake: Option<mpsc::Sender<RecordBatch>>,
    mut input: mpsc::Receiver<Decoded>,
    out: mpsc::Sender<Result<EncodedPiece, FileError>>,
) {
    while let Some(decoded) = input.recv().await {
        let result = match decoded {
            Decoded::Piece(piece) => {
                encode_piece(&mut transform, sink.as_ref(), lake.as_ref(), piece).await
            }
            Decoded::Fault(cause) => Err(FileError::Input(cause)),
        };
        let stop = result.is_err();
        if out.send(result).await.is_err() || stop {
            return;
        }
    }
}

async fn encode_piece(
    transform: &mut Transform,
    sink: Option<&SinkPlan>,
    lake: Option<&mpsc::Sender<RecordBatch>>,
    piece: DecodedPiece,
) -> Result<EncodedPiece, FileError> {
    let input_rows = piece.batch.as_ref().map_or(0, |b| b.num_rows() as u64);
    // COPY rows are about twice the JSON they come from (raw_data plus the columns taken
    // from it): reserve once instead of growing by doubling on the hot path.
    let json_bytes = piece.batch.as_ref().map_or(0, raw_json_bytes);
    let batches = match piece.batch {
        Some(batch) => transform.run(vec![batch]).await?,
        None => Vec::new(),
    };
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if let Some(lake) = lake {
        for batch in &batches {
            lake.send(batch.clone())
                .await
                .map_err(|_| FileError::Lake(LakeError::Stopped))?;
        }
    }
    let mut rows_data = RowsBuffer::default();
    if let Some(sink) = sink {
        rows_data = RowsBuffer::with_capacity(json_bytes * 2);
        for batch in &batches {
            sink.encoder.encode(batch, rows_data.as_mut_vec())?;
        }
    }
    Ok(EncodedPiece {
        rows_data,
        counts: ChunkCounts {
            ingested: rows,
            rejected: piece.rejects.len() as u64,
            filtered: input_rows.saturating_sub(rows),
        },
        rejects: piece.rejects,
        next_checkpoint: piece.next_checkpoint,
        end_of_chunk: piece.end_of_chunk,
    })
}

/// Bytes of JSON in a RAW batch (its `_raw` column).
fn raw_json_bytes(batch: &arrow::record_batch::RecordBatch) -> usize {
    use arrow::array::AsArray;
    batch
        .column_by_name(crate::decode::raw::RAW)
        .map_or(0, |raw| raw.as_string::<i32>().values().len())
}

/// Renews the lease while a file is processed.
struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    lost: Arc<AtomicBool>,
}

impl Heartbeat {
    fn start(pool: PgPool, lease: Lease) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&lost);
        let every = lease.duration / 3;
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match jobs::renew(&pool, &lease).await {
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

    /// Stops the heartbeat; true when it saw the lease lost.
    fn stop(self) -> bool {
        self.task.abort();
        self.lost.load(Ordering::SeqCst)
    }
}
