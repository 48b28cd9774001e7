//! The SQL stage of a file: each decoded piece through the transform (row-wise plans), or
//! the whole file through one execution (whole-file plans); rows go to the Parquet writer
//! and are encoded for COPY.

use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::buffers::RowsBuffer;
use crate::jobs::ChunkCounts;
use crate::sink::SinkPlan;
use crate::sink::parquet::LakeError;
use crate::sink::postgres::partitions::{Slot, slots_of};
use crate::transform::{FileInput, Transform};

use super::commit::{Encoded, EncodedPiece, Lone};
use super::decode_stage::{Decoded, DecodedPiece};
use super::error::FileError;

/// Runs each decoded piece through the transform, hands its rows to the Parquet writer and
/// encodes them for COPY. A whole-file plan runs once over the file instead
/// ([`whole_file_stage`]). Gives the transform back when the file ended normally, for the
/// next file.
pub(super) async fn transform_stage(
    mut transform: Transform,
    sink: Option<SinkPlan>,
    lake: Option<mpsc::Sender<RecordBatch>>,
    mut input: mpsc::Receiver<Decoded>,
    out: mpsc::Sender<Result<Encoded, FileError>>,
) -> Option<Transform> {
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
            Some(Decoded::Fault(fault)) => Err(fault.into()),
            Some(Decoded::End) => Ok(Encoded::End),
            None => Err(decode_stopped()),
        };
        let (stop, ended) = match &result {
            Ok(Encoded::Piece(_)) => (false, false),
            Ok(Encoded::End) => (true, true),
            Err(_) => (true, false),
        };
        if out.send(result).await.is_err() {
            return None;
        }
        if stop {
            return ended.then_some(transform);
        }
    }
}

pub(super) fn decode_stopped() -> FileError {
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
) -> Option<Transform> {
    let (feed, mut output) = match transform.start_file() {
        Ok(started) => started,
        Err(e) => {
            let _ = out.send(Err(e.into())).await;
            return None;
        }
    };
    let (end_tx, end_rx) = oneshot::channel();
    let feeder = tokio::spawn(feed_file(input, feed, out.clone(), end_tx));
    let drained: Result<(), FileError> = async {
        while let Some(batch) = output.next().await {
            let batch = batch?;
            let encoded = encode_rows(sink.as_ref(), lake.as_ref(), &[batch], 0).await?;
            let piece = EncodedPiece {
                rows_data: encoded.data,
                counts: ChunkCounts {
                    ingested: encoded.rows,
                    ..ChunkCounts::default()
                },
                slots: encoded.slots,
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
        return None;
    }
    // No end: the feeder reported why the input stopped.
    let Ok(end) = end_rx.await else { return None };
    let last = EncodedPiece {
        next_checkpoint: end,
        end_of_chunk: true,
        ..EncodedPiece::default()
    };
    if out.send(Ok(Encoded::Piece(last))).await.is_ok() && out.send(Ok(Encoded::End)).await.is_ok()
    {
        return Some(transform);
    }
    None
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
                let _ = out.send(Err(fault.into())).await;
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
    let EncodedRows {
        data: rows_data,
        rows,
        slots,
    } = encode_rows(sink, lake, &batches, json_bytes * 2).await?;
    Ok(EncodedPiece {
        rows_data,
        slots,
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

/// Rows encoded for COPY.
#[derive(Default)]
pub(super) struct EncodedRows {
    pub data: RowsBuffer,
    pub rows: u64,
    /// The days of the rows, for a table partitioned by day (else empty).
    pub slots: Vec<Slot>,
}

/// Hands the transform's rows to the Parquet writer and encodes them for COPY (into a
/// buffer of `reserve` bytes first), noting their days when the table is partitioned by
/// day.
pub(super) async fn encode_rows(
    sink: Option<&SinkPlan>,
    lake: Option<&mpsc::Sender<RecordBatch>>,
    batches: &[RecordBatch],
    reserve: usize,
) -> Result<EncodedRows, FileError> {
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    if let Some(lake) = lake {
        for batch in batches {
            lake.send(batch.clone())
                .await
                .map_err(|_| FileError::Lake(LakeError::Stopped))?;
        }
    }
    let mut encoded = EncodedRows {
        rows,
        ..EncodedRows::default()
    };
    if let Some(sink) = sink {
        encoded.data = RowsBuffer::with_capacity(reserve);
        for batch in batches {
            sink.encoder.encode(batch, encoded.data.as_mut_vec())?;
            if let Some(column) = sink.day_column {
                slots_of(batch.column(column).as_ref(), &mut encoded.slots);
            }
        }
    }
    Ok(encoded)
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
pub(super) fn raw_json_bytes(batch: &arrow::record_batch::RecordBatch) -> usize {
    use arrow::array::AsArray;
    batch
        .column_by_name(crate::decode::raw::RAW)
        .map_or(0, |raw| raw.as_string::<i32>().values().len())
}
