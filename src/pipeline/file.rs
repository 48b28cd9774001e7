//! Ingesting one file, from its claim to its outcome.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use bytes::BytesMut;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::decode::SourceName;
use crate::jobs::{self, ChunkCounts, Lease, is_connection_error};
use crate::lake::{Lake, LakeError};
use crate::limit::Limits;
use crate::metrics::{self, METRICS};
use crate::sink::SinkPlan;
use crate::source::{
    self, ByteCounter, CountingReader, ObjectVersion, READ_BUFFER_BYTES, SourceRef, decompress,
    open, read_parquet,
};
use crate::transform::{FileInput, PlanKind, Transform, TransformError, TransformSql};

use super::Settings;
use super::commit::{self, Encoded, EncodedPiece, Lone, RefusedRow};
use super::decode_stage::{self, Decoded, DecodedPiece};
use super::decode_stage::{Isolate, Start};
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
    /// How the transform runs over a file (row-wise, or once per file).
    pub kind: PlanKind,
}

impl Ingest {
    /// The transform runs once per file: a file is one transaction, its output committed
    /// with its completion.
    pub fn whole_file(&self) -> bool {
        self.kind.is_whole_file()
    }

    /// Where this run writes, as jobs record it when they complete: `postgres:<table>`
    /// and `parquet:<url>`. An object COMPLETED for other destinations is not silently
    /// taken as done (see `jobs::other_destinations`).
    pub fn destinations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(plan) = &self.postgres {
            out.push(format!("postgres:{}", plan.table.quoted));
        }
        if let Some(lake) = &self.lake {
            out.push(format!("parquet:{}", lake.display()));
        }
        out
    }
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
    /// Another worker holds the file and `--no-wait` was given: not done.
    Busy(String),
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
    /// The object was ingested again as a new version, its old rows replaced.
    pub replaced: bool,
}

impl FileReport {
    fn new(task: &FileTask, outcome: Outcome, started: Instant) -> Self {
        Self {
            display: task.display.clone(),
            outcome,
            counts: ChunkCounts::default(),
            elapsed: started.elapsed(),
            replaced: false,
        }
    }
}

/// Why a file did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The input cannot be read to its end (the message names the byte offset): the bytes
    /// of this version are bad.
    #[error("{0}")]
    Input(String),
    /// The input could not be read further because of a network or storage fault: a later
    /// attempt may read it.
    #[error("{0}")]
    Read(String),
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
    /// The database refused a row of a chunk (a constraint, a trigger): the chunk is read
    /// again with the suspect record alone, which is then rejected.
    #[error("the database refused the row of record {} or a later one: {}", .0.chunk_start + .0.row - 1, .0.message)]
    RowRefused(RefusedRow),
    /// A stage of the pipeline failed or stopped early (a bug, never the data): the
    /// attempt fails, and nothing after the last committed chunk counts as read.
    #[error("internal: {0}")]
    Stage(String),
}

impl FileError {
    /// True when no retry of the same version can succeed: corrupt or truncated data, an
    /// object that no longer exists, a transform or encoding error, a row refused in a file
    /// that is one transaction. Network, storage and database faults are transient.
    pub fn is_permanent(&self) -> bool {
        match self {
            FileError::Input(_)
            | FileError::Transform(_)
            | FileError::Encode(_)
            | FileError::RowRefused(_) => true,
            FileError::Read(_)
            | FileError::Database(_)
            | FileError::Lake(_)
            | FileError::LeaseLost
            | FileError::Cancelled
            | FileError::Stage(_) => false,
        }
    }
}

/// Errors that end the whole pass (the database is gone), not just one file.
#[derive(Debug, thiserror::Error)]
#[error("{display}: {source}")]
pub struct FatalError {
    pub display: String,
    #[source]
    pub source: sqlx::Error,
    /// The claim held when the database failed, to give back once it answers again.
    pub lease: Option<Lease>,
}

/// Ingests one file: claims it, streams it into the target table chunk by chunk, and marks
/// it COMPLETED or FAILED. Returns Err only when the database itself is unusable. A file
/// another worker holds is waited for (its lease ends or it completes).
pub async fn ingest_file(
    ingest: &Ingest,
    task: FileTask,
    force: bool,
) -> Result<FileReport, FatalError> {
    let options = FileOptions { force, wait: true };
    ingest_file_with(ingest, task, options, &Cancel::default()).await
}

/// How `ingest-file` takes a file.
#[derive(Debug, Clone, Copy)]
pub struct FileOptions {
    /// Ingest a COMPLETED file again, replacing its rows.
    pub force: bool,
    /// Wait for a file another worker holds (else report it busy).
    pub wait: bool,
}

/// How often a file held by another worker is tried again while waiting for it.
const BUSY_POLL: Duration = Duration::from_millis(500);

/// [`ingest_file`] with options, stopping between chunks when `cancel` is set.
pub async fn ingest_file_with(
    ingest: &Ingest,
    task: FileTask,
    options: FileOptions,
    cancel: &Cancel,
) -> Result<FileReport, FatalError> {
    let force = options.force;
    let started = Instant::now();
    let fatal = |source| FatalError {
        display: task.display.clone(),
        source,
        lease: None,
    };
    let lease = Lease {
        bucket: task.bucket.clone(),
        key: task.key.clone(),
        token: Uuid::new_v4(),
        duration: ingest.settings.lease,
        attempts: 1,
    };
    let mut waiting = false;
    let (resume, attempts) = loop {
        if cancel.is_cancelled() {
            cancel.left(1);
            let outcome = Outcome::Skipped("stopped by a signal before it started".into());
            return Ok(FileReport::new(&task, outcome, started));
        }
        if let Some(claimed) = claim(ingest, &task, &lease, force).await.map_err(fatal)? {
            break claimed;
        }
        let status = jobs::status(&ingest.pool, &task.bucket, &task.key)
            .await
            .map_err(fatal)?;
        if status.as_deref() == Some("COMPLETED") {
            let reason = if waiting {
                "COMPLETED by another worker"
            } else {
                "already COMPLETED (use --force to ingest it again)"
            };
            return Ok(FileReport::new(
                &task,
                Outcome::Skipped(reason.into()),
                started,
            ));
        }
        if !options.wait {
            let outcome = Outcome::Busy("another worker holds it (--no-wait)".into());
            return Ok(FileReport::new(&task, outcome, started));
        }
        if !waiting {
            tracing::info!(file = %task.display, "another worker holds the file: waiting for it to finish or for its lease to expire");
            waiting = true;
        }
        tokio::time::sleep(BUSY_POLL).await;
    };
    let lease = Lease { attempts, ..lease };
    process_claimed(ingest, &task, &lease, resume, cancel).await
}

/// Streams a file this worker has claimed (`lease`), from checkpoint `resume`, and records
/// its outcome. Returns Err only when the database itself is unusable.
pub async fn process_claimed(
    ingest: &Ingest,
    task: &FileTask,
    lease: &Lease,
    mut resume: Resume,
    cancel: &Cancel,
) -> Result<FileReport, FatalError> {
    let started = Instant::now();
    let fatal = |source| FatalError {
        display: task.display.clone(),
        source,
        lease: Some(lease.clone()),
    };
    if lease.attempts > 1 {
        metrics::add(&METRICS.retries, 1);
    }
    let heartbeat = Heartbeat::start(ingest.pool.clone(), lease.clone());
    let mut counts = ChunkCounts::default();
    let result = stream_file(ingest, task, lease, &mut resume, cancel, &mut counts).await;
    let lost = heartbeat.stop();
    let outcome = match result {
        Ok(()) => Outcome::Completed,
        Err(FileError::LeaseLost) => Outcome::LeaseLost,
        Err(_) if lost => Outcome::LeaseLost,
        Err(FileError::Cancelled) => {
            jobs::release(&ingest.pool, lease).await.map_err(fatal)?;
            cancel.left(1);
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
            let permanent = error.is_permanent();
            match jobs::fail(&ingest.pool, lease, &cause, permanent, retry_after).await {
                Ok(true) => Outcome::Failed(cause),
                Ok(false) => Outcome::LeaseLost,
                Err(e) => return Err(fatal(e)),
            }
        }
    };
    Ok(FileReport {
        display: task.display.clone(),
        replaced: resume.replaced && outcome == Outcome::Completed,
        outcome,
        counts,
        elapsed: started.elapsed(),
    })
}

/// Where a claimed file stands, from its claim.
#[derive(Debug, Clone, Default)]
pub struct Resume {
    /// Records committed so far: the first source index to read.
    pub checkpoint: u64,
    /// The version whose records the checkpoint counts (`ObjectVersion::id`).
    pub version: Option<String>,
    /// The object must start over whatever its checkpoint (a new version was found).
    pub start_over: bool,
    /// This attempt started the object over because it changed.
    pub replaced: bool,
}

impl Resume {
    pub fn at(checkpoint: u64) -> Self {
        Self {
            checkpoint,
            ..Self::default()
        }
    }
}

/// Set when the process is asked to stop: files stop between chunks and release their lease.
/// Remembers the signal (for the exit status, 128 + its number) and whether it cut work
/// short (a file released, or not started).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: AtomicBool,
    signal: std::sync::atomic::AtomicI32,
    cut_short: std::sync::atomic::AtomicU64,
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
    }

    /// Cancels because of signal number `signal` (2 SIGINT, 15 SIGTERM).
    pub fn cancel_by(&self, signal: i32) {
        self.0.signal.store(signal, Ordering::SeqCst);
        self.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Counts `n` files the stop left undone (released, or never started).
    pub fn left(&self, n: u64) {
        self.0.cut_short.fetch_add(n, Ordering::SeqCst);
    }

    /// Files the stop left undone so far.
    pub fn files_left(&self) -> u64 {
        self.0.cut_short.load(Ordering::SeqCst)
    }

    /// The exit status a signal that cut work short asks for: 130 (SIGINT), 143 (SIGTERM).
    pub fn exit_code(&self) -> Option<i32> {
        let signal = self.0.signal.load(Ordering::SeqCst);
        (self.is_cancelled() && signal > 0).then_some(128 + signal)
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
) -> sqlx::Result<Option<(Resume, i32)>> {
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
    let resume = Resume {
        checkpoint: claimed.checkpoint,
        version: claimed.version,
        start_over: claimed.start_over,
        replaced: false,
    };
    Ok(Some((resume, claimed.attempts)))
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
            "cannot start the object over (it changed since part of it was committed, or \
             the Parquet sink needs it whole): the table has no source_bucket/source_key \
             columns to find the rows committed before"
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

/// Runs the stages for one claimed file and commits its chunks. When the database refuses
/// a row, the stream starts again at the refused chunk with the suspect record alone in a
/// chunk (see [`commit::commit_chunks`]); every such round moves the checkpoint on.
async fn stream_file(
    ingest: &Ingest,
    task: &FileTask,
    lease: &Lease,
    state: &mut Resume,
    cancel: &Cancel,
    counts: &mut ChunkCounts,
) -> Result<(), FileError> {
    let mut resume = state.checkpoint;
    // A file that is one transaction starts over if an earlier run (with another transform
    // or sink) left it at a checkpoint.
    let one_piece = ingest.lake.is_some() || ingest.whole_file();
    if one_piece && resume > 0 {
        restart(ingest, lease).await?;
        resume = 0;
    }
    let mut isolate = None;
    loop {
        let start = Start { resume, isolate };
        match stream_once(ingest, task, lease, start, state, cancel, counts).await {
            // A file written to a lake, or by a whole-file plan, is one transaction: it
            // cannot be cut around a row.
            Err(FileError::RowRefused(refused)) if !one_piece => {
                let suspect = Some(Isolate(refused.chunk_start + refused.row - 1));
                if (refused.chunk_start, suspect) == (resume, isolate) {
                    // The same round again would not move on.
                    return Err(FileError::RowRefused(refused));
                }
                tracing::info!(
                    file = %task.display,
                    record = refused.chunk_start + refused.row - 1,
                    error = %refused.message,
                    "the database refused a row: reading its chunk again to set it apart"
                );
                resume = refused.chunk_start;
                isolate = suspect;
            }
            result => return result,
        }
    }
}

/// Pins the attempt to the version it reads: when records of another version were
/// committed (or discovery marked the object replaced), the object starts over, its rows
/// and rejects deleted in the same transaction. Returns the checkpoint to resume from.
async fn pin_version(
    ingest: &Ingest,
    lease: &Lease,
    state: &mut Resume,
    version: &ObjectVersion,
    resume: u64,
) -> Result<u64, FileError> {
    let id = version.id();
    let changed = resume > 0 && state.version.as_ref().is_some_and(|old| *old != id);
    let resume = if changed || state.start_over {
        if resume > 0 || state.start_over {
            tracing::info!(file = %lease.key, version = %id, "the object changed: starting it over");
            restart(ingest, lease).await?;
            state.replaced = true;
        }
        state.start_over = false;
        0
    } else {
        resume
    };
    if !jobs::record_version(&ingest.pool, lease, version).await? {
        return Err(FileError::LeaseLost);
    }
    state.version = Some(id);
    Ok(resume)
}

/// One stream of the file from `resume` to its end (or first error).
async fn stream_once(
    ingest: &Ingest,
    task: &FileTask,
    lease: &Lease,
    Start {
        mut resume,
        isolate,
    }: Start,
    state: &mut Resume,
    cancel: &Cancel,
    counts: &mut ChunkCounts,
) -> Result<(), FileError> {
    let mut settings = ingest.settings;
    if ingest.whole_file() {
        // The plan sees the whole file in one execution: one chunk, still streamed.
        settings.chunk_records = usize::MAX;
        settings.chunk_bytes = usize::MAX;
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
    let (version_tx, version_rx) = oneshot::channel();
    let reader = tokio::spawn(read_source(
        task.source.clone(),
        compressed.clone(),
        limits,
        bytes_tx,
        Some(version_tx),
    ));
    // Each attempt reads one version: records committed from another version are
    // forgotten first (the object starts over), never continued.
    if let Ok(version) = version_rx.await {
        resume = pin_version(ingest, lease, state, &version, resume).await?;
    }
    let name = SourceName {
        bucket: task.bucket.as_str().into(),
        key: task.key.as_str().into(),
    };
    let decoder = tokio::task::spawn_blocking(move || {
        decode_stage::run(
            bytes_rx, decoded_tx, name, resume, isolate, settings, compressed,
        )
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
            Start { resume, isolate },
        )
        .await?;
        match completion {
            commit::Completion::WithLastChunk => Ok(()),
            commit::Completion::Pending => commit::complete(ingest, lease, lake_job.take()).await,
        }
    }
    .await;
    // Dropping the receiver stops the stages early on error.
    drop(encoded_rx);
    // A stage that panicked explains why the stream stopped early.
    let panicked = [
        joined("transform", transformer.await),
        joined("decode", decoder.await),
        joined("read", reader.await),
    ]
    .into_iter()
    .flatten()
    .next();
    let result = match (result, panicked) {
        (Err(_), Some(panic)) => Err(panic),
        (result, _) => result,
    };
    match (result, lake_job) {
        // The Parquet writer's own error explains why the pipeline stopped.
        (Err(error), Some(job)) => Err(job.error().await.map_or(error, FileError::Lake)),
        (result, _) => result,
    }
}

/// The error of a stage task that panicked or was cancelled, if it did.
fn joined(stage: &str, result: Result<(), tokio::task::JoinError>) -> Option<FileError> {
    let error = result.err()?;
    let cause = match error.try_into_panic() {
        Ok(panic) => panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into()),
        Err(error) => error.to_string(),
    };
    Some(FileError::Stage(format!(
        "the {stage} stage failed: {cause}"
    )))
}

/// Reads the object, decompressed, into `out` in buffers of up to `READ_BUFFER_BYTES`;
/// the version being read goes to `version` first (dropped when the object cannot be
/// opened: the error follows on `out`).
pub(super) async fn read_source(
    source: SourceRef,
    compressed: ByteCounter,
    limits: Arc<Limits>,
    out: mpsc::Sender<std::io::Result<bytes::Bytes>>,
    version: Option<oneshot::Sender<ObjectVersion>>,
) {
    let result: std::io::Result<()> = async {
        if source.is_parquet() {
            let current = source::version(&source).await?;
            if let Some(version) = version {
                let _ = version.send(current);
            }
            return read_parquet(&source, &compressed, &limits, &out).await;
        }
        let (raw, current) = open(&source).await.map_err(gone)?;
        if let Some(version) = version {
            let _ = version.send(current);
        }
        let counter = compressed.clone();
        let mut reader = decompress(Box::new(CountingReader::new(raw, counter))).await?;
        let mut charged = 0;
        loop {
            let read = compressed.get();
            limits.take_bytes(read - charged).await;
            charged = read;
            let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
            let (mut fault, mut end) = (None, false);
            while buffer.len() < READ_BUFFER_BYTES {
                match reader.read_buf(&mut buffer).await {
                    Ok(0) => {
                        end = true;
                        break;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        fault = Some(e);
                        break;
                    }
                }
            }
            // What was decoded before a fault (a truncated gzip, a bad CRC) goes on first:
            // every complete record in it is kept.
            if !buffer.is_empty() && out.send(Ok(buffer.freeze())).await.is_err() {
                return Ok(());
            }
            if let Some(e) = fault {
                return Err(e);
            }
            if end {
                return Ok(());
            }
        }
    }
    .await;
    if let Err(e) = result {
        let _ = out.send(Err(e)).await;
    }
}

/// An object (or file) that is not there any more is named as such: a permanent fault, not
/// retried until a new version appears or `jobs retry`.
fn gone(error: std::io::Error) -> std::io::Error {
    let missing = error.kind() == std::io::ErrorKind::NotFound
        || error
            .get_ref()
            .and_then(|e| e.downcast_ref::<object_store::Error>())
            .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. }));
    if !missing {
        return error;
    }
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!("object no longer exists ({error})"),
    )
}

/// Runs each decoded piece through the transform, hands its rows to the Parquet writer and
/// encodes them for COPY. A whole-file plan runs once over the file instead
/// ([`whole_file_stage`]).
pub(super) async fn transform_stage(
    mut transform: Transform,
    sink: Option<SinkPlan>,
    lake: Option<mpsc::Sender<RecordBatch>>,
    mut input: mpsc::Receiver<Decoded>,
    out: mpsc::Sender<Result<Encoded, FileError>>,
) {
    if transform.kind().is_whole_file() {
        return whole_file_stage(transform, sink, lake, input, out).await;
    }
    loop {
        let result = match input.recv().await {
            Some(Decoded::Piece(piece)) => {
                encode_piece(&mut transform, sink.as_ref(), lake.as_ref(), piece)
                    .await
                    .map(Encoded::Piece)
            }
            Some(Decoded::Fault(fault)) => Err(fault_error(fault)),
            Some(Decoded::End) => Ok(Encoded::End),
            None => Err(decode_stopped()),
        };
        let stop = !matches!(result, Ok(Encoded::Piece(_)));
        if out.send(result).await.is_err() || stop {
            return;
        }
    }
}

fn fault_error(fault: decode_stage::Fault) -> FileError {
    if fault.permanent {
        FileError::Input(fault.cause)
    } else {
        FileError::Read(fault.cause)
    }
}

fn decode_stopped() -> FileError {
    FileError::Stage("the decode stage stopped before the end of the file".into())
}

/// Runs a whole-file plan: the file's batches stream into its one execution (see
/// [`feed_file`]), while the plan's rows are encoded as they come out, all in the file's
/// one chunk. The chunk closes once the whole input was read and the plan has finished. A
/// file that cannot be read to its end commits nothing of the plan's output, which would be
/// the output of part of the file.
async fn whole_file_stage(
    mut transform: Transform,
    sink: Option<SinkPlan>,
    lake: Option<mpsc::Sender<RecordBatch>>,
    input: mpsc::Receiver<Decoded>,
    out: mpsc::Sender<Result<Encoded, FileError>>,
) {
    let (feed, mut output) = match transform.start_file() {
        Ok(started) => started,
        Err(e) => {
            let _ = out.send(Err(e.into())).await;
            return;
        }
    };
    let (end_tx, end_rx) = oneshot::channel();
    let feeder = tokio::spawn(feed_file(input, feed, out.clone(), end_tx));
    let drained: Result<(), FileError> = async {
        while let Some(batch) = output.next().await {
            let batch = batch?;
            let (rows_data, rows) = encode_rows(sink.as_ref(), lake.as_ref(), &[batch], 0).await?;
            let piece = EncodedPiece {
                rows_data,
                counts: ChunkCounts {
                    ingested: rows,
                    ..ChunkCounts::default()
                },
                ..EncodedPiece::default()
            };
            if out.send(Ok(Encoded::Piece(piece))).await.is_err() {
                break;
            }
        }
        Ok(())
    }
    .await;
    // Whatever the plan did not read of its input (a LIMIT) is read on, for its rejects
    // and the file's end.
    drop(output);
    if let Err(error) = drained {
        feeder.abort();
        let _ = out.send(Err(error)).await;
        return;
    }
    // No end: the feeder reported why the input stopped.
    let Ok(end) = end_rx.await else { return };
    let last = EncodedPiece {
        next_checkpoint: end,
        end_of_chunk: true,
        ..EncodedPiece::default()
    };
    if out.send(Ok(Encoded::Piece(last))).await.is_ok() {
        let _ = out.send(Ok(Encoded::End)).await;
    }
}

/// Feeds the file's RAW batches into a whole-file plan, and sends each piece's rejects and
/// record count on to the file's chunk. At the end of the input, `end` gets the file's
/// last checkpoint; on a fault the error goes on instead and `end` is dropped.
async fn feed_file(
    mut input: mpsc::Receiver<Decoded>,
    feed: FileInput,
    out: mpsc::Sender<Result<Encoded, FileError>>,
    end: oneshot::Sender<u64>,
) {
    let mut feed = Some(feed);
    let mut checkpoint = 0;
    loop {
        let piece = match input.recv().await {
            Some(Decoded::Piece(piece)) => piece,
            Some(Decoded::End) => {
                drop(feed);
                let _ = end.send(checkpoint);
                return;
            }
            Some(Decoded::Fault(fault)) => {
                let _ = out.send(Err(fault_error(fault))).await;
                return;
            }
            None => {
                let _ = out.send(Err(decode_stopped())).await;
                return;
            }
        };
        checkpoint = piece.next_checkpoint;
        let read = piece.batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        if let (Some(batch), Some(plan)) = (piece.batch, &feed)
            && plan.send(batch).await.is_err()
        {
            // The plan needs no more input (a LIMIT was reached).
            feed = None;
        }
        if read == 0 && piece.rejects.is_empty() {
            continue;
        }
        let counts = ChunkCounts {
            read,
            rejected: piece.rejects.len() as u64,
            ..ChunkCounts::default()
        };
        let meta = EncodedPiece {
            rejects: piece.rejects,
            counts,
            ..EncodedPiece::default()
        };
        if out.send(Ok(Encoded::Piece(meta))).await.is_err() {
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
    let lone = piece.batch.as_ref().and_then(lone_record);
    let batches = match piece.batch {
        Some(batch) => transform.run(vec![batch]).await?,
        None => Vec::new(),
    };
    let (rows_data, rows) = encode_rows(sink, lake, &batches, json_bytes * 2).await?;
    Ok(EncodedPiece {
        rows_data,
        counts: ChunkCounts {
            ingested: rows,
            rejected: piece.rejects.len() as u64,
            filtered: input_rows.saturating_sub(rows),
            read: input_rows,
        },
        rejects: piece.rejects,
        next_checkpoint: piece.next_checkpoint,
        end_of_chunk: piece.end_of_chunk,
        lone,
    })
}

/// Hands the transform's rows to the Parquet writer and encodes them for COPY (into a
/// buffer of `reserve` bytes first). Returns the COPY data and the number of rows.
async fn encode_rows(
    sink: Option<&SinkPlan>,
    lake: Option<&mpsc::Sender<RecordBatch>>,
    batches: &[RecordBatch],
    reserve: usize,
) -> Result<(RowsBuffer, u64), FileError> {
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if let Some(lake) = lake {
        for batch in batches {
            lake.send(batch.clone())
                .await
                .map_err(|_| FileError::Lake(LakeError::Stopped))?;
        }
    }
    let mut rows_data = RowsBuffer::default();
    if let Some(sink) = sink {
        rows_data = RowsBuffer::with_capacity(reserve);
        for batch in batches {
            sink.encoder.encode(batch, rows_data.as_mut_vec())?;
        }
    }
    Ok((rows_data, rows))
}

/// The record of a RAW batch of one record.
fn lone_record(batch: &RecordBatch) -> Option<Lone> {
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;
    if batch.num_rows() != 1 {
        return None;
    }
    let raw = batch.column_by_name(crate::decode::raw::RAW)?;
    let index = batch.column_by_name("_source_index")?;
    Some(Lone {
        index: index.as_primitive_opt::<Int64Type>()?.value(0) as u64,
        raw: raw.as_string_opt::<i32>()?.value(0).to_string(),
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
