//! Ingesting one file, from its claim to its outcome.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use crate::cancel::Cancel;
use crate::decode::SourceName;
use crate::events;
use crate::jobs::{self, ChunkCounts, Disposition, Lease, LeaseKeeper, is_connection_error};
use crate::sink::postgres::delete_object_rows;
use crate::source::{ByteCounter, ObjectVersion};

use super::commit;
use super::decode_stage::{self, Isolate, Start};
use super::error::{FatalError, FileError};
use super::read_stage::read_source;
use super::report::{FileReport, Outcome};
use super::task::{FileTask, Ingest};
use super::transform_stage::transform_stage;
use crate::sink::delta::DeltaJob;
use crate::sink::lake::{LakeWrite, LakeWriteError};
use crate::sink::parquet::LakeJob;

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
    let mut waiting = false;
    let (resume, lease) = loop {
        if cancel.is_cancelled() {
            cancel.left(1);
            let outcome = Outcome::Skipped("stopped by a signal before it started".into());
            return Ok(FileReport::new(&task, outcome, started));
        }
        if let Some(claimed) = claim(ingest, &task, force).await.map_err(fatal)? {
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
        cancel.sleep(BUSY_POLL).await;
    };
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
        events::retry();
    }
    let keeper = LeaseKeeper::start(ingest.pool.clone(), lease.clone());
    let mut counts = ChunkCounts::default();
    let result = stream_file(ingest, task, lease, &mut resume, cancel, &mut counts).await;
    let lost = keeper.stop();
    let outcome = match result {
        Ok(()) => Outcome::Completed,
        Err(FileError::LeaseLost) => Outcome::LeaseLost,
        Err(_) if lost => Outcome::LeaseLost,
        Err(FileError::Cancelled) => {
            lease.release(&ingest.pool).await.map_err(fatal)?;
            cancel.left(1);
            Outcome::Skipped("stopped by a signal; released for the next run".into())
        }
        Err(error) => {
            let settings = ingest.settings;
            let connection_lost =
                matches!(&error, FileError::Database(e) if is_connection_error(e));
            let disposition = jobs::disposition(
                lease,
                error.is_permanent(),
                connection_lost,
                settings.retry_after,
                settings.retry_cap,
            );
            let (permanent, retry_after) = match disposition {
                Disposition::Fatal => {
                    let FileError::Database(e) = error else {
                        unreachable!("only a lost database connection is fatal")
                    };
                    return Err(fatal(e));
                }
                Disposition::Permanent => (true, Duration::ZERO),
                Disposition::Retry(after) => (false, after),
            };
            let cause = error.to_string();
            match lease
                .fail(&ingest.pool, &cause, permanent, retry_after)
                .await
            {
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

/// Registers and claims the file; with `force`, forgets its earlier rows in the same
/// transaction. Returns the checkpoint to resume from and the attempt count, None when not
/// eligible.
async fn claim(
    ingest: &Ingest,
    task: &FileTask,
    force: bool,
) -> sqlx::Result<Option<(Resume, Lease)>> {
    jobs::register(&ingest.pool, &task.bucket, &task.key, task.size).await?;
    let mut tx = ingest.pool.begin().await?;
    let (bucket, key, duration) = (&task.bucket, &task.key, ingest.settings.lease);
    let claimed = jobs::claim_one(&mut tx, bucket, key, duration, force, task.size).await?;
    let Some(claimed) = claimed else {
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
    Ok(Some((resume, claimed.lease)))
}

/// Deletes the rows (PostgreSQL sink) and rejected records an object produced before.
async fn forget_rows(
    conn: &mut sqlx::PgConnection,
    ingest: &Ingest,
    bucket: &str,
    key: &str,
) -> sqlx::Result<()> {
    if let Some(plan) = &ingest.postgres {
        delete_object_rows(&mut *conn, plan, bucket, key).await?;
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
        return Err(FileError::CannotStartOver);
    }
    let mut tx = ingest.pool.begin().await?;
    forget_rows(&mut tx, ingest, &lease.bucket, &lease.key).await?;
    if !lease.restart(&mut tx).await? {
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
    let one_piece = ingest.has_lake() || ingest.whole_file();
    if one_piece && resume > 0 {
        restart(ingest, lease).await?;
        resume = 0;
    }
    let mut isolate = None;
    // The chunk start read again once because no partition took one of its rows.
    let mut missing_partition = None;
    loop {
        let start = Start { resume, isolate };
        match stream_once(ingest, task, lease, start, state, cancel, counts).await {
            // A table partitioned by day refused a row with 23514: no partition took it
            // (a retention run dropped its day after this worker saw it; a CHECK
            // constraint answers the same code). The chunk is read again once with the
            // days looked up afresh, which creates the partition if it is missing.
            Err(FileError::RowRefused(refused))
                if refused.code == "23514"
                    && missing_partition != Some(refused.chunk_start)
                    && ingest.partitions.is_some() =>
            {
                tracing::info!(
                    file = %task.display,
                    record = refused.chunk_start + refused.row - 1,
                    error = %refused.message,
                    "a row found no partition: reading its chunk again with the days looked up afresh"
                );
                if let Some(days) = &ingest.partitions {
                    days.forget();
                }
                missing_partition = Some(refused.chunk_start);
                resume = refused.chunk_start;
            }
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
    if !lease.record_version(&ingest.pool, version).await? {
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
    let (mut lake_job, lake_tx) = match (&ingest.lake, &ingest.delta) {
        (Some(lake), _) => {
            let (job, tx) =
                LakeJob::start(Arc::clone(lake), &task.bucket, &task.key, &task.display)?;
            (Some(LakeWrite::Parquet(job)), Some(tx))
        }
        (None, Some(delta)) => {
            let (job, tx) = DeltaJob::start(
                Arc::clone(delta),
                &ingest.pool,
                lease,
                &task.bucket,
                &task.key,
            )
            .await
            .map_err(LakeWriteError::from)?;
            (Some(LakeWrite::Delta(job)), Some(tx))
        }
        (None, None) => (None, None),
    };
    let transform = ingest.plans.take().await?;
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
    let transformed = match transformer.await {
        Ok(transform) => {
            if let Some(transform) = transform {
                ingest.plans.give_back(transform);
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    let panicked = [
        joined("transform", transformed),
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
        (Err(error), Some(job)) => Err(job.error().await.map_or(error, FileError::from)),
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
