//! The chunk transaction: the only place where rows reach the target table.
//!
//! A chunk streams in piece by piece (one encoded batch each) into an open COPY; when its
//! last piece has arrived, the checkpoint is advanced (guarded by the lease token: zero rows
//! means another worker owns the file, and the whole chunk rolls back), its rejected records
//! are stored, and everything commits at once.

use std::time::Instant;

use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc::Receiver;

use crate::decode::Reject;
use crate::events::{self, Records};
use crate::jobs::{self, ChunkCounts, Lease};
use crate::sink::postgres::partitions::Slot;
use crate::sink::postgres::{ChunkCopy, CopyError};

use super::decode_stage::{Isolate, Start};
use super::error::{FileError, RefusedRow};
use super::reject_spool::{RejectSpool, SpoolError, SpoolLimits};
use super::task::Ingest;
use crate::buffers::RowsBuffer;
use crate::cancel::Cancel;
use crate::sink::lake::{LakeDone, LakeWrite};

/// One encoded batch of a chunk.
#[derive(Default)]
pub struct EncodedPiece {
    /// Binary COPY rows (no header or trailer); empty when no row survived.
    pub rows_data: RowsBuffer,
    pub rejects: Vec<Reject>,
    pub counts: ChunkCounts,
    pub next_checkpoint: u64,
    pub end_of_chunk: bool,
    /// The record of a piece made of one record: kept so that it can be rejected if the
    /// database refuses its row.
    pub lone: Option<Lone>,
    /// The days of its rows when the table is partitioned by day (else empty): their
    /// partitions must exist before a COPY statement takes the rows.
    pub slots: Vec<Slot>,
}

/// One record's index and original text.
#[derive(Debug, Clone)]
pub struct Lone {
    pub index: u64,
    pub raw: String,
}

/// What the transform stage sends on: pieces, then `End` once the whole input was read.
pub enum Encoded {
    Piece(EncodedPiece),
    End,
}

/// The next piece, None at the end of the file. A stream that stops without its `End` (a
/// stage that panicked or stopped early) is an error, never the end of the file.
async fn next_piece(
    input: &mut Receiver<Result<Encoded, FileError>>,
) -> Option<Result<EncodedPiece, FileError>> {
    match input.recv().await {
        Some(Ok(Encoded::Piece(piece))) => Some(Ok(piece)),
        Some(Ok(Encoded::End)) => None,
        Some(Err(error)) => Some(Err(error)),
        None => Some(Err(FileError::Stage(
            "the pipeline stopped before the end of the file".into(),
        ))),
    }
}

/// Commits the chunks arriving on `input` until it closes or fails; `counts` grows by each
/// committed chunk, and the last chunk's transaction marks the file COMPLETED. An error
/// from upstream that arrives between chunks is returned as is; one in the middle of a
/// chunk rolls that chunk back first.
///
/// `start.resume` is the checkpoint the stream starts at. A row the database refuses (a
/// constraint, a trigger) fails the chunk with [`FileError::RowRefused`], naming the row
/// within the chunk, so that the caller can read the chunk again with the suspect record
/// alone (`start.isolate`); when that lone record's row is refused, the record goes to
/// `rejected_records` with the database's message and the stream goes on.
pub async fn commit_chunks(
    ingest: &Ingest,
    lease: &Lease,
    cancel: &Cancel,
    input: &mut Receiver<Result<Encoded, FileError>>,
    counts: &mut ChunkCounts,
    lake: &mut Option<LakeWrite>,
    Start { resume, isolate }: Start,
) -> Result<Completion, FileError> {
    let (pool, limits) = (&ingest.pool, &ingest.limits);
    let sink = ingest.postgres.as_ref();
    let days = ingest.partitions.as_deref();
    let mut start = resume;
    let mut next = next_piece(input).await;
    while let Some(first) = next {
        if cancel.is_cancelled() {
            return Err(FileError::Cancelled);
        }
        let mut piece = first?;
        let started = Instant::now();
        let mut chunk = ChunkCounts::default();
        let mut rejects = RejectSpool::new(SpoolLimits::default());
        // Pieces without rows need no transaction yet. A whole-file plan (or a Parquet
        // sink) can read for minutes before a row reaches the database, and a transaction
        // left idle that long would be ended by `idle_in_transaction_session_timeout`.
        // Nothing is written before the transaction, so a stop here loses nothing.
        while piece.rows_data.is_empty() && !piece.end_of_chunk {
            tally(&mut piece, &mut chunk, &mut rejects, limits).await?;
            if cancel.is_cancelled() {
                return Err(FileError::Cancelled);
            }
            piece = match next_piece(input).await {
                Some(piece) => piece?,
                None => return Err(FileError::Stage("the input ended inside a chunk".into())),
            };
        }
        // The days of the chunk's first rows get their partitions before its transaction
        // opens (in a short transaction of their own, see `partitions/create.rs`).
        if let Some(days) = days {
            days.ensure(&piece.slots).await?;
        }
        let mut tx = pool.begin().await?;
        let copied: Result<u64, FileError> = 'copy: {
            // One COPY statement per turn: a chunk takes several when its later rows bring
            // days the open statement has not seen.
            'statement: loop {
                let rows_before = chunk.ingested;
                let mut copy =
                    sink.map(|sink| ChunkCopy::new(&mut tx, sink).after_rows(rows_before));
                loop {
                    // A day this process has not seen: it is created on another connection
                    // (attaching it does not wait for this transaction), and a new COPY
                    // statement, which routes rows to it, takes the rest of the chunk in
                    // the same transaction.
                    if let (Some(days), Some(_)) = (days, sink)
                        && !days.knows(&piece.slots)
                    {
                        if let Err(e) = days.ensure(&piece.slots).await {
                            abort(copy).await;
                            return Err(e.into());
                        }
                        if let Some(open) = copy
                            && let Err(e) = open.finish().await
                        {
                            break 'copy Err(copy_error(e, start));
                        }
                        continue 'statement;
                    }
                    if let Some(writer) = copy.as_mut()
                        && let Err(e) = writer.send(&piece.rows_data).await
                    {
                        abort(copy).await;
                        break 'copy Err(copy_error(e, start));
                    }
                    if let Err(e) = tally(&mut piece, &mut chunk, &mut rejects, limits).await {
                        abort(copy).await;
                        return Err(e);
                    }
                    if piece.end_of_chunk {
                        break;
                    }
                    piece = match next_piece(input).await {
                        Some(Ok(piece)) => piece,
                        Some(Err(e)) => {
                            abort(copy).await;
                            return Err(e);
                        }
                        None => {
                            abort(copy).await;
                            return Err(FileError::Stage("the input ended inside a chunk".into()));
                        }
                    };
                }
                if let Some(writer) = copy
                    && let Err(e) = writer.finish().await
                {
                    break 'copy Err(copy_error(e, start));
                }
                break 'copy Ok(piece.next_checkpoint);
            }
        };
        let next_checkpoint = match copied {
            Ok(next_checkpoint) => next_checkpoint,
            Err(FileError::RowRefused(refused)) if isolate == Some(Isolate(start)) => {
                let Some(lone) = piece.lone.take() else {
                    return Err(FileError::RowRefused(refused));
                };
                tx.rollback().await?;
                reject_lone(pool, lease, lone, &refused).await?;
                events::lone_row_rejected();
                counts.rejected += 1;
                start += 1;
                next = next_piece(input).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        // The next piece tells whether this chunk is the file's last: if so, the file is
        // marked COMPLETED in the same transaction.
        next = next_piece(input).await;
        if !lease.checkpoint(&mut tx, next_checkpoint, chunk).await? {
            tx.rollback().await?;
            return Err(FileError::LeaseLost);
        }
        if !rejects.is_empty() {
            rejects.insert(&mut tx, lease).await.map_err(|e| match e {
                SpoolError::Database(e) => FileError::Database(e),
                SpoolError::Io(e) => FileError::Stage(e.to_string()),
            })?;
        }
        let last = next.is_none();
        let after = if last {
            complete_in(&mut tx, lease, lake.take(), &ingest.destinations()).await?
        } else {
            None
        };
        tx.commit().await?;
        if let Some(after) = after {
            after.finish().await;
        }
        events::chunk_committed(
            started.elapsed(),
            Records {
                ingested: chunk.ingested,
                rejected: chunk.rejected,
                filtered: chunk.filtered,
            },
        );
        counts.ingested += chunk.ingested;
        counts.rejected += chunk.rejected;
        counts.filtered += chunk.filtered;
        counts.read += chunk.read;
        if last {
            return Ok(Completion::WithLastChunk);
        }
        start = next_checkpoint;
    }
    Ok(Completion::Pending)
}

/// Adds a piece's counts and rejects to its chunk, at the pace `--max-records-per-sec`
/// allows.
async fn tally(
    piece: &mut EncodedPiece,
    chunk: &mut ChunkCounts,
    rejects: &mut RejectSpool,
    limits: &crate::limit::Limits,
) -> Result<(), FileError> {
    let c = piece.counts;
    limits.take_records(c.read + c.rejected).await;
    chunk.ingested += c.ingested;
    chunk.rejected += c.rejected;
    chunk.filtered += c.filtered;
    chunk.read += c.read;
    rejects
        .append(&mut piece.rejects)
        .map_err(|e| FileError::Stage(e.to_string()))
}

/// A COPY error: a row the database refused, or an error no row could avoid.
fn copy_error(error: CopyError, chunk_start: u64) -> FileError {
    match error {
        CopyError::Refused { row, message, code } => FileError::RowRefused(RefusedRow {
            chunk_start,
            row,
            message,
            code,
        }),
        CopyError::Database(e) => e.into(),
    }
}

/// Abandons the chunk's COPY, if one was opened (the transaction rolls back).
async fn abort(copy: Option<ChunkCopy<'_>>) {
    if let Some(copy) = copy {
        copy.abort().await;
    }
}

/// Stores the lone record whose row the database refused in `rejected_records` and moves
/// the checkpoint past it, in one transaction guarded by the lease.
async fn reject_lone(
    pool: &PgPool,
    lease: &Lease,
    lone: Lone,
    refused: &RefusedRow,
) -> Result<(), FileError> {
    let mut tx = pool.begin().await?;
    let counts = ChunkCounts {
        rejected: 1,
        ..ChunkCounts::default()
    };
    if !lease.checkpoint(&mut tx, lone.index + 1, counts).await? {
        return Err(FileError::LeaseLost);
    }
    let reject = Reject {
        index: lone.index,
        offset: 0,
        raw: lone.raw,
        error: format!("refused by the database: {}", refused.message),
    };
    jobs::insert_rejects(&mut tx, lease, &[reject]).await?;
    tx.commit().await?;
    Ok(())
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
    ingest: &Ingest,
    lease: &Lease,
    lake: Option<LakeWrite>,
) -> Result<(), FileError> {
    let mut tx = ingest.pool.begin().await?;
    let after = complete_in(&mut tx, lease, lake, &ingest.destinations()).await?;
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
    lake: Option<LakeWrite>,
    destinations: &[String],
) -> Result<Option<LakeDone>, FileError> {
    let after = match lake {
        Some(job) => Some(job.publish(tx, lease).await?),
        None => None,
    };
    if !lease.complete(tx, destinations).await? {
        return Err(FileError::LeaseLost);
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::limit::Limits;
    use crate::pipeline::Settings;
    use crate::transform::TransformSql;

    fn ingest(pool: &PgPool) -> Ingest {
        Ingest {
            pool: pool.clone(),
            transform: TransformSql::builtin(),
            postgres: None,
            lake: None,
            delta: None,
            partitions: None,
            settings: Settings::default(),
            limits: Arc::new(Limits::default()),
            kind: crate::transform::PlanKind::RowWise,
            one_row_each: true,
            plans: Arc::new(crate::transform::PlanCache::new(
                TransformSql::builtin(),
                Settings::default().batch_records,
            )),
        }
    }

    async fn claimed(pool: &PgPool) -> Lease {
        jobs::register(pool, "b", "k", None).await.unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let lease = Duration::from_secs(60);
        let claim = jobs::claim_one(&mut conn, "b", "k", lease, false, None).await;
        claim.unwrap().expect("the file is claimed").lease
    }

    /// A closed chunk of ten records that were all filtered out.
    fn chunk(next_checkpoint: u64) -> Result<Encoded, FileError> {
        Ok(Encoded::Piece(EncodedPiece {
            rows_data: RowsBuffer::default(),
            rejects: Vec::new(),
            counts: ChunkCounts {
                filtered: 10,
                read: 10,
                ..ChunkCounts::default()
            },
            next_checkpoint,
            end_of_chunk: true,
            lone: None,
            slots: Vec::new(),
        }))
    }

    async fn job(pool: &PgPool) -> (String, i64) {
        sqlx::query_as("SELECT status, checkpoint FROM processed_files")
            .fetch_one(pool)
            .await
            .unwrap()
    }

    /// Issue 14 item 4: a stage that dies between chunks closes its channel; that must
    /// fail the attempt (chunks before it kept), never mark the file COMPLETED.
    /// Commits what `messages` hold for a claimed file, the channel closed after them.
    async fn commit(
        pool: &PgPool,
        messages: Vec<Result<Encoded, FileError>>,
    ) -> Result<Completion, FileError> {
        let lease = claimed(pool).await;
        let (tx, mut rx) = mpsc::channel(messages.len().max(1));
        for message in messages {
            tx.send(message).await.unwrap();
        }
        drop(tx);
        let start = Start {
            resume: 0,
            isolate: None,
        };
        let cancel = Cancel::default();
        let mut counts = ChunkCounts::default();
        commit_chunks(
            &ingest(pool),
            &lease,
            &cancel,
            &mut rx,
            &mut counts,
            &mut None,
            start,
        )
        .await
    }

    /// Issue 14 item 4: a stage that dies between chunks closes its channel; that must
    /// fail the attempt (chunks before it kept), never mark the file COMPLETED.
    #[sqlx::test(migrator = "crate::jobs::MIGRATOR")]
    async fn a_stream_that_stops_without_its_end_never_completes_the_file(pool: PgPool) {
        let result = commit(&pool, vec![chunk(10)]).await;
        assert!(matches!(result, Err(FileError::Stage(_))), "{result:?}");
        assert_eq!(job(&pool).await, ("PROCESSING".into(), 10));
    }

    #[sqlx::test(migrator = "crate::jobs::MIGRATOR")]
    async fn the_last_chunk_before_the_end_completes_the_file(pool: PgPool) {
        let result = commit(&pool, vec![chunk(10), Ok(Encoded::End)]).await;
        assert!(
            matches!(result, Ok(Completion::WithLastChunk)),
            "{result:?}"
        );
        assert_eq!(job(&pool).await, ("COMPLETED".into(), 10));
    }
}
