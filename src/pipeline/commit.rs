//! The chunk transaction: the only place where rows reach the target table.
//!
//! A chunk streams in piece by piece (one encoded batch each) into an open COPY; when its
//! last piece has arrived, the checkpoint is advanced (guarded by the lease token: zero rows
//! means another worker owns the file, and the whole chunk rolls back), its rejected records
//! are stored, and everything commits at once.

use std::time::Instant;

use sqlx::postgres::PgCopyIn;
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc::Receiver;

use crate::decode::Reject;
use crate::jobs::{self, ChunkCounts, Lease};
use crate::metrics::{self, METRICS};
use crate::sink::SinkPlan;

use super::file::{Cancel, FileError, Ingest};
use super::lake_stage::{AfterCommit, LakeJob};
use crate::buffers::RowsBuffer;

/// Largest piece of COPY data handed to the connection at once.
const COPY_PIECE_BYTES: usize = 256 * 1024;

/// One encoded batch of a chunk.
pub struct EncodedPiece {
    /// Binary COPY rows (no header or trailer); empty when no row survived.
    pub rows_data: RowsBuffer,
    pub rejects: Vec<Reject>,
    pub counts: ChunkCounts,
    pub next_checkpoint: u64,
    pub end_of_chunk: bool,
}

/// Sends `data` into the COPY, opening it (with the header) on first use.
async fn send_rows<'c>(
    copy: &mut Option<PgCopyIn<&'c mut PgConnection>>,
    conn: &mut Option<&'c mut PgConnection>,
    sink: &SinkPlan,
    data: &[u8],
) -> sqlx::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if copy.is_none() {
        let conn = conn.take().expect("a connection for the COPY");
        let mut opened = conn.copy_in_raw(&sink.copy_sql).await?;
        let mut header = Vec::new();
        sink.encoder.begin(&mut header);
        opened.send(header).await?;
        *copy = Some(opened);
    }
    let open = copy.as_mut().expect("open copy");
    for piece in data.chunks(COPY_PIECE_BYTES) {
        open.send(piece).await?;
    }
    Ok(())
}

async fn abort(copy: Option<PgCopyIn<&mut PgConnection>>) {
    if let Some(copy) = copy {
        let _ = copy.abort("ingestor: chunk abandoned").await;
    }
}

/// Commits the chunks arriving on `input` until it closes or fails; `counts` grows by each
/// committed chunk, and the last chunk's transaction marks the file COMPLETED. An error from upstream that arrives between chunks is returned as is;
/// one in the middle of a chunk rolls that chunk back first.
pub async fn commit_chunks(
    ingest: &Ingest,
    lease: &Lease,
    cancel: &Cancel,
    input: &mut Receiver<Result<EncodedPiece, FileError>>,
    counts: &mut ChunkCounts,
    lake: &mut Option<LakeJob>,
) -> Result<Completion, FileError> {
    let (pool, limits) = (&ingest.pool, &ingest.limits);
    let sink = ingest.postgres.as_ref();
    let mut next = input.recv().await;
    while let Some(first) = next {
        if cancel.is_cancelled() {
            return Err(FileError::Cancelled);
        }
        let mut piece = first?;
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        let mut chunk = ChunkCounts::default();
        let mut rejects = Vec::new();
        let next_checkpoint;
        {
            let mut conn = Some(&mut *tx);
            let mut copy = None;
            loop {
                let c = piece.counts;
                limits
                    .take_records(c.ingested + c.rejected + c.filtered)
                    .await;
                if let Some(sink) = sink
                    && let Err(e) = send_rows(&mut copy, &mut conn, sink, &piece.rows_data).await
                {
                    abort(copy).await;
                    return Err(e.into());
                }
                chunk.ingested += c.ingested;
                chunk.rejected += c.rejected;
                chunk.filtered += c.filtered;
                rejects.append(&mut piece.rejects);
                if piece.end_of_chunk {
                    next_checkpoint = piece.next_checkpoint;
                    break;
                }
                piece = match input.recv().await {
                    Some(Ok(piece)) => piece,
                    Some(Err(e)) => {
                        abort(copy).await;
                        return Err(e);
                    }
                    None => {
                        abort(copy).await;
                        return Err(FileError::Input(
                            "the pipeline stopped inside a chunk".into(),
                        ));
                    }
                };
            }
            if let Some((mut copy, sink)) = copy.zip(sink) {
                let mut trailer = Vec::new();
                sink.encoder.end(&mut trailer);
                copy.send(trailer).await?;
                copy.finish().await?;
            }
        }
        // The next piece tells whether this chunk is the file's last: if so, the file is
        // marked COMPLETED in the same transaction.
        next = input.recv().await;
        if !jobs::checkpoint(&mut tx, lease, next_checkpoint, chunk).await? {
            tx.rollback().await?;
            return Err(FileError::LeaseLost);
        }
        if !rejects.is_empty() {
            jobs::insert_rejects(&mut tx, lease, &rejects).await?;
        }
        let last = next.is_none();
        let after = if last {
            complete_in(&mut tx, lease, lake.take()).await?
        } else {
            None
        };
        tx.commit().await?;
        if let Some(after) = after {
            after.finish().await;
        }
        METRICS.chunk(started.elapsed());
        metrics::add(&METRICS.records_ingested, chunk.ingested);
        metrics::add(&METRICS.records_rejected, chunk.rejected);
        metrics::add(&METRICS.records_filtered, chunk.filtered);
        counts.ingested += chunk.ingested;
        counts.rejected += chunk.rejected;
        counts.filtered += chunk.filtered;
        if last {
            return Ok(Completion::WithLastChunk);
        }
    }
    Ok(Completion::Pending)
}

/// Whether the last chunk's transaction also marked the file COMPLETED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    WithLastChunk,
    /// No chunk was committed (an empty file, or nothing after the checkpoint).
    Pending,
}

/// Marks the file COMPLETED, publishing its Parquet output (if any) in the same
/// transaction.
pub async fn complete(
    pool: &PgPool,
    lease: &Lease,
    lake: Option<LakeJob>,
) -> Result<(), FileError> {
    let mut tx = pool.begin().await?;
    let after = complete_in(&mut tx, lease, lake).await?;
    tx.commit().await?;
    if let Some(after) = after {
        after.finish().await;
    }
    Ok(())
}

/// In `tx`: publishes the file's Parquet output (if any) and marks the file COMPLETED. An
/// error leaves `tx` to roll back when dropped.
async fn complete_in(
    tx: &mut PgConnection,
    lease: &Lease,
    lake: Option<LakeJob>,
) -> Result<Option<AfterCommit>, FileError> {
    let after = match lake {
        Some(job) => Some(job.publish(tx, lease).await?),
        None => None,
    };
    if !jobs::complete(tx, lease).await? {
        return Err(FileError::LeaseLost);
    }
    Ok(after)
}
