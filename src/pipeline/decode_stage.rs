//! The CPU side of reading: frames the decompressed bytes, converts records to RAW batches
//! and cuts them into chunks. Runs on a blocking thread so that it never stalls the async
//! I/O of other files; talks to the rest through bounded channels.

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use tokio::sync::mpsc::{Receiver, Sender};

use crate::decode::{Framer, Frames, RawBatcher, Reject, SourceName};
use crate::source::ByteCounter;

use super::Settings;

/// Framer input is fed in slices of this size, so that one push never frames more than a
/// few hundred records.
const PUSH_BYTES: usize = 64 * 1024;

/// One chunk: committed in one transaction with its checkpoint.
#[derive(Debug, Default)]
pub struct DecodedChunk {
    pub batches: Vec<RecordBatch>,
    pub rejects: Vec<Reject>,
    /// Records decoded into `batches`.
    pub rows: u64,
    /// The checkpoint once this chunk is committed: the next source index.
    pub next_checkpoint: u64,
}

/// What the decode stage sends on.
#[derive(Debug)]
pub enum Decoded {
    Chunk(DecodedChunk),
    /// The input cannot be read further; every record before the fault was sent.
    Fault(String),
}

struct Stage {
    framer: Framer,
    frames: Frames,
    /// Frames before this index are converted already.
    converted: usize,
    /// Records of the current chunk (converted, rejected or skipped).
    chunk_records: usize,
    batcher: RawBatcher,
    chunk: DecodedChunk,
    resume: u64,
    settings: Settings,
    out: Sender<Decoded>,
}

impl Stage {
    /// Converts up to `n` framed records into a batch of the current chunk.
    fn convert(&mut self, n: usize) -> Result<(), String> {
        let end = (self.converted + n).min(self.frames.len());
        if end == self.converted {
            return Ok(());
        }
        let batch = self
            .batcher
            .convert_range(
                &self.frames,
                self.converted..end,
                self.resume,
                &mut self.chunk.rejects,
            )
            .map_err(|e| format!("cannot decode records into Arrow: {e}"))?;
        if let Some(batch) = batch {
            self.chunk.rows += batch.num_rows() as u64;
            self.chunk.batches.push(batch);
        }
        let last = self.frames.frames[end - 1].index;
        self.chunk.next_checkpoint = (last + 1).max(self.resume);
        self.chunk_records += end - self.converted;
        self.converted = end;
        if self.converted == self.frames.len() {
            self.frames.clear();
            self.converted = 0;
        }
        Ok(())
    }

    /// Converts everything framed so far.
    fn convert_all(&mut self) -> Result<(), String> {
        while self.converted < self.frames.len() {
            let room = self
                .settings
                .chunk_records
                .saturating_sub(self.chunk_records)
                .max(1);
            self.convert(room.min(self.settings.batch_records))?;
            if self.chunk_records >= self.settings.chunk_records && !self.send_chunk() {
                return Err("the pipeline stopped".into());
            }
        }
        Ok(())
    }

    /// Sends the current chunk if it holds anything. False: the receiver is gone.
    fn send_chunk(&mut self) -> bool {
        if self.chunk.batches.is_empty() && self.chunk.rejects.is_empty() {
            // Only records below the resume checkpoint: nothing to commit.
            self.chunk_records = 0;
            return true;
        }
        let next = self.chunk.next_checkpoint;
        let chunk = std::mem::replace(
            &mut self.chunk,
            DecodedChunk {
                next_checkpoint: next,
                ..DecodedChunk::default()
            },
        );
        self.chunk_records = 0;
        self.out.blocking_send(Decoded::Chunk(chunk)).is_ok()
    }

    fn push(&mut self, bytes: &[u8]) -> Result<bool, String> {
        for piece in bytes.chunks(PUSH_BYTES) {
            self.framer
                .push(piece, &mut self.frames)
                .map_err(|e| e.to_string())?;
            loop {
                let room = self
                    .settings
                    .chunk_records
                    .saturating_sub(self.chunk_records);
                let want = room.min(self.settings.batch_records).max(1);
                if self.frames.len() - self.converted < want {
                    break;
                }
                self.convert(want)?;
                if self.chunk_records >= self.settings.chunk_records && !self.send_chunk() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// Sends what was read before a fault, then the fault.
    fn fault(mut self, cause: String) {
        let converted = self.convert_all();
        if self.send_chunk() {
            let cause = match converted {
                Ok(()) => cause,
                Err(e) => format!("{cause}; {e}"),
            };
            let _ = self.out.blocking_send(Decoded::Fault(cause));
        }
    }
}

/// Runs the decode stage until the input ends or fails, or the receiver goes away.
pub fn run(
    mut input: Receiver<std::io::Result<Bytes>>,
    out: Sender<Decoded>,
    source: SourceName,
    resume: u64,
    settings: Settings,
    compressed: ByteCounter,
) {
    let batcher = match RawBatcher::new(source, settings.batch_records) {
        Ok(batcher) => batcher,
        Err(e) => {
            let _ = out.blocking_send(Decoded::Fault(format!("internal: {e}")));
            return;
        }
    };
    let mut stage = Stage {
        framer: Framer::new(),
        frames: Frames::new(),
        converted: 0,
        chunk_records: 0,
        batcher,
        chunk: DecodedChunk {
            next_checkpoint: resume,
            ..DecodedChunk::default()
        },
        resume,
        settings,
        out,
    };
    while let Some(message) = input.blocking_recv() {
        let bytes = match message {
            Ok(bytes) => bytes,
            Err(e) => {
                let cause = format!(
                    "cannot read past byte {} of the decompressed stream ({} bytes of the object read): {e}",
                    stage.framer.bytes_consumed(),
                    compressed.get()
                );
                return stage.fault(cause);
            }
        };
        match stage.push(&bytes) {
            Ok(true) => {}
            Ok(false) => return,
            Err(cause) => return stage.fault(cause),
        }
    }
    if let Err(e) = stage.framer.finish(&mut stage.frames) {
        return stage.fault(e.to_string());
    }
    if let Err(cause) = stage.convert_all() {
        return stage.fault(cause);
    }
    stage.send_chunk();
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    /// Runs the stage over `records` NDJSON records resumed at `resume`; returns the source
    /// indices of the chunks' rows, chunk by chunk.
    fn indices(
        records: usize,
        resume: u64,
        chunk_records: usize,
        batch_records: usize,
    ) -> Vec<Vec<i64>> {
        let input: String = (0..records).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        let (bytes_tx, bytes_rx) = tokio::sync::mpsc::channel(4);
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(1024);
        bytes_tx.blocking_send(Ok(Bytes::from(input))).unwrap();
        drop(bytes_tx);
        let settings = Settings {
            chunk_records,
            batch_records,
            ..Settings::default()
        };
        let source = SourceName {
            bucket: "b".into(),
            key: "k".into(),
        };
        run(
            bytes_rx,
            out_tx,
            source,
            resume,
            settings,
            ByteCounter::default(),
        );
        let mut chunks = Vec::new();
        while let Ok(Decoded::Chunk(chunk)) = out_rx.try_recv() {
            let mut rows = Vec::new();
            for batch in &chunk.batches {
                let index = batch
                    .column_by_name("_source_index")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                rows.extend(index.values().iter().copied());
            }
            assert_eq!(chunk.next_checkpoint, *rows.last().unwrap() as u64 + 1);
            chunks.push(rows);
        }
        chunks
    }

    #[test]
    fn chunks_hold_exactly_chunk_records() {
        let chunks = indices(1000, 0, 300, 128);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![300, 300, 300, 100]);
        assert_eq!(chunks.concat(), (0..1000).collect::<Vec<i64>>());
    }

    /// Regression: chunks made only of records below the checkpoint once made the stage spin.
    #[test]
    fn resuming_skips_committed_records_and_terminates() {
        let chunks = indices(1000, 650, 100, 50);
        assert_eq!(chunks.concat(), (650..1000).collect::<Vec<i64>>());
        assert!(chunks.iter().all(|c| c.len() <= 100));
    }
}
