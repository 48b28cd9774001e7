//! Small files in groups: each file of a group is read and decoded on its own, then the
//! rows of whole files go into one COPY and those files are completed in the same
//! transaction (at most a chunk's records and bytes), each guarded by its own lease. Per
//! file, what is left is one row of bookkeeping instead of a transaction.
//!
//! A transform that gives one row for each record (a projection, as the built-in one) runs
//! once over the records of all the files of a transaction: run per file, its fixed cost
//! (an execution, arrays for each output column) was most of a 20-record file's. Any other
//! transform runs per file, as do whole-file plans (once per file) and Parquet input.
//!
//! A file that cannot be ingested in its group (a read or decode fault, a row the database
//! refuses, a lost lease anywhere in the group) is handed back to be ingested alone, by the
//! one-file path that knows how to fail, isolate and resume it: the group commits all of its
//! files or none.

use std::sync::Arc;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use tokio::sync::{mpsc, oneshot};

use crate::buffers::RowsBuffer;
use crate::cancel::Cancel;
use crate::decode::{Reject, SourceName};
use crate::events::{self, Records};
use crate::jobs::{self, ChunkCounts, GroupEntry, Lease};
use crate::sink::delta::group as delta_group;
use crate::sink::postgres::ChunkCopy;
use crate::sink::postgres::partitions::Slot;
use crate::source::{ByteCounter, ObjectVersion, SourceRef, decompress_whole, read_whole};

use super::commit::Encoded;
use super::decode_stage;
use super::error::{FileError, InputError};
use super::read_stage::read_source;
use super::report::{FileReport, Outcome};
use super::task::{FileTask, Ingest};
use super::transform_stage::{encode_rows, raw_json_bytes, transform_stage};

/// Records per Arrow batch of a group's files: their decoders are made per file, and
/// buffers for 4,096 records cost more to allocate and clear than 20 records to decode.
const SMALL_BATCH_RECORDS: usize = 256;

/// Stored bytes of one group at most, and so of a file read whole for a group: one
/// replaced by a larger one since it was listed is read as a stream, alone.
pub const GROUP_BYTES: u64 = 4 << 20;

/// Decompressed bytes of a file read whole at most (less when `--chunk-mib` is less): one
/// that inflates to more is streamed, alone. With a lake a file is one transaction however
/// long, but what is held in memory stays bounded.
const CONTENT_BYTES: usize = 64 << 20;

/// A claimed file that may join a group, its reading started ([`read_ahead`]).
pub struct Member {
    pub task: FileTask,
    pub lease: Lease,
    pub read: ReadAhead,
}

/// A small file being read, decoded, transformed and encoded on a task of its own, so that
/// object stores' latency is hidden: files are read ahead of the group that commits them,
/// [`crate::limit::READS_AT_ONCE`] at a time in the process whatever `--concurrency`, and
/// go on while earlier groups are written. Dropping it stops the work.
pub struct ReadAhead(tokio::task::JoinHandle<Result<EncodedFile, FileError>>);

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts reading `task` whole (see [`ReadAhead`]).
pub fn read_ahead(ingest: &Arc<Ingest>, task: &FileTask) -> ReadAhead {
    let (ingest, task) = (Arc::clone(ingest), task.clone());
    ReadAhead(tokio::spawn(async move {
        let _permit = ingest.limits.reads.acquire().await;
        encode_file(&ingest, &task).await
    }))
}

/// How a group went: the files it completed, and those to ingest alone (indices into the
/// members).
#[derive(Default)]
pub struct GroupDone {
    pub completed: Vec<(usize, FileReport)>,
    pub alone: Vec<usize>,
}

/// One file, decoded whole, and encoded unless its records go through the transform with
/// the other files' of its transaction.
pub struct EncodedFile {
    body: Body,
    rejects: Vec<Reject>,
    counts: ChunkCounts,
    next_checkpoint: u64,
    version: Option<ObjectVersion>,
}

/// What a file brings to its transaction's COPY.
enum Body {
    /// Its RAW records, for a transform that gives one row for each (see
    /// [`crate::transform::Transform::one_row_each`]): the transaction runs it once over
    /// the records of all its files.
    Raw(Vec<RecordBatch>),
    /// Its rows, transformed and encoded on their own.
    Encoded(Rows),
}

/// Rows encoded for COPY.
#[derive(Default)]
struct Rows {
    data: Vec<RowsBuffer>,
    /// The transform's output, kept for the Delta sink (empty without it).
    batches: Vec<RecordBatch>,
    /// The days of the rows (a table partitioned by day).
    slots: Vec<Slot>,
}

impl Rows {
    fn add(&mut self, mut other: Rows) {
        self.data.append(&mut other.data);
        self.batches.append(&mut other.batches);
        for slot in other.slots {
            if !self.slots.contains(&slot) {
                self.slots.push(slot);
            }
        }
    }
}

impl EncodedFile {
    /// Bytes the file adds to its transaction's COPY: encoded, or estimated from its
    /// records' JSON (each record's text, and about as much again in its columns).
    fn size(&self) -> usize {
        match &self.body {
            Body::Encoded(rows) => rows.data.iter().map(|rows| rows.len()).sum(),
            Body::Raw(batches) => 2 * batches.iter().map(raw_json_bytes).sum::<usize>(),
        }
    }
}

/// Ingests `members` as one group (see the module's comment). The files it cannot take are
/// returned in [`GroupDone::alone`], their leases untouched.
pub async fn ingest_group(ingest: &Ingest, members: &mut [Member], cancel: &Cancel) -> GroupDone {
    let started = Instant::now();
    let (chunk_records, chunk_bytes) = (
        ingest.settings.chunk_records as u64,
        ingest.settings.chunk_bytes,
    );
    let mut done = GroupDone::default();
    // Transactions of whole files, at most a chunk's records and bytes each
    // (`--chunk-records`, `--chunk-mib`): what a group holds is bounded like a chunk.
    let mut ready: Vec<(usize, EncodedFile)> = Vec::new();
    let (mut records, mut bytes) = (0, 0);
    for i in 0..members.len() {
        let file = match (&mut members[i].read.0).await {
            Ok(file) => file,
            Err(panic) => Err(FileError::Stage(format!(
                "reading the file failed: {panic}"
            ))),
        };
        let file = match file {
            // More records than a chunk: the one-file path commits it chunk by chunk.
            Ok(file) if file.next_checkpoint > chunk_records => {
                done.alone.push(i);
                continue;
            }
            Ok(file) => file,
            Err(error) => {
                tracing::debug!(file = %members[i].task.display, %error, "taken out of its group: ingested alone");
                done.alone.push(i);
                continue;
            }
        };
        let size = file.size();
        if !ready.is_empty()
            && (records + file.next_checkpoint > chunk_records || bytes + size > chunk_bytes)
        {
            let full = std::mem::take(&mut ready);
            commit_transaction(ingest, members, full, cancel, started, &mut done).await;
            (records, bytes) = (0, 0);
        }
        records += file.next_checkpoint;
        bytes += size;
        ready.push((i, file));
    }
    if !ready.is_empty() {
        commit_transaction(ingest, members, ready, cancel, started, &mut done).await;
    }
    done.alone.sort_unstable();
    done
}

/// Commits one transaction of the group's files, or hands them back to be ingested alone.
async fn commit_transaction(
    ingest: &Ingest,
    members: &[Member],
    mut ready: Vec<(usize, EncodedFile)>,
    cancel: &Cancel,
    started: Instant,
    done: &mut GroupDone,
) {
    if cancel.is_cancelled() {
        done.alone.extend(ready.iter().map(|(i, _)| *i));
        return;
    }
    // With a Delta sink, only first runs the table holds no commit of share the commit.
    ready = match &ingest.delta {
        None => ready,
        Some(delta) => {
            let leases: Vec<&Lease> = ready.iter().map(|(i, _)| &members[*i].lease).collect();
            match delta_group::prepare(delta, &ingest.pool, &leases).await {
                Ok(joinable) => {
                    let mut kept = Vec::with_capacity(ready.len());
                    for ((i, file), join) in ready.into_iter().zip(joinable) {
                        if join {
                            kept.push((i, file));
                        } else {
                            done.alone.push(i);
                        }
                    }
                    kept
                }
                Err(error) => {
                    tracing::info!(files = ready.len(), %error, "the group cannot be prepared for the Delta table: its files are ingested alone");
                    done.alone.extend(ready.iter().map(|(i, _)| *i));
                    return;
                }
            }
        }
    };
    if ready.is_empty() {
        return;
    }
    let commit_started = Instant::now();
    let rows = match transaction_rows(ingest, &mut ready).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::info!(files = ready.len(), %error, "the group's records cannot be transformed together: its files are ingested alone");
            done.alone.extend(ready.iter().map(|(i, _)| *i));
            return;
        }
    };
    match commit_group(ingest, members, &ready, rows).await {
        Ok(true) => {
            tracing::debug!(files = ready.len(), "group committed");
            let mut records = Records::default();
            for (_, file) in &ready {
                records.ingested += file.counts.ingested;
                records.rejected += file.counts.rejected;
                records.filtered += file.counts.filtered;
            }
            events::chunk_committed(commit_started.elapsed(), records);
            for (i, file) in ready {
                let c = file.counts;
                let report = FileReport {
                    display: members[i].task.display.clone(),
                    outcome: Outcome::Completed,
                    counts: c,
                    elapsed: started.elapsed(),
                    replaced: false,
                };
                done.completed.push((i, report));
            }
        }
        Ok(false) => {
            tracing::info!(
                files = ready.len(),
                "a lease of the group was lost: its files are ingested alone"
            );
            done.alone.extend(ready.iter().map(|(i, _)| *i));
        }
        Err(error) => {
            tracing::info!(files = ready.len(), %error, "the group's transaction failed: its files are ingested alone");
            done.alone.extend(ready.iter().map(|(i, _)| *i));
        }
    }
}

/// The rows of a transaction's files: those encoded on their own, and the RAW records of
/// the others through the transform together, in batches of up to `--batch-records`. Takes
/// the files' bodies (a file handed back is read again, alone).
async fn transaction_rows(
    ingest: &Ingest,
    ready: &mut [(usize, EncodedFile)],
) -> Result<Rows, FileError> {
    let mut rows = Rows::default();
    let (mut raw, mut files) = (Vec::new(), 0);
    for (_, file) in ready.iter_mut() {
        match std::mem::replace(&mut file.body, Body::Raw(Vec::new())) {
            Body::Raw(mut batches) => {
                raw.append(&mut batches);
                files += 1;
            }
            Body::Encoded(encoded) => rows.add(encoded),
        }
    }
    if raw.is_empty() {
        return Ok(rows);
    }
    let records: usize = raw.iter().map(RecordBatch::num_rows).sum();
    let mut transform = ingest.plans.take().await?;
    let mut given = 0;
    let batch_records = ingest.settings.batch_records.max(1);
    let schema = raw[0].schema();
    let mut pieces = raw.into_iter().peekable();
    while pieces.peek().is_some() {
        let mut piece = Vec::new();
        let mut n = 0;
        while let Some(batch) = pieces.next_if(|b| n == 0 || n + b.num_rows() <= batch_records) {
            n += batch.num_rows();
            piece.push(batch);
        }
        // The COPY rows take about twice their records' JSON (see `EncodedFile::size`).
        let reserve = 2 * piece.iter().map(raw_json_bytes).sum::<usize>();
        let batch = arrow::compute::concat_batches(&schema, &piece)
            .map_err(|e| FileError::Stage(format!("joining the group's records: {e}")))?;
        let out = transform.run(vec![batch]).await?;
        let encoded = encode_rows(ingest.postgres.as_ref(), None, &out, reserve).await?;
        given += encoded.rows as usize;
        rows.add(Rows {
            data: if encoded.data.is_empty() {
                Vec::new()
            } else {
                vec![encoded.data]
            },
            batches: match ingest.delta {
                Some(_) => out,
                None => Vec::new(),
            },
            slots: encoded.slots,
        });
    }
    ingest.plans.give_back(transform);
    if given != records {
        return Err(FileError::Stage(format!(
            "the transform gave {given} rows for {records} records, where it gives one each"
        )));
    }
    tracing::debug!(files, records, "transformed together");
    Ok(rows)
}

/// The group's transaction: every file's rows in one COPY, its rejects, and every file
/// completed (guarded). False when a lease was lost (rolled back).
async fn commit_group(
    ingest: &Ingest,
    members: &[Member],
    ready: &[(usize, EncodedFile)],
    rows: Rows,
) -> Result<bool, FileError> {
    // Every day of the group gets its partition before the transaction opens.
    if let Some(days) = &ingest.partitions {
        let mut slots = rows.slots.clone();
        slots.sort_unstable();
        slots.dedup();
        days.ensure(&slots).await?;
    }
    // The Delta commit first: a crash before the PostgreSQL transaction leaves the files
    // pending, and their next attempt finds their keys in the table.
    let delta_version = match &ingest.delta {
        Some(delta) => {
            let leases: Vec<&Lease> = ready.iter().map(|(i, _)| &members[*i].lease).collect();
            Some(delta_group::commit(delta, &leases, rows.batches).await?)
        }
        None => None,
    };
    let mut tx = ingest.pool.begin().await?;
    if let Some(sink) = &ingest.postgres {
        let failed = |e| {
            // A day dropped since this worker saw it: its files, ingested alone, look
            // the days up afresh.
            if let Some(days) = &ingest.partitions {
                days.forget();
            }
            FileError::Stage(format!("COPY of a group: {e}"))
        };
        let mut copy = ChunkCopy::new(&mut tx, sink);
        for data in &rows.data {
            if let Err(e) = copy.send(data).await {
                copy.abort().await;
                return Err(failed(e));
            }
        }
        copy.finish().await.map_err(failed)?;
    }
    for (i, file) in ready {
        if !file.rejects.is_empty() {
            jobs::insert_rejects(&mut tx, &members[*i].lease, &file.rejects).await?;
        }
    }
    let entries: Vec<GroupEntry> = ready
        .iter()
        .map(|(i, file)| GroupEntry {
            lease: &members[*i].lease,
            next_checkpoint: file.next_checkpoint,
            counts: file.counts,
            version: file.version.as_ref(),
        })
        .collect();
    if let (Some(delta), Some(version)) = (&ingest.delta, delta_version) {
        for (i, _) in ready {
            let lease = &members[*i].lease;
            if !lease
                .delta_record(&mut tx, delta.display(), 1, Some(version))
                .await?
            {
                tx.rollback().await?;
                return Ok(false);
            }
        }
    }
    let bucket = &members[ready[0].0].lease.bucket;
    if !jobs::complete_group(&mut tx, bucket, &entries, &ingest.destinations()).await? {
        tx.rollback().await?;
        return Ok(false);
    }
    tx.commit().await?;
    Ok(true)
}

/// Reads, decodes, transforms and encodes all of one file (from its first record), its
/// rows kept for the group's COPY. A row-wise transform of a file that is not Parquet takes
/// the short way ([`encode_small`]); otherwise the file goes through the stages.
async fn encode_file(ingest: &Ingest, task: &FileTask) -> Result<EncodedFile, FileError> {
    if ingest.whole_file() || task.source.is_parquet() {
        encode_staged(ingest, task).await
    } else {
        encode_small(ingest, task).await
    }
}

/// The short way for a small file: read it whole (decompressed), decode it on this task,
/// run each batch through the row-wise transform and encode it. No threads or channels
/// between stages: for a file of a few records, handing it over cost more than the work.
async fn encode_small(ingest: &Ingest, task: &FileTask) -> Result<EncodedFile, FileError> {
    let (all, version) =
        read_small(ingest, &task.source)
            .await
            .map_err(|cause| InputError::Read {
                decompressed: 0,
                compressed: 0,
                cause,
            })?;
    let name = SourceName {
        bucket: task.bucket.as_str().into(),
        key: task.key.as_str().into(),
    };
    let batch_records = ingest.settings.batch_records.min(SMALL_BATCH_RECORDS);
    let (batches, rejects, next_checkpoint) =
        decode_stage::decode_whole(&all, name, batch_records)?;
    let read: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    ingest
        .limits
        .take_records(read + rejects.len() as u64)
        .await;
    let counts = |ingested: u64| ChunkCounts {
        ingested,
        rejected: rejects.len() as u64,
        filtered: read.saturating_sub(ingested),
        read,
    };
    if ingest.one_row_each {
        // Transformed with the other files of its transaction.
        return Ok(EncodedFile {
            counts: counts(read),
            body: Body::Raw(batches),
            rejects,
            next_checkpoint,
            version: Some(version),
        });
    }
    let mut transform = ingest.plans.take().await?;
    let mut rows = Vec::new();
    let mut kept = Vec::new();
    let mut slots = Vec::new();
    let mut ingested = 0;
    for batch in batches {
        let out = transform.run(vec![batch]).await?;
        let encoded = encode_rows(ingest.postgres.as_ref(), None, &out, 0).await?;
        ingested += encoded.rows;
        slots.extend(encoded.slots);
        if !encoded.data.is_empty() {
            rows.push(encoded.data);
        }
        if ingest.delta.is_some() {
            kept.extend(out.into_iter().filter(|b| b.num_rows() > 0));
        }
    }
    ingest.plans.give_back(transform);
    slots.sort_unstable();
    slots.dedup();
    Ok(EncodedFile {
        counts: counts(ingested),
        body: Body::Encoded(Rows {
            data: rows,
            batches: kept,
            slots,
        }),
        rejects,
        next_checkpoint,
        version: Some(version),
    })
}

/// Reads a small file whole and decompresses it in memory: one request or read, no
/// read-ahead buffers (see [`crate::source::read_whole`]). A file found larger than a group
/// takes (replaced since it was listed) fails here, and is ingested alone.
async fn read_small(
    ingest: &Ingest,
    source: &SourceRef,
) -> std::io::Result<(bytes::Bytes, ObjectVersion)> {
    let (stored, version) = read_whole(source, GROUP_BYTES).await?;
    events::bytes_read(stored.len() as u64);
    ingest.limits.take_bytes(stored.len() as u64).await;
    let at_most = ingest.settings.chunk_bytes.min(CONTENT_BYTES);
    let content = decompress_whole(stored, at_most).await?;
    Ok((content, version))
}

/// A small file through the stages (whole-file transforms, Parquet input).
async fn encode_staged(ingest: &Ingest, task: &FileTask) -> Result<EncodedFile, FileError> {
    let mut settings = ingest.settings;
    // One file is one piece of the group: never cut into chunks.
    settings.chunk_records = usize::MAX;
    settings.chunk_bytes = usize::MAX;
    // Small files: batch buffers sized for them, not for 4,096 records each time.
    settings.batch_records = settings.batch_records.min(SMALL_BATCH_RECORDS);
    let transform = ingest.plans.take().await?;
    let compressed = ByteCounter::default();
    let (bytes_tx, bytes_rx) = mpsc::channel(4);
    let (decoded_tx, decoded_rx) = mpsc::channel(1);
    let (encoded_tx, mut encoded_rx) = mpsc::channel(1);
    let (version_tx, version_rx) = oneshot::channel();
    let reader = tokio::spawn(read_source(
        task.source.clone(),
        compressed.clone(),
        Arc::clone(&ingest.limits),
        bytes_tx,
        Some(version_tx),
    ));
    let name = SourceName {
        bucket: task.bucket.as_str().into(),
        key: task.key.as_str().into(),
    };
    let decoder = tokio::task::spawn_blocking(move || {
        decode_stage::run(bytes_rx, decoded_tx, name, 0, None, settings, compressed)
    });
    // The Delta sink keeps the transform's output of the file.
    let (lake_tx, kept) = match ingest.delta {
        Some(_) => {
            let (tx, mut rx) = mpsc::channel::<RecordBatch>(4);
            let kept = tokio::spawn(async move {
                let mut kept = Vec::new();
                while let Some(batch) = rx.recv().await {
                    kept.push(batch);
                }
                kept
            });
            (Some(tx), Some(kept))
        }
        None => (None, None),
    };
    let transformer = tokio::spawn(transform_stage(
        transform,
        ingest.postgres.clone(),
        lake_tx,
        decoded_rx,
        encoded_tx,
    ));
    let mut rows = Rows::default();
    let mut file = EncodedFile {
        body: Body::Raw(Vec::new()),
        rejects: Vec::new(),
        counts: ChunkCounts::default(),
        next_checkpoint: 0,
        version: None,
    };
    let collected: Result<(), FileError> = async {
        loop {
            match encoded_rx.recv().await {
                Some(Ok(Encoded::Piece(mut piece))) => {
                    let c = piece.counts;
                    ingest.limits.take_records(c.read + c.rejected).await;
                    file.counts.ingested += c.ingested;
                    file.counts.rejected += c.rejected;
                    file.counts.filtered += c.filtered;
                    file.counts.read += c.read;
                    file.rejects.append(&mut piece.rejects);
                    file.next_checkpoint = file.next_checkpoint.max(piece.next_checkpoint);
                    if !piece.rows_data.is_empty() {
                        rows.data.push(piece.rows_data);
                    }
                    for slot in piece.slots {
                        if !rows.slots.contains(&slot) {
                            rows.slots.push(slot);
                        }
                    }
                }
                Some(Ok(Encoded::End)) => return Ok(()),
                Some(Err(error)) => return Err(error),
                None => {
                    return Err(FileError::Stage(
                        "the pipeline stopped before the end of the file".into(),
                    ));
                }
            }
        }
    }
    .await;
    drop(encoded_rx);
    if let Ok(Some(transform)) = transformer.await {
        ingest.plans.give_back(transform);
    }
    let _ = decoder.await;
    let _ = reader.await;
    collected?;
    if let Some(kept) = kept {
        rows.batches = kept
            .await
            .map_err(|e| FileError::Stage(format!("keeping the file's output: {e}")))?;
    }
    file.body = Body::Encoded(rows);
    file.version = version_rx.await.ok();
    Ok(file)
}
