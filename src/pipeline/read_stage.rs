//! The I/O side of reading: the object's bytes, decompressed, in buffers, paced by
//! `--max-bytes-per-sec`; the version being read goes first.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::limit::Limits;
use crate::source::{
    self, ByteCounter, CountingReader, ObjectVersion, READ_BUFFER_BYTES, SourceRef, decompress,
    open, read_parquet,
};

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
            // What was decoded before a fault (a compressed file cut short, a bad checksum)
            // goes on first: every complete record in it is kept.
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
