//! `preview`: the same read, decode and transform stages as ingestion, without the
//! database; stops reading as soon as enough rows are shown.

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use crate::decode::{Reject, SourceName};
use crate::source::{ByteCounter, SourceRef};
use crate::transform::{Transform, TransformSql};

use super::Settings;
use super::decode_stage::{self, Decoded};
use super::file::{FileError, read_source};

/// What `preview` shows.
pub struct Preview {
    pub batches: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    pub plan: String,
    /// Set when the file could not be read to its end (rows before the fault are shown).
    pub fault: Option<String>,
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
        fault: None,
    };
    let mut rows = 0;
    while rows < limit {
        let Some(decoded) = decoded_rx.recv().await else {
            preview.fault = Some("the decode stage stopped before the end of the file".into());
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
                preview.fault = Some(fault.cause);
                break;
            }
        }
    }
    drop(decoded_rx);
    let _ = decoder.await;
    reader.abort();
    Ok(preview)
}
