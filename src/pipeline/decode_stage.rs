//! The CPU side of reading: frames the decompressed bytes and converts records to RAW
//! batches, each sent on as soon as it is made. Runs on a blocking thread so that it never
//! stalls the async I/O of other files; talks to the rest through bounded channels.
//!
//! Batches are grouped into chunks (one transaction each): the last piece of a chunk
//! carries `end_of_chunk`. Because pieces stream through the transform and into an open
//! COPY one batch at a time, memory depends on the batch size and the channel depths, not on
//! the chunk size: chunks can be large (few commits) and files arbitrarily long.

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use tokio::sync::mpsc::{Receiver, Sender};

use crate::decode::{Framer, Frames, RawBatcher, Reject, SourceName};
use crate::source::ByteCounter;

use super::error::InputError;
use super::settings::Settings;

/// Framer input is fed in slices of this size, so that one push never frames more than a
/// few hundred records.
const PUSH_BYTES: usize = 64 * 1024;

/// One batch of a chunk.
#[derive(Debug, Default)]
pub struct DecodedPiece {
    pub batch: Option<RecordBatch>,
    pub rejects: Vec<Reject>,
    /// The checkpoint once the chunk is committed up to this piece: the next source index.
    pub next_checkpoint: u64,
    /// The chunk ends with this piece: commit.
    pub end_of_chunk: bool,
}

/// What the decode stage sends on.
#[derive(Debug)]
pub enum Decoded {
    Piece(DecodedPiece),
    /// The input cannot be read further; every record before the fault was sent, in a
    /// closed chunk.
    Fault(InputError),
    /// The input ended normally and every record was sent, in closed chunks. A stage that
    /// stops without sending this (a panic, a dropped channel) never looks like the end of
    /// the file.
    End,
}

struct Stage {
    framer: Framer,
    frames: Frames,
    batcher: RawBatcher,
    /// Records of the current chunk (converted, rejected or skipped).
    chunk_records: usize,
    /// Bytes of JSON of the current chunk.
    chunk_bytes: usize,
    /// A piece of the current chunk was sent: the chunk must be closed.
    chunk_open: bool,
    next_checkpoint: u64,
    resume: u64,
    /// A chunk boundary to keep: no chunk holds records on both sides of it. Used to put
    /// one record in a chunk of its own (see [`Isolate`]).
    cut: Option<u64>,
    /// The boundary after `cut`, if any.
    then_cut: Option<u64>,
    settings: Settings,
    out: Sender<Decoded>,
}

/// A record to give a chunk of its own: chunks end before it and after it. After the
/// database refused a row of a chunk, the chunk is read again with the rows before it in
/// one chunk and the suspect record alone in the next, so that it can be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isolate(pub u64);

/// Where a stream of a file starts: the checkpoint, and the record to set apart, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub resume: u64,
    pub isolate: Option<Isolate>,
}

/// Why the stage stops before the end of its input.
enum Halt {
    /// The receiver went away.
    Stopped,
    /// The input cannot be read further.
    Fault(InputError),
}

impl From<InputError> for Halt {
    fn from(error: InputError) -> Self {
        Halt::Fault(error)
    }
}

impl Stage {
    fn chunk_full(&self) -> bool {
        self.chunk_records >= self.settings.chunk_records
            || self.chunk_bytes >= self.settings.chunk_bytes
    }

    fn send(&mut self, piece: DecodedPiece) -> Result<(), Halt> {
        self.chunk_open = !piece.end_of_chunk;
        self.out
            .blocking_send(Decoded::Piece(piece))
            .map_err(|_| Halt::Stopped)
    }

    /// How many of the first `n` framed records (at least one) fit in a batch of
    /// `batch_bytes`.
    fn batch_end(&self, n: usize) -> usize {
        let frames = &self.frames.frames[..n.min(self.frames.len())];
        let Some(first) = frames.first() else {
            return 0;
        };
        let fit = frames.partition_point(|f| f.end - first.start <= self.settings.batch_bytes);
        fit.max(1)
    }

    /// Converts the first `n` framed records (or all there are) into a piece of the current
    /// chunk and sends it; closes the chunk when it is full.
    fn convert(&mut self, n: usize) -> Result<(), Halt> {
        let mut end = self.batch_end(n);
        if end == 0 {
            return Ok(());
        }
        if let Some(cut) = self.cut {
            let before = self.frames.frames[..end].partition_point(|f| f.index < cut);
            if before == 0 {
                // The next record lies past the boundary: the chunk ends here.
                self.pass_cut();
                return self.end_chunk();
            }
            end = before;
        }
        let mut rejects = Vec::new();
        let (first, last) = (&self.frames.frames[0], &self.frames.frames[end - 1]);
        let bytes = last.end - first.start;
        let next_checkpoint = (last.index + 1).max(self.resume);
        let (first, last) = (first.index, last.index);
        // Converted records leave the buffer: it holds at most a batch and a push.
        let batch = self
            .batcher
            .convert_front(&mut self.frames, end, self.resume, &mut rejects)
            .map_err(|cause| InputError::Arrow { first, last, cause })?;
        // Only records that were converted move the checkpoint.
        self.next_checkpoint = next_checkpoint;
        self.chunk_bytes += bytes;
        self.chunk_records += end;
        let at_cut = self.cut.is_some_and(|cut| next_checkpoint >= cut);
        if at_cut {
            self.pass_cut();
        }
        let full = self.chunk_full() || at_cut;
        let has_content = batch.is_some() || !rejects.is_empty();
        let sent = if has_content || (full && self.chunk_open) {
            self.send(DecodedPiece {
                batch,
                rejects,
                next_checkpoint: self.next_checkpoint,
                end_of_chunk: full,
            })
        } else {
            Ok(())
        };
        if full {
            self.chunk_records = 0;
            self.chunk_bytes = 0;
        }
        sent
    }

    /// Converts everything framed so far.
    fn convert_all(&mut self) -> Result<(), Halt> {
        while !self.frames.is_empty() {
            let room = self
                .settings
                .chunk_records
                .saturating_sub(self.chunk_records)
                .max(1);
            self.convert(room.min(self.settings.batch_records))?;
        }
        Ok(())
    }

    /// The current boundary is reached: the next one applies.
    fn pass_cut(&mut self) {
        self.cut = self.then_cut.take();
    }

    /// Closes the open chunk (if any) and starts a new one.
    fn end_chunk(&mut self) -> Result<(), Halt> {
        self.chunk_records = 0;
        self.chunk_bytes = 0;
        self.close_chunk()
    }

    /// Closes the open chunk, if any.
    fn close_chunk(&mut self) -> Result<(), Halt> {
        if !self.chunk_open {
            return Ok(());
        }
        self.send(DecodedPiece {
            next_checkpoint: self.next_checkpoint,
            end_of_chunk: true,
            ..DecodedPiece::default()
        })
    }

    fn push(&mut self, bytes: &[u8]) -> Result<(), Halt> {
        for piece in bytes.chunks(PUSH_BYTES) {
            self.framer
                .push(piece, &mut self.frames)
                .map_err(InputError::from)?;
            loop {
                let room = self
                    .settings
                    .chunk_records
                    .saturating_sub(self.chunk_records);
                let want = room.min(self.settings.batch_records).max(1);
                if self.frames.len() < want && self.frames.bytes.len() < self.settings.batch_bytes {
                    break;
                }
                self.convert(want)?;
            }
        }
        Ok(())
    }

    /// Sends what was read before a fault in a closed chunk, then the fault.
    fn fault(mut self, fault: InputError) {
        let fault = match self.convert_all() {
            Ok(()) => fault,
            Err(Halt::Stopped) => return,
            Err(Halt::Fault(then)) => InputError::Then {
                first: Box::new(fault),
                then: Box::new(then),
            },
        };
        if self.close_chunk().is_ok() {
            let _ = self.out.blocking_send(Decoded::Fault(fault));
        }
    }

    /// Ends the stage after `halt`: a fault is sent on after the records before it.
    fn halt(self, halt: Halt) {
        match halt {
            Halt::Stopped => {}
            Halt::Fault(fault) => self.fault(fault),
        }
    }
}

/// A small file decoded whole, at once, on the caller's thread (no stage, no channels):
/// its RAW batches of up to `batch_records` records, its rejects, and the checkpoint after
/// its last record. For files small enough that handing them between threads would cost
/// more than decoding them.
pub fn decode_whole(
    bytes: &[u8],
    source: SourceName,
    batch_records: usize,
) -> Result<(Vec<RecordBatch>, Vec<Reject>, u64), InputError> {
    let mut framer = Framer::new().with_check(RawBatcher::check);
    let mut frames = Frames::new();
    let mut batcher = RawBatcher::new(source, batch_records).map_err(InputError::Decoder)?;
    let (mut batches, mut rejects, mut next) = (Vec::new(), Vec::new(), 0);
    let mut convert = |frames: &mut Frames, all: bool| -> Result<(), InputError> {
        while frames.len() >= batch_records || (all && !frames.is_empty()) {
            let n = frames.len().min(batch_records);
            let (first, last) = (frames.frames[0].index, frames.frames[n - 1].index);
            if let Some(batch) = batcher
                .convert_front(frames, n, 0, &mut rejects)
                .map_err(|cause| InputError::Arrow { first, last, cause })?
            {
                batches.push(batch);
            }
            next = last + 1;
        }
        Ok(())
    };
    for piece in bytes.chunks(PUSH_BYTES) {
        framer.push(piece, &mut frames)?;
        convert(&mut frames, false)?;
    }
    framer.finish(&mut frames)?;
    convert(&mut frames, true)?;
    Ok((batches, rejects, next))
}

/// Runs the decode stage until the input ends or fails, or the receiver goes away.
pub fn run(
    mut input: Receiver<std::io::Result<Bytes>>,
    out: Sender<Decoded>,
    source: SourceName,
    resume: u64,
    isolate: Option<Isolate>,
    settings: Settings,
    compressed: ByteCounter,
) {
    let batcher = match RawBatcher::new(source, settings.batch_records) {
        Ok(batcher) => batcher,
        Err(e) => {
            let _ = out.blocking_send(Decoded::Fault(InputError::Decoder(e)));
            return;
        }
    };
    let mut stage = Stage {
        framer: Framer::new().with_check(RawBatcher::check),
        frames: Frames::new(),
        batcher,
        chunk_records: 0,
        chunk_bytes: 0,
        chunk_open: false,
        next_checkpoint: resume,
        resume,
        cut: isolate.map(|Isolate(index)| index),
        then_cut: isolate.map(|Isolate(index)| index + 1),
        settings,
        out,
    };
    while let Some(message) = input.blocking_recv() {
        let bytes = match message {
            Ok(bytes) => bytes,
            Err(cause) => {
                let fault = InputError::Read {
                    decompressed: stage.framer.bytes_consumed(),
                    compressed: compressed.get(),
                    cause,
                };
                return stage.fault(fault);
            }
        };
        if let Err(halt) = stage.push(&bytes) {
            return stage.halt(halt);
        }
    }
    if let Err(e) = stage.framer.finish(&mut stage.frames) {
        return stage.fault(e.into());
    }
    if let Err(halt) = stage.convert_all() {
        return stage.halt(halt);
    }
    if stage.close_chunk().is_ok() {
        let _ = stage.out.blocking_send(Decoded::End);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::Int64Type;

    /// One piece the stage sent: the source indices of its rows, whether it ends its chunk,
    /// and the checkpoint it carries.
    struct Sent {
        rows: Vec<i64>,
        end_of_chunk: bool,
        next_checkpoint: u64,
    }

    /// Runs the stage over `input` resumed at `resume`; returns the pieces it sent.
    fn run_stage(input: String, resume: u64, settings: Settings) -> Vec<Sent> {
        run_isolating(input, resume, None, settings)
    }

    fn run_isolating(
        input: String,
        resume: u64,
        isolate: Option<Isolate>,
        settings: Settings,
    ) -> Vec<Sent> {
        let (bytes_tx, bytes_rx) = tokio::sync::mpsc::channel(4);
        let (out_tx, mut out_rx) = tokio::sync::mpsc::channel(1 << 16);
        bytes_tx.blocking_send(Ok(Bytes::from(input))).unwrap();
        drop(bytes_tx);
        let source = SourceName {
            bucket: "b".into(),
            key: "k".into(),
        };
        run(
            bytes_rx,
            out_tx,
            source,
            resume,
            isolate,
            settings,
            ByteCounter::default(),
        );
        let mut sent = Vec::new();
        while let Ok(Decoded::Piece(piece)) = out_rx.try_recv() {
            let rows = piece.batch.as_ref().map_or_else(Vec::new, |batch| {
                let index = batch
                    .column_by_name("_source_index")
                    .unwrap()
                    .as_primitive::<Int64Type>();
                index.values().to_vec()
            });
            sent.push(Sent {
                rows,
                end_of_chunk: piece.end_of_chunk,
                next_checkpoint: piece.next_checkpoint,
            });
        }
        sent
    }

    /// Runs the stage over `records` NDJSON records resumed at `resume`; returns the source
    /// indices of the rows, chunk by chunk.
    fn indices(
        records: usize,
        resume: u64,
        chunk_records: usize,
        batch_records: usize,
    ) -> Vec<Vec<i64>> {
        isolated(records, resume, None, chunk_records, batch_records)
    }

    fn isolated(
        records: usize,
        resume: u64,
        isolate: Option<Isolate>,
        chunk_records: usize,
        batch_records: usize,
    ) -> Vec<Vec<i64>> {
        let input: String = (0..records).map(|i| format!("{{\"i\":{i}}}\n")).collect();
        let settings = Settings {
            chunk_records,
            batch_records,
            ..Settings::default()
        };
        let mut chunks = Vec::new();
        let mut current = Vec::new();
        for piece in run_isolating(input, resume, isolate, settings) {
            assert!(piece.rows.len() <= batch_records);
            current.extend(piece.rows);
            if piece.end_of_chunk {
                assert_eq!(piece.next_checkpoint, *current.last().unwrap() as u64 + 1);
                chunks.push(std::mem::take(&mut current));
            }
        }
        assert!(current.is_empty(), "every chunk is closed");
        chunks
    }

    #[test]
    fn chunks_hold_exactly_chunk_records() {
        let chunks = indices(1000, 0, 300, 128);
        let sizes: Vec<usize> = chunks.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![300, 300, 300, 100]);
        assert_eq!(chunks.concat(), (0..1000).collect::<Vec<i64>>());
    }

    #[test]
    fn batches_are_cut_by_bytes_when_records_are_large() {
        let input: String = (0..100)
            .map(|i| format!("{{\"i\":\"{i:04}\"}}\n"))
            .collect();
        // Records are 12 bytes: at most 3 fit in 40 bytes, however many records a batch may hold.
        let settings = Settings {
            batch_bytes: 40,
            ..Settings::default()
        };
        let mut seen = Vec::new();
        for piece in run_stage(input, 0, settings) {
            assert!(piece.rows.len() <= 3, "{} rows", piece.rows.len());
            seen.extend(piece.rows);
        }
        assert_eq!(seen, (0..100).collect::<Vec<i64>>());
    }

    /// Regression: chunks made only of records below the checkpoint once made the stage spin.
    #[test]
    fn resuming_skips_committed_records_and_terminates() {
        let chunks = indices(1000, 650, 100, 50);
        assert_eq!(chunks.concat(), (650..1000).collect::<Vec<i64>>());
        assert!(chunks.iter().all(|c| c.len() <= 100));
    }

    /// A record the database refused gets a chunk of its own, wherever it lies in a
    /// batch or a chunk; the chunks around it stay as they were.
    #[test]
    fn an_isolated_record_gets_a_chunk_of_its_own() {
        for (resume, at) in [(0, 0), (0, 1), (0, 250), (100, 100), (100, 299), (0, 999)] {
            let chunks = isolated(1000, resume, Some(Isolate(at)), 300, 128);
            assert_eq!(chunks.concat(), (resume as i64..1000).collect::<Vec<i64>>());
            let alone = chunks.iter().position(|c| c == &vec![at as i64]);
            assert!(alone.is_some(), "resume {resume}, isolate {at}: {chunks:?}");
            assert!(chunks.iter().all(|c| c.len() <= 300));
        }
    }
}
