//! `preview`: the same read, decode and transform stages as ingestion, without the
//! database. A row-wise transform stops reading as soon as enough rows are shown; a
//! whole-file one runs over the whole file, as ingestion does, and shows its first rows.

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use crate::decode::{Reject, SourceName};
use crate::source::{ByteCounter, SourceRef};
use crate::transform::{PlanKind, Transform, TransformSql};

use super::decode_stage::{self, Decoded};
use super::error::FileError;
use super::read_stage::read_source;
use super::settings::Settings;
use super::transform_stage::decode_stopped;

/// What `preview` shows.
pub struct Preview {
    pub batches: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    pub plan: String,
    /// How the transform runs over a file.
    pub kind: PlanKind,
    /// Set when the file could not be read to its end (rows before the fault are shown).
    pub fault: Option<FileError>,
}

/// Runs `sql` over the first records of `source` until `limit` rows come out.
pub async fn preview(
    source: SourceRef,
    name: SourceName,
    sql: &TransformSql,
    limit: usize,
) -> Result<Preview, FileError> {
    let settings = Settings {
        batch_records: limit.clamp(1, 8192),
        chunk_records: limit.clamp(1, 8192),
        ..Settings::default()
    };
    let mut transform = Transform::plan(sql, settings.batch_records).await?;
    let plan = transform.explain();
    let compressed = ByteCounter::default();
    let (bytes_tx, bytes_rx) = mpsc::channel(4);
    let (decoded_tx, mut decoded_rx) = mpsc::channel(1);
    let limits = std::sync::Arc::new(crate::limit::Limits::default());
    let reader = tokio::spawn(read_source(
        source,
        compressed.clone(),
        limits,
        bytes_tx,
        None,
    ));
    let decoder = tokio::task::spawn_blocking(move || {
        decode_stage::run(bytes_rx, decoded_tx, name, 0, None, settings, compressed)
    });
    let mut preview = Preview {
        batches: Vec::new(),
        rejects: Vec::new(),
        plan,
        kind: transform.kind().clone(),
        fault: None,
    };
    if preview.kind.is_whole_file() {
        whole_file(&mut transform, decoded_rx, limit, &mut preview).await?;
        let _ = decoder.await;
        reader.abort();
        return Ok(preview);
    }
    let mut rows = 0;
    while rows < limit {
        let Some(decoded) = decoded_rx.recv().await else {
            preview.fault = Some(decode_stopped());
            break;
        };
        match decoded {
            Decoded::End => break,
            Decoded::Piece(piece) => {
                preview.rejects.extend(piece.rejects);
                let Some(batch) = piece.batch else { continue };
                for batch in transform.run(vec![batch]).await? {
                    let take = batch.num_rows().min(limit - rows);
                    rows += take;
                    preview.batches.push(batch.slice(0, take));
                }
            }
            Decoded::Fault(fault) => {
                preview.fault = Some(fault.into());
                break;
            }
        }
    }
    drop(decoded_rx);
    let _ = decoder.await;
    reader.abort();
    Ok(preview)
}

/// Runs a whole-file plan over all of the file and keeps its first `limit` rows. A file
/// that cannot be read to its end shows no rows: ingestion commits nothing of the plan's
/// output for it.
async fn whole_file(
    transform: &mut Transform,
    mut decoded: mpsc::Receiver<Decoded>,
    limit: usize,
    preview: &mut Preview,
) -> Result<(), FileError> {
    use futures::StreamExt;
    let (feed, mut output) = transform.start_file()?;
    let feeder = tokio::spawn(async move {
        let (mut rejects, mut feed) = (Vec::new(), Some(feed));
        loop {
            match decoded.recv().await {
                Some(Decoded::Piece(piece)) => {
                    rejects.extend(piece.rejects);
                    if let (Some(batch), Some(plan)) = (piece.batch, &feed)
                        && plan.send(batch).await.is_err()
                    {
                        feed = None;
                    }
                }
                Some(Decoded::End) => return (rejects, None),
                Some(Decoded::Fault(fault)) => return (rejects, Some(fault.into())),
                None => return (rejects, Some(decode_stopped())),
            }
        }
    });
    let mut rows = 0;
    while rows < limit {
        let Some(batch) = output.next().await else {
            break;
        };
        let batch = batch?;
        let take = batch.num_rows().min(limit - rows);
        rows += take;
        preview.batches.push(batch.slice(0, take));
    }
    drop(output);
    let (rejects, fault) = feeder
        .await
        .map_err(|e| FileError::Stage(format!("the preview's feed failed: {e}")))?;
    preview.rejects = rejects;
    if fault.is_some() {
        preview.batches.clear();
        preview.fault = fault;
    }
    Ok(())
}
