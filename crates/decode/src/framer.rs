//! Push-based framing of a decompressed JSON log stream into record byte spans.
//!
//! The [`Framer`] owns exactly one job: find where each log record starts and
//! ends in a stream of decompressed bytes, and hand out each record's raw bytes
//! together with its record index and byte offset in the stream. It does not
//! parse or validate JSON inside a record itself (`validate` does that, later or,
//! given [`Framer::with_check`], while it frames: then an object record's bytes
//! are read once, by the validator, which also finds where the object ends), and it
//! does no I/O: callers push byte slices in with [`Framer::push`], in any split
//! they like, and get completed records appended to a reusable [`Frames`]
//! buffer (in the style of arrow-json's `Decoder`: bytes in, records out).
//! Keeping it free of tokio and readers makes it cheap to test exhaustively
//! (every chunk split of every input must give the same records) and to fuzz.
//!
//! # Layouts
//!
//! The layout is chosen from the first non-whitespace byte of the stream (a
//! UTF-8 byte order mark `EF BB BF` at the very start is skipped, but still
//! counted in offsets):
//!
//! * `[` — [`Layout::Array`]: one top-level JSON array of records. Elements
//!   are separated by `,` and JSON whitespace; a missing comma between two
//!   elements, repeated commas and a trailing comma before `]` are tolerated.
//!   After the closing `]` only whitespace may follow, or another `[` that
//!   starts another array framed the same way (concatenated files, e.g. a
//!   multi-member gzip of several array files); record indices continue. Any
//!   other byte there is a fatal [`FrameError::TrailingData`], and end of
//!   input inside an array is a fatal [`FrameError::UnexpectedEof`].
//!   Elements starting with `{` are [`FrameKind::Object`]; everything else is
//!   [`FrameKind::NotObject`]: arrays are scanned structurally, strings up to
//!   their closing quote, and any other token (numbers, `true`, stray bytes)
//!   up to the next `,`, `]` or whitespace.
//! * anything else — [`Layout::Lines`]: NDJSON or whitespace-separated
//!   objects, pretty-printed (multi-line) objects included. A record starting
//!   with `{` or `[` is scanned structurally (string-aware, counting the depth
//!   of `{[` against `]}` without matching their kinds) until the depth returns
//!   to zero; anything after its closing bracket on the same line is the next
//!   record. A record starting with any other byte runs to the end of its line
//!   and is [`InvalidReason::NotAnObject`].
//!
//! # Recovery rules (Lines layout)
//!
//! One bad line must not swallow the records after it, so:
//!
//! 1. a raw newline inside a string ends the record at that newline, as
//!    [`InvalidReason::UnterminatedString`] (an escaped raw newline too: a raw
//!    newline is never valid inside a JSON string);
//! 2. a newline, outside strings and at depth > 0, immediately followed by
//!    `{` (a new object at column 0) ends the record before that newline, as
//!    [`InvalidReason::UnclosedBeforeNextLine`]; the `{` starts the next
//!    record;
//! 3. a record still open at end of input becomes
//!    [`InvalidReason::TruncatedAtEnd`] rather than an error.
//!
//! Record bytes never include surrounding whitespace or separators; the bytes
//! of invalid records are trimmed of trailing whitespace (so the `\r` of a CRLF
//! line ending is not part of a record).
//!
//! # Limits
//!
//! A record longer than [`Framer::with_max_record_bytes`] (default
//! [`DEFAULT_MAX_RECORD_BYTES`], 64 MiB) is framed alone as
//! [`FrameKind::TooLarge`]: its bytes in the output are only its first
//! [`KEPT_PREFIX_BYTES`] (1 MiB, or the limit if smaller), and the framer
//! goes on scanning it, still tracking strings and brackets, without keeping the
//! rest. It ends where it would have ended without a limit (arrays: after the
//! element; NDJSON: where the record closes, which for a line of JSON is the
//! end of the line), so the records after it are framed exactly as without
//! a limit. The framer holds at most the limit of a record's bytes however long
//! it is, so a stream without record boundaries cannot make it buffer without
//! bound. The limit applies to the record's bytes as they would be emitted
//! (invalid records lose their trailing whitespace), so the outcome does not
//! depend on how the input is split into pushes.

use arrow::buffer::Buffer;
use memchr::{memchr, memchr2, memchr3};

use super::swar;
use super::validate::Checked;
use crate::buffers;

/// Default for [`Framer::with_max_record_bytes`]: 64 MiB.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// How much of a record over the limit is kept (its first bytes): 1 MiB, or the limit if
/// smaller (but at least one byte).
pub const KEPT_PREFIX_BYTES: usize = 1024 * 1024;

/// The UTF-8 byte order mark, skipped at the very start of a stream.
const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// How a framed record looked to the framer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Starts with `{` and is structurally closed (its JSON is not validated).
    Object,
    /// A well-delimited value that is not an object (array, string, scalar).
    NotObject,
    /// Bytes that could not be framed as a value; see the reason.
    Invalid(InvalidReason),
    /// A record over the size limit: only its first bytes are in the output.
    TooLarge(Oversize),
}

/// A record over [`Framer::with_max_record_bytes`]: its size and the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversize {
    /// The record's size in bytes (as it would have been emitted).
    pub bytes: u64,
    /// The limit it exceeds.
    pub limit: u64,
}

impl std::fmt::Display for Oversize {
    /// `record of 280,123,456 bytes exceeds the limit of 64 MiB`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "record of {} bytes exceeds the limit of {}",
            Grouped(self.bytes),
            Size(self.limit)
        )
    }
}

/// A number with thousands separators: `280,123,456`.
struct Grouped(u64);

impl std::fmt::Display for Grouped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.0.to_string();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                f.write_str(",")?;
            }
            write!(f, "{digit}")?;
        }
        Ok(())
    }
}

/// A size in whole MiB where it is one (`64 MiB`), else in bytes (`1,000 bytes`).
pub(crate) struct Size(pub u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const MIB: u64 = 1024 * 1024;
        match self.0 {
            n if n > 0 && n.is_multiple_of(MIB) => write!(f, "{} MiB", Grouped(n / MIB)),
            1 => f.write_str("1 byte"),
            n => write!(f, "{} bytes", Grouped(n)),
        }
    }
}

/// Why a record was framed as [`FrameKind::Invalid`] (Lines layout only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidReason {
    /// A raw newline occurred inside a string; the record ends there.
    UnterminatedString,
    /// A new line started with `{` while the record was still open.
    UnclosedBeforeNextLine,
    /// The line does not start with `{` or `[`.
    NotAnObject,
    /// The input ended while the record was still open.
    TruncatedAtEnd,
}

impl InvalidReason {
    /// A short human-readable description, for rejection reports.
    pub fn message(&self) -> &'static str {
        match self {
            Self::UnterminatedString => "unterminated string",
            Self::UnclosedBeforeNextLine => "object not closed before the next line",
            Self::NotAnObject => "not a JSON object",
            Self::TruncatedAtEnd => "truncated record at end of input",
        }
    }
}

/// The input layout, detected from the first non-whitespace byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One (or several concatenated) top-level JSON arrays of records.
    Array,
    /// NDJSON / whitespace-separated (possibly pretty-printed) objects.
    Lines,
}

/// One framed record: its bytes are `frames.bytes[start..end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Start of the record's bytes in [`Frames::bytes`].
    pub start: usize,
    /// End (exclusive) of the record's bytes in [`Frames::bytes`].
    pub end: usize,
    /// 0-based index of the record in the whole stream.
    pub index: u64,
    /// Byte offset of the record's first byte in the decompressed stream.
    pub offset: u64,
    /// How the record looked to the framer.
    pub kind: FrameKind,
    /// The record was validated while it was framed (see [`Framer::with_check`]).
    pub checked: Option<Checked>,
}

/// Output buffer: record bytes stored back to back (no separators) so `bytes`
/// and the frame starts can become an Arrow `StringArray`'s values/offsets
/// without copying. Reused between batches via [`Frames::clear`].
#[derive(Debug, Default)]
pub struct Frames {
    /// The records' bytes, back to back.
    pub bytes: Vec<u8>,
    /// One entry per record, in stream order.
    pub frames: Vec<Frame>,
}

impl Frames {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets all records, keeping the allocations.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
    }

    /// Forgets the first `n` records (already consumed), keeping the rest: the buffer then
    /// holds only records not yet consumed, however long the stream.
    pub fn consume(&mut self, n: usize) {
        if n >= self.frames.len() {
            self.clear();
            return;
        }
        let cut = self.frames[n].start;
        self.bytes.drain(..cut);
        self.frames.drain(..n);
        for frame in &mut self.frames {
            frame.start -= cut;
            frame.end -= cut;
        }
    }

    /// Forgets the first `n` records like [`Frames::consume`], handing their bytes over as
    /// an Arrow buffer instead of moving the rest: the bytes stay where the frames said
    /// (`frames[0].start..frames[n - 1].end` before the call), and the records not consumed
    /// move to a recycled buffer (at most a push's worth).
    pub fn detach(&mut self, n: usize) -> Buffer {
        let cut = self
            .frames
            .get(n)
            .map_or(self.bytes.len(), |next| next.start);
        // Room for what is held now (a batch and the rest): about what the next batch needs.
        // Not the capacity: each new buffer has some slack, so asking for the capacity would
        // grow the buffer with every batch.
        let mut rest = buffers::take(self.bytes.len());
        rest.extend_from_slice(&self.bytes[cut..]);
        let mut front = std::mem::replace(&mut self.bytes, rest);
        front.truncate(cut);
        self.frames.drain(..n.min(self.frames.len()));
        for frame in &mut self.frames {
            frame.start -= cut;
            frame.end -= cut;
        }
        buffers::into_arrow(front)
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// The bytes of the `i`-th record held (panics if out of range).
    pub fn record(&self, i: usize) -> &[u8] {
        let f = &self.frames[i];
        &self.bytes[f.start..f.end]
    }

    /// The records held, each with its bytes.
    pub fn iter(&self) -> impl Iterator<Item = (&Frame, &[u8])> {
        self.frames.iter().map(|f| (f, &self.bytes[f.start..f.end]))
    }
}

/// A fatal framing error; the framer is unusable afterwards.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The input ended inside a JSON array (Array layout).
    #[error(
        "unexpected end of input at byte {offset}: JSON array never closed \
         (last complete record index {})",
        IndexOrNone(*.last_index)
    )]
    UnexpectedEof {
        /// Stream offset at end of input.
        offset: u64,
        /// Index of the last record framed, if any.
        last_index: Option<u64>,
    },
    /// A byte other than whitespace or `[` followed the end of an array.
    #[error("unexpected byte 0x{byte:02x} at byte {offset} after the end of the JSON array")]
    TrailingData {
        /// Stream offset of the offending byte.
        offset: u64,
        /// The offending byte.
        byte: u8,
    },
}

/// Displays a record index, or `none`.
struct IndexOrNone(Option<u64>);

impl std::fmt::Display for IndexOrNone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(i) => write!(f, "{i}"),
            None => f.write_str("none"),
        }
    }
}

/// Where the framer is between bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At the stream start, this many BOM bytes matched so far.
    Bom(u8),
    /// Before the first non-whitespace byte.
    Start,
    /// Inside an array, between elements.
    ArrOpen,
    /// After the closing `]` of an array.
    ArrClosed,
    /// Lines layout, between records.
    LinesIdle,
    /// Inside a record; see [`Scan`].
    Record,
    /// A fatal error happened.
    Failed,
}

/// How the end of the current record is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Shape {
    /// An object, array or string: ends when depth returns to 0.
    #[default]
    Nested,
    /// An array-element token: ends before `,`, `]` or whitespace.
    Scalar,
    /// A Lines-layout non-object: ends before the newline.
    Line,
}

/// Scanner state of the current record, carried across pushes.
#[derive(Debug, Clone, Copy, Default)]
struct Scan {
    shape: Shape,
    /// Open `{`/`[` count (for [`Shape::Nested`]).
    depth: usize,
    in_string: bool,
    /// The previous byte was a backslash inside a string.
    escape: bool,
    /// Lines layout: the previous byte was a newline at depth > 0.
    nl_pending: bool,
}

/// Outcome of scanning the current record through (part of) one input.
enum Step {
    /// The record continues past the input.
    More,
    /// The record ends before input index `end`.
    Done {
        end: usize,
        invalid: Option<InvalidReason>,
    },
}

/// Outcome of scanning a string body.
enum Body {
    /// The string closed; scanning resumes at this index.
    Closed(usize),
    More,
    /// A raw newline at this index (Lines layout).
    Unterminated(usize),
}

/// Outcome of scanning outside strings inside a nested record.
enum Outside {
    /// A string opened; its body starts at this index.
    String(usize),
    More,
    /// Depth returned to 0; the record ends before this index.
    Closed(usize),
    /// A newline followed by `{` at depth > 0; the `{` is at this index.
    Unclosed(usize),
}

/// Push-based, I/O-free record framer; see the [module docs](self).
#[derive(Debug)]
pub struct Framer {
    mode: Mode,
    layout: Option<Layout>,
    scan: Scan,
    /// Stream offset of the current record's first byte.
    rec_offset: u64,
    /// Kind of the current record if it completes normally.
    rec_kind: FrameKind,
    /// Index in the current input where the current record's bytes resume.
    rec_from: usize,
    /// Bytes of the current record from earlier pushes, as many as may be emitted: up to
    /// the limit (the prefix when the record is over it).
    pending: Vec<u8>,
    /// Number of bytes of the current record from earlier pushes (held or not).
    pending_len: u64,
    /// Number of whitespace bytes at the end of those.
    pending_ws: u64,
    /// The current record is over the limit: `pending` holds only its first
    /// [`Framer::kept_bytes`].
    oversized: bool,
    next_index: u64,
    consumed: u64,
    max_record_bytes: usize,
    failed: Option<FrameError>,
    check: Option<CheckFn>,
}

/// Validates the object at the start of its input; see [`Framer::with_check`].
pub type CheckFn = fn(&[u8]) -> Option<Checked>;

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// A framer with default settings.
    pub fn new() -> Self {
        Self {
            mode: Mode::Bom(0),
            layout: None,
            scan: Scan::default(),
            rec_offset: 0,
            rec_kind: FrameKind::Object,
            rec_from: 0,
            pending: Vec::new(),
            pending_len: 0,
            pending_ws: 0,
            oversized: false,
            next_index: 0,
            consumed: 0,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
            failed: None,
            check: None,
        }
    }

    /// Frames objects by validating them: where a record starts with `{`, `check` (e.g.
    /// [`validate_leading_object`](super::validate::validate_leading_object)) is run on the
    /// rest of the pushed input; when it accepts an object that ends there, that is the
    /// record, emitted with its [`Checked`] result, and the structural scan is skipped: the
    /// record's bytes are read once instead of twice. Objects it refuses, or that run past
    /// the push, are framed as usual (a valid object ends where the scan would end it, so
    /// the frames are the same either way). In the Lines layout only objects without a
    /// newline are taken, as a newline may end a record there (recovery rule 2).
    pub fn with_check(mut self, check: CheckFn) -> Self {
        self.check = Some(check);
        self
    }

    /// Sets the largest record size in bytes; a larger record is framed as
    /// [`FrameKind::TooLarge`] with only its first bytes (see the [module docs](self)).
    /// Default: [`DEFAULT_MAX_RECORD_BYTES`] (64 MiB).
    pub fn with_max_record_bytes(mut self, n: usize) -> Self {
        self.max_record_bytes = n;
        self
    }

    /// Frame `input`, appending every record completed by it to `out`. Bytes
    /// of a record not yet complete are kept inside the framer. Returns `Err`
    /// only for fatal errors; after an error the framer is unusable and every
    /// further call returns the same error.
    pub fn push(&mut self, input: &[u8], out: &mut Frames) -> Result<(), FrameError> {
        self.check_failed()?;
        let result = self.process(input, self.consumed, out);
        self.consumed += input.len() as u64;
        result
    }

    /// End of input: flush a pending Lines record (as
    /// [`InvalidReason::TruncatedAtEnd`], or [`InvalidReason::NotAnObject`]
    /// for a last line without newline), or fail with
    /// [`FrameError::UnexpectedEof`] in Array layout if the array is not
    /// closed. Call it once, after the last push.
    pub fn finish(&mut self, out: &mut Frames) -> Result<(), FrameError> {
        self.check_failed()?;
        if let Mode::Bom(n) = self.mode {
            self.mode = Mode::Start;
            self.process(&BOM[..usize::from(n)], 0, out)?;
        }
        match (self.mode, self.layout) {
            (Mode::Record, Some(Layout::Lines)) => self.flush_truncated(out),
            (Mode::Record | Mode::ArrOpen, _) => Err(self.fail(FrameError::UnexpectedEof {
                offset: self.consumed,
                last_index: self.next_index.checked_sub(1),
            })),
            _ => Ok(()),
        }
    }

    /// The detected layout; `None` until the first non-whitespace byte.
    pub fn layout(&self) -> Option<Layout> {
        self.layout
    }

    /// Number of records framed so far, i.e. the next record's index.
    pub fn records_framed(&self) -> u64 {
        self.next_index
    }

    /// Number of bytes pushed so far, i.e. the stream offset of the next byte.
    pub fn bytes_consumed(&self) -> u64 {
        self.consumed
    }

    fn check_failed(&self) -> Result<(), FrameError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.mode = Mode::Failed;
        self.pending = Vec::new();
        self.failed = Some(e.clone());
        e
    }

    /// Frames `input`, whose first byte is at stream offset `base`.
    fn process(&mut self, input: &[u8], base: u64, out: &mut Frames) -> Result<(), FrameError> {
        self.rec_from = 0;
        let mut i = 0;
        while i < input.len() {
            i = match self.mode {
                Mode::Bom(n) => self.step_bom(n, input, i, out)?,
                Mode::Start => self.step_start(input, i, base, out),
                Mode::LinesIdle => self.step_lines_idle(input, i, base, out),
                Mode::ArrOpen => self.step_arr_open(input, i, base, out),
                Mode::ArrClosed => self.step_arr_closed(input, i, base)?,
                Mode::Record => self.step_record(input, i, out),
                Mode::Failed => return self.check_failed(),
            };
        }
        if self.mode == Mode::Record {
            self.stash(&input[self.rec_from..]);
        }
        Ok(())
    }

    /// Matches the BOM at the stream start; on a mismatch the bytes matched so
    /// far are replayed as ordinary data (at stream offset 0).
    fn step_bom(
        &mut self,
        n: u8,
        input: &[u8],
        i: usize,
        out: &mut Frames,
    ) -> Result<usize, FrameError> {
        let n = usize::from(n);
        if input[i] == BOM[n] {
            self.mode = if n + 1 == BOM.len() {
                Mode::Start
            } else {
                Mode::Bom(n as u8 + 1)
            };
            return Ok(i + 1);
        }
        self.mode = Mode::Start;
        if n > 0 {
            // The replayed bytes start a record; its bytes that are in this
            // input (before `i`) are now in `pending`.
            self.process(&BOM[..n], 0, out)?;
            self.rec_from = i;
        }
        Ok(i)
    }

    fn step_start(&mut self, input: &[u8], i: usize, base: u64, out: &mut Frames) -> usize {
        let j = skip_ws(input, i);
        match input.get(j) {
            None => j,
            Some(b'[') => {
                self.layout = Some(Layout::Array);
                self.mode = Mode::ArrOpen;
                j + 1
            }
            Some(_) => {
                self.layout = Some(Layout::Lines);
                self.begin_lines_record(input, j, base, out)
            }
        }
    }

    fn step_lines_idle(&mut self, input: &[u8], i: usize, base: u64, out: &mut Frames) -> usize {
        let j = skip_ws(input, i);
        if j == input.len() {
            return j;
        }
        self.begin_lines_record(input, j, base, out)
    }

    fn step_arr_open(&mut self, input: &[u8], mut i: usize, base: u64, out: &mut Frames) -> usize {
        while let Some(&b) = input.get(i) {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
                b']' => {
                    self.mode = Mode::ArrClosed;
                    return i + 1;
                }
                _ => return self.begin_array_element(input, i, base, out),
            }
        }
        i
    }

    fn step_arr_closed(&mut self, input: &[u8], i: usize, base: u64) -> Result<usize, FrameError> {
        let j = skip_ws(input, i);
        match input.get(j) {
            None => Ok(j),
            Some(b'[') => {
                self.mode = Mode::ArrOpen;
                Ok(j + 1)
            }
            Some(&byte) => Err(self.fail(FrameError::TrailingData {
                offset: base + j as u64,
                byte,
            })),
        }
    }

    /// Starts a Lines-layout record at the non-whitespace byte `input[j]`.
    fn begin_lines_record(&mut self, input: &[u8], j: usize, base: u64, out: &mut Frames) -> usize {
        if let Some(end) = self.checked_object::<true>(input, j, base, out) {
            self.mode = Mode::LinesIdle;
            return end;
        }
        let (shape, kind) = match input[j] {
            b'{' => (Shape::Nested, FrameKind::Object),
            b'[' => (Shape::Nested, FrameKind::NotObject),
            _ => (Shape::Line, FrameKind::Invalid(InvalidReason::NotAnObject)),
        };
        self.begin_record(shape, kind, input[j], j, base)
    }

    /// Starts an array element at `input[j]` (not whitespace, `,` or `]`).
    fn begin_array_element(
        &mut self,
        input: &[u8],
        j: usize,
        base: u64,
        out: &mut Frames,
    ) -> usize {
        if let Some(end) = self.checked_object::<false>(input, j, base, out) {
            self.mode = Mode::ArrOpen;
            return end;
        }
        let (shape, kind) = match input[j] {
            b'{' => (Shape::Nested, FrameKind::Object),
            b'[' | b'"' => (Shape::Nested, FrameKind::NotObject),
            _ => (Shape::Scalar, FrameKind::NotObject),
        };
        self.begin_record(shape, kind, input[j], j, base)
    }

    /// The fast path of [`Framer::with_check`] for a record starting at `input[j]`: emits
    /// it and returns the index after it, or None to frame it the usual way.
    #[inline]
    fn checked_object<const LINES: bool>(
        &mut self,
        input: &[u8],
        j: usize,
        base: u64,
        out: &mut Frames,
    ) -> Option<usize> {
        let check = self.check?;
        if input[j] != b'{' || !self.pending.is_empty() {
            return None;
        }
        let checked = check(&input[j..])?;
        let bytes = &input[j..j + checked.len()];
        if bytes.len() > self.max_record_bytes || (LINES && memchr(b'\n', bytes).is_some()) {
            return None;
        }
        let start = out.bytes.len();
        out.bytes.extend_from_slice(bytes);
        out.frames.push(Frame {
            start,
            end: out.bytes.len(),
            index: self.next_index,
            offset: base + j as u64,
            kind: FrameKind::Object,
            checked: Some(checked),
        });
        self.next_index += 1;
        Some(j + bytes.len())
    }

    /// Enters [`Mode::Record`] with the record's first byte `first` at
    /// `input[j]` consumed; returns the index to continue at.
    fn begin_record(
        &mut self,
        shape: Shape,
        kind: FrameKind,
        first: u8,
        j: usize,
        base: u64,
    ) -> usize {
        self.mode = Mode::Record;
        self.rec_kind = kind;
        self.rec_offset = base + j as u64;
        self.rec_from = j;
        self.scan = Scan {
            shape,
            depth: usize::from(matches!(first, b'{' | b'[')),
            in_string: first == b'"',
            escape: false,
            nl_pending: false,
        };
        j + 1
    }

    /// Continues the current record at `input[i]`.
    fn step_record(&mut self, input: &[u8], i: usize, out: &mut Frames) -> usize {
        let lines = self.layout == Some(Layout::Lines);
        let step = match self.scan.shape {
            Shape::Nested if lines => scan_nested::<true>(&mut self.scan, input, i),
            Shape::Nested => scan_nested::<false>(&mut self.scan, input, i),
            Shape::Scalar => scan_scalar(input, i),
            Shape::Line => scan_line(input, i),
        };
        let Step::Done { end, invalid } = step else {
            return input.len();
        };
        let kind = invalid.map_or(self.rec_kind, FrameKind::Invalid);
        self.emit(&input[self.rec_from..end], kind, out);
        self.mode = if lines {
            Mode::LinesIdle
        } else {
            Mode::ArrOpen
        };
        end
    }

    /// Emits the open Lines record at end of input.
    fn flush_truncated(&mut self, out: &mut Frames) -> Result<(), FrameError> {
        let kind = match self.scan.shape {
            Shape::Line => self.rec_kind,
            _ => FrameKind::Invalid(InvalidReason::TruncatedAtEnd),
        };
        self.emit(&[], kind, out);
        self.mode = Mode::LinesIdle;
        Ok(())
    }

    /// How many bytes of a record over the limit are kept.
    fn kept_bytes(&self) -> usize {
        self.max_record_bytes.clamp(1, KEPT_PREFIX_BYTES)
    }

    /// Appends the current record (the bytes from earlier pushes, then `tail`) to `out`:
    /// the whole record, or only its first bytes when it is over the limit.
    fn emit(&mut self, tail: &[u8], kind: FrameKind, out: &mut Frames) {
        let mut len = self.pending_len + tail.len() as u64;
        if matches!(kind, FrameKind::Invalid(_)) {
            let ws = trailing_ws(tail);
            len -= if ws == tail.len() {
                self.pending_ws + ws as u64
            } else {
                ws as u64
            };
        }
        let (kind, emitted) = if len > self.max_record_bytes as u64 {
            let oversize = Oversize {
                bytes: len,
                limit: self.max_record_bytes as u64,
            };
            (FrameKind::TooLarge(oversize), self.kept_bytes())
        } else {
            (kind, len as usize)
        };
        // `pending` holds every byte from earlier pushes unless the record is over the
        // limit or ends in whitespace it loses: in both cases it holds all that is emitted.
        let from_pending = self.pending.len().min(emitted);
        debug_assert!(
            from_pending == emitted || self.pending.len() as u64 == self.pending_len,
            "bytes of an emitted record were dropped"
        );
        let start = out.bytes.len();
        out.bytes.extend_from_slice(&self.pending[..from_pending]);
        out.bytes.extend_from_slice(&tail[..emitted - from_pending]);
        out.frames.push(Frame {
            start,
            end: out.bytes.len(),
            index: self.next_index,
            offset: self.rec_offset,
            kind,
            checked: None,
        });
        self.next_index += 1;
        if self.pending.capacity() >= KEPT_PREFIX_BYTES {
            // A large record was held: give its memory back instead of keeping it for the
            // rest of the file.
            self.pending = Vec::new();
        }
        self.pending.clear();
        self.oversized = false;
        self.pending_len = 0;
        self.pending_ws = 0;
    }

    /// Keeps the bytes of the unfinished record at the end of a push, as many as it may
    /// emit: up to the limit, or the first [`Framer::kept_bytes`] once the record is over
    /// it. The size check ignores trailing whitespace, which a record may yet lose to
    /// trimming, so it decides exactly as [`Framer::emit`] will.
    fn stash(&mut self, tail: &[u8]) {
        let ws = trailing_ws(tail);
        self.pending_ws = if ws == tail.len() {
            self.pending_ws + ws as u64
        } else {
            ws as u64
        };
        self.pending_len += tail.len() as u64;
        if !self.oversized && self.pending_len - self.pending_ws > self.max_record_bytes as u64 {
            // Over the limit whatever follows: keep the first bytes only, from now on.
            self.oversized = true;
            let room = self.kept_bytes().saturating_sub(self.pending.len());
            self.pending
                .extend_from_slice(&tail[..room.min(tail.len())]);
            self.pending.truncate(self.kept_bytes());
            self.pending.shrink_to(self.kept_bytes());
            return;
        }
        let cap = if self.oversized {
            self.kept_bytes()
        } else {
            self.max_record_bytes.max(self.kept_bytes())
        };
        let take = cap.saturating_sub(self.pending.len()).min(tail.len());
        let want = self.pending.len() + take;
        if want > self.pending.capacity() {
            // Grow as a Vec would, but never past what may be held.
            let target = (self.pending.capacity() * 2).clamp(want, cap);
            self.pending.reserve_exact(target - self.pending.len());
        }
        self.pending.extend_from_slice(&tail[..take]);
    }

    /// Bytes held for the record being framed (allocated), for tests of the memory bound.
    #[cfg(test)]
    fn held(&self) -> usize {
        self.pending.capacity()
    }
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Index of the first non-whitespace byte at or after `i` (or `input.len()`).
#[inline]
fn skip_ws(input: &[u8], mut i: usize) -> usize {
    while i < input.len() && is_ws(input[i]) {
        i += 1;
    }
    i
}

/// Number of whitespace bytes at the end of `bytes`.
fn trailing_ws(bytes: &[u8]) -> usize {
    bytes.iter().rev().take_while(|&&b| is_ws(b)).count()
}

/// Scans an object, array or string record from `input[i]` on.
#[inline]
fn scan_nested<const LINES: bool>(s: &mut Scan, input: &[u8], mut i: usize) -> Step {
    loop {
        if s.in_string {
            match string_body::<LINES>(s, input, i) {
                Body::Closed(next) if s.depth == 0 => {
                    return Step::Done {
                        end: next,
                        invalid: None,
                    };
                }
                Body::Closed(next) => i = next,
                Body::More => return Step::More,
                Body::Unterminated(end) => {
                    return Step::Done {
                        end,
                        invalid: Some(InvalidReason::UnterminatedString),
                    };
                }
            }
        }
        match outside_strings::<LINES>(s, input, i) {
            Outside::String(next) => i = next,
            Outside::More => return Step::More,
            Outside::Closed(end) => return Step::Done { end, invalid: None },
            Outside::Unclosed(end) => {
                return Step::Done {
                    end,
                    invalid: Some(InvalidReason::UnclosedBeforeNextLine),
                };
            }
        }
    }
}

/// Scans a string body from `input[i]` on (after the opening quote or inside
/// it). In Lines layout a raw newline ends it as unterminated.
#[inline]
fn string_body<const LINES: bool>(s: &mut Scan, input: &[u8], mut i: usize) -> Body {
    loop {
        if s.escape {
            let Some(&b) = input.get(i) else {
                return Body::More;
            };
            if LINES && b == b'\n' {
                return Body::Unterminated(i);
            }
            s.escape = false;
            i += 1;
        }
        let Some(k) = find_in_string::<LINES>(&input[i..]) else {
            return Body::More;
        };
        i += k;
        match input[i] {
            b'"' => {
                s.in_string = false;
                return Body::Closed(i + 1);
            }
            b'\\' => {
                s.escape = true;
                i += 1;
            }
            _ => return Body::Unterminated(i),
        }
    }
}

/// Bytes of a string tested eight at a time before the rest is left to `memchr`.
const SHORT_STRING: usize = 32;

/// Index of the first `"` or `\` in `rest` (or raw newline in Lines layout). Most strings
/// of a log record are short: they are tested eight bytes at a time (SWAR), which costs
/// less than `memchr`'s setup; longer ones go on with `memchr`.
#[inline(always)]
fn find_in_string<const LINES: bool>(rest: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < SHORT_STRING && i + 8 <= rest.len() {
        let w = swar::word(rest, i);
        let mut m = swar::eq(w, b'"') | swar::eq(w, b'\\');
        if LINES {
            m |= swar::eq(w, b'\n');
        }
        if m != 0 {
            return Some(i + swar::first(m));
        }
        i += 8;
    }
    let tail = &rest[i..];
    let hit = if LINES {
        memchr3(b'"', b'\\', b'\n', tail)
    } else {
        memchr2(b'"', b'\\', tail)
    };
    hit.map(|k| i + k)
}

/// Scans outside strings at depth > 0 from `input[i]` on.
#[inline]
fn outside_strings<const LINES: bool>(s: &mut Scan, input: &[u8], mut i: usize) -> Outside {
    if LINES && s.nl_pending {
        let Some(&b) = input.get(i) else {
            return Outside::More;
        };
        s.nl_pending = false;
        if b == b'{' {
            return Outside::Unclosed(i);
        }
    }
    while let Some(&b) = input.get(i) {
        i += 1;
        match b {
            b'"' => {
                s.in_string = true;
                return Outside::String(i);
            }
            b'{' | b'[' => s.depth += 1,
            b'}' | b']' => {
                s.depth -= 1;
                if s.depth == 0 {
                    return Outside::Closed(i);
                }
            }
            b'\n' if LINES => match input.get(i) {
                Some(b'{') => return Outside::Unclosed(i),
                Some(_) => {}
                None => {
                    s.nl_pending = true;
                    return Outside::More;
                }
            },
            _ => {}
        }
    }
    Outside::More
}

/// Scans an array-element token: it ends before `,`, `]` or whitespace.
fn scan_scalar(input: &[u8], i: usize) -> Step {
    match input[i..]
        .iter()
        .position(|&b| b == b',' || b == b']' || is_ws(b))
    {
        Some(k) => Step::Done {
            end: i + k,
            invalid: None,
        },
        None => Step::More,
    }
}

/// Scans a Lines-layout non-object line: it ends before the newline.
fn scan_line(input: &[u8], i: usize) -> Step {
    match memchr(b'\n', &input[i..]) {
        Some(k) => Step::Done {
            end: i + k,
            invalid: None,
        },
        None => Step::More,
    }
}

#[cfg(test)]
mod consume_tests {
    use super::*;

    fn three_records() -> Frames {
        let mut frames = Frames::new();
        Framer::new()
            .push(br#"[{"a":1},{"bb":2},{"ccc":3}]"#, &mut frames)
            .unwrap();
        frames
    }

    fn kept(frames: &Frames) -> Vec<(u64, &[u8])> {
        frames.iter().map(|(f, b)| (f.index, b)).collect()
    }

    #[test]
    fn consume_keeps_the_rest_addressable() {
        let mut frames = three_records();
        frames.consume(1);
        let kept = kept(&frames);
        assert_eq!(
            kept,
            vec![(1, &br#"{"bb":2}"#[..]), (2, &br#"{"ccc":3}"#[..])]
        );
        assert_eq!(frames.bytes.len(), 17);
        frames.consume(5);
        assert!(frames.is_empty() && frames.bytes.is_empty());
    }

    #[test]
    fn detach_hands_over_the_front_and_keeps_the_rest_addressable() {
        let mut frames = three_records();
        let address = frames.bytes.as_ptr();
        let front = frames.detach(2);
        assert_eq!(front.as_slice(), br#"{"a":1}{"bb":2}"#);
        assert_eq!(front.as_ptr(), address, "the front is not copied");
        assert_eq!(kept(&frames), vec![(2, &br#"{"ccc":3}"#[..])]);
        assert_eq!(frames.bytes.len(), 9);
        let last = frames.detach(5);
        assert_eq!(last.as_slice(), br#"{"ccc":3}"#);
        assert!(frames.is_empty() && frames.bytes.is_empty());
    }

    #[test]
    fn detaching_batch_after_batch_does_not_grow_the_buffer() {
        let mut framer = Framer::new();
        let mut frames = Frames::new();
        let record = format!("{{\"a\":\"{}\"}},", "x".repeat(1000));
        framer.push(b"[", &mut frames).unwrap();
        let mut most = 0;
        for _ in 0..1000 {
            for _ in 0..100 {
                framer.push(record.as_bytes(), &mut frames).unwrap();
            }
            let n = frames.len() - 10;
            let front = frames.detach(n);
            assert_eq!(front.len(), n * (record.len() - 1));
            most = most.max(frames.bytes.capacity());
        }
        assert!(
            most < 4 * 100 * record.len(),
            "the frame buffer grew to {most} bytes for batches of ~100 KB"
        );
    }

    /// The eight-bytes-at-a-time search finds exactly what a byte-by-byte search finds, for
    /// every special byte at every position across the SWAR/memchr boundary, after bytes
    /// that could provoke a borrow (0x00, 0x01, bytes just below and above the targets).
    #[test]
    fn find_in_string_agrees_with_a_plain_search() {
        let fillers: &[u8] = &[b'a', 0x00, 0x01, b'!', b'#', b'[', b']', b'\t', 0x0b, 0xff];
        for len in 0..80 {
            for &filler in fillers {
                for at in 0..=len {
                    for special in [b'"', b'\\', b'\n'] {
                        let mut bytes = vec![filler; len];
                        if at < len {
                            bytes[at] = special;
                        }
                        let plain = |lines: bool| {
                            bytes
                                .iter()
                                .position(|&b| b == b'"' || b == b'\\' || (lines && b == b'\n'))
                        };
                        assert_eq!(find_in_string::<true>(&bytes), plain(true));
                        assert_eq!(find_in_string::<false>(&bytes), plain(false));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{ReadsAll, validate_leading_object};

    const O: FrameKind = FrameKind::Object;
    const N: FrameKind = FrameKind::NotObject;
    const UNTERMINATED: FrameKind = FrameKind::Invalid(InvalidReason::UnterminatedString);
    const UNCLOSED: FrameKind = FrameKind::Invalid(InvalidReason::UnclosedBeforeNextLine);
    const NOT_OBJ: FrameKind = FrameKind::Invalid(InvalidReason::NotAnObject);
    const TRUNCATED: FrameKind = FrameKind::Invalid(InvalidReason::TruncatedAtEnd);

    /// (bytes, index, offset, kind) of one record.
    type Rec = (Vec<u8>, u64, u64, FrameKind);
    type Outcome = (Vec<Rec>, Option<FrameError>);

    fn drain(out: &mut Frames, recs: &mut Vec<Rec>) {
        let mut prev_end = 0;
        for (f, b) in out.iter() {
            assert!(f.start == prev_end && f.start <= f.end && f.end <= out.bytes.len());
            prev_end = f.end;
            if let Some(checked) = f.checked {
                assert_eq!(f.kind, O);
                // SAFETY: the framer emitted these bytes with this result. In debug builds
                // `apply` also compares it with the validator's verdict on the record alone.
                let (text, _, _) = unsafe { checked.apply::<ReadsAll>(b) };
                assert_eq!(text.as_bytes(), b);
            }
            recs.push((b.to_vec(), f.index, f.offset, f.kind));
        }
        assert_eq!(prev_end, out.bytes.len(), "bytes hold only record bytes");
        out.clear();
    }

    /// Pushes `input` in pieces whose sizes `next` picks, then finishes; twice, with and
    /// without the validator framing objects ([`Framer::with_check`]), which must agree.
    fn run_with(input: &[u8], limit: usize, mut next: impl FnMut() -> usize) -> Outcome {
        let mut sizes = Vec::new();
        let plain = run_framer(Framer::new().with_max_record_bytes(limit), input, || {
            let n = next();
            sizes.push(n);
            n
        });
        let mut replay = sizes.into_iter();
        let framer = Framer::new()
            .with_max_record_bytes(limit)
            .with_check(validate_leading_object::<ReadsAll>);
        let checked = run_framer(framer, input, || replay.next().expect("same pushes"));
        assert_eq!(
            checked,
            plain,
            "framing with the validator, input {:?}",
            String::from_utf8_lossy(input)
        );
        plain
    }

    fn run_framer(mut framer: Framer, input: &[u8], mut next: impl FnMut() -> usize) -> Outcome {
        let mut out = Frames::new();
        let mut recs = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(next().clamp(1, rest.len()));
            rest = tail;
            let result = framer.push(chunk, &mut out);
            drain(&mut out, &mut recs);
            if let Err(e) = result {
                assert_eq!(framer.push(b"{}", &mut out), Err(e.clone()));
                assert_eq!(framer.finish(&mut out), Err(e.clone()));
                assert!(out.is_empty());
                return (recs, Some(e));
            }
        }
        let result = framer.finish(&mut out);
        drain(&mut out, &mut recs);
        assert_eq!(framer.bytes_consumed(), input.len() as u64);
        assert_eq!(framer.records_framed(), recs.len() as u64);
        (recs, result.err())
    }

    fn run(input: &[u8]) -> Outcome {
        run_with(input, DEFAULT_MAX_RECORD_BYTES, || usize::MAX)
    }

    /// Expected records: offsets found by searching `input` in order.
    fn expect(input: &[u8], recs: &[(&[u8], FrameKind)]) -> Vec<Rec> {
        let mut from = 0;
        let mut expected = Vec::new();
        for (i, (bytes, kind)) in recs.iter().enumerate() {
            let at = input[from..]
                .windows(bytes.len())
                .position(|w| w == *bytes)
                .unwrap_or_else(|| panic!("{:?} not in input", String::from_utf8_lossy(bytes)))
                + from;
            from = at + bytes.len();
            expected.push((bytes.to_vec(), i as u64, at as u64, *kind));
        }
        expected
    }

    fn assert_frames(input: &[u8], recs: &[(&[u8], FrameKind)]) {
        let (got, err) = run(input);
        assert_eq!(err, None, "input {:?}", String::from_utf8_lossy(input));
        assert_eq!(
            got,
            expect(input, recs),
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }

    /// Small deterministic xorshift generator.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn corpus() -> Vec<Vec<u8>> {
        let texts: &[&[u8]] = &[
            b"",
            b"  \n\t\r\n ",
            br#"[{"a":1},{"b":2}]"#,
            b"[ {\"a\":1} ,\n {\"b\":[1,2]} ]\n",
            b"{\"a\":1}\n{\"b\":2}\n",
            b"{\"a\":1}\r\n{\"b\":2}\r\n",
            b"{\n  \"a\": 1,\n  \"b\": {\n    \"c\": [1, 2]\n  }\n}\n{\n  \"d\": 2\n}\n",
            b"{\"s\":\"{[}],\"}\n{\"t\":\"]]]\"}",
            br#"{"s":"a\"}b\\"}
{"t":"\\\\","u":"\\\""}"#,
            br#"[{"s":"a\"]b\\"},{"t":"\\\\"}, "x\"y", "\\"]"#,
            b"[[1,[2,3]],{\"a\":[{}]}]",
            b"[1, -2.5e3, \"x,]\", true, false, null, {\"a\":1}]",
            b"{\"a\":1}\n{\"b\":\n{\"c\":3}\n",
            b"{\"a\":\"x\n{\"b\":2}",
            b"not json\n{\"x\":1}",
            b"[{\"a\":1},]",
            b"[{\"a\":1},,{\"b\":2},]",
            b"[{\"a\":1}]\n[{\"b\":2}]\n",
            b"[1][2] [ ]",
            b"[{\"a\":1}{\"b\":2} {\"c\":3}\"s\"1]",
            b"{\"a\":1} xyz\n",
            b"{\"a\":1}\n[1,2]\n",
            b"{\"a\":1}\n{\"b\":",
            b"{\"a\":1}\nfoo",
            b"{\"a\":1}\nfoo  \r\n  bar\r\n",
            b"\xEF\xBB{\"a\":1}\n{\"b\":1}",
            b"\xEF",
            b"\xEF\xBB",
            b"\xEFx\n{\"a\":1}",
            b"\xEF\xBB\xBF",
            b"\xEF\xBB\xBF \n",
            b"\xEF\xBB\xBF[{\"a\":1}]",
            b"\xEF\xBB\xBF{\"a\":1}\n",
            b"[{\"a\":1}] x",
            b"[{\"a\":1}]\n\xEF\xBB\xBF[]",
            b"[{\"a\":1}",
            b"[",
            b"[1",
            b"[\"abc\\",
            b"{\"a\":\"x\\\n{\"b\":2}",
            b"{\"a\":\"x\\\\\n{\"b\":2}",
            b"{\"a\":1} {\"b\":2}{\"c\":3}",
            b"{\"a\":\n{\"b\":1}}\n",
            b"{\"b\": \r\n{\"c\":3}\r\n",
            b"{\"a\":\n\n{\"b\":1}\n",
            b"{\"a\":[\n1,\n{\"x\":1}\n]}\n",
            b"}\n]]\n{\"a\":1}}\n",
            b"{\"a\":1}\n\"str\"\n123\n",
            b"[\"\\u00e9\\n\", \"\\\\\\\"\"]",
            b"{\"a\":\"\\\"\\\\\\\"\"}\n",
        ];
        let mut all: Vec<Vec<u8>> = texts.iter().map(|t| t.to_vec()).collect();
        let utf8 = [
            "{\"s\":\"é\"}\n{\"s\":\"日本\"}\n{\"s\":\"😀\",\"t\":\"{é}\"}\n",
            "[{\"s\":\"é\"},\"日本\",{\"😀\":\"\\\"😀\\\"\"}]",
            "\u{FEFF}{\"s\":\"é\"}\n",
            "\u{FEFF}[\"é\", {\"日本\":[\"😀\"]}]",
            "日本\n{\"a\":1}\n",
        ];
        all.extend(utf8.iter().map(|s| s.as_bytes().to_vec()));
        all.push(generated(40));
        all.push(generated_array(30));
        all
    }

    /// NDJSON log-like records, some pretty-printed and some broken.
    fn generated(n: usize) -> Vec<u8> {
        let mut s = String::new();
        for i in 0..n {
            match i % 7 {
                0 => s.push_str(&format!("{{\"i\":{i},\"msg\":\"a \\\"q\\\" {{[\"}}\n")),
                1 => s.push_str(&format!(
                    "{{\n  \"i\": {i},\n  \"n\": [1, {{\"x\": \"é\"}}]\n}}\n"
                )),
                2 => s.push_str(&format!("{{\"i\":{i},\"bad\":\"no end\n")),
                3 => s.push_str(&format!("{{\"i\":{i},\"open\":\n")),
                4 => s.push_str("garbage line \\ \" {\r\n"),
                5 => s.push_str(&format!("\r\n\t{{\"i\":{i}}} {{\"j\":\"\\\\\"}}\r\n")),
                _ => s.push_str(&format!("{{\"i\":{i},\"u\":\"日本😀\"}}\n")),
            }
        }
        s.into_bytes()
    }

    fn generated_array(n: usize) -> Vec<u8> {
        let mut s = String::from("\u{FEFF}[\n");
        for i in 0..n {
            match i % 5 {
                0 => s.push_str(&format!("  {{\"i\":{i},\"m\":\"x\\\"],\\\\\"}},\n")),
                1 => s.push_str(&format!("{{\n\"i\": {i}\n}}\n,")),
                2 => s.push_str(&format!("[{i}, \"]\"], \"s{i}\", ")),
                3 => s.push_str(&format!("{i} , true,null ,")),
                _ => s.push_str(&format!("{{\"u\":\"日本😀\",\"i\":{i}}}")),
            }
        }
        s.push_str("]\n[{\"last\":true}]\n");
        s.into_bytes()
    }

    /// `input` up to the start of its last array.
    fn first_array_of(mut input: Vec<u8>) -> Vec<u8> {
        let cut = input.iter().rposition(|&b| b == b'[').unwrap();
        input.truncate(cut);
        input
    }

    // ---- reference behaviour -------------------------------------------

    #[test]
    fn empty_and_whitespace_only_inputs_give_no_records() {
        for input in [
            &b""[..],
            b"  \n\t\r\n ",
            b"\xEF\xBB\xBF",
            b"\xEF\xBB\xBF \n",
        ] {
            assert_eq!(run(input), (vec![], None));
        }
        let mut framer = Framer::new();
        framer.push(b" \n", &mut Frames::new()).unwrap();
        assert_eq!(framer.layout(), None);
    }

    #[test]
    fn array_of_objects() {
        assert_frames(
            br#"[{"a":1},{"b":2}]"#,
            &[(br#"{"a":1}"#, O), (br#"{"b":2}"#, O)],
        );
        let input = b"[ {\"a\":1} ,\n {\"b\":[1,2]} ]\n";
        assert_frames(input, &[(br#"{"a":1}"#, O), (br#"{"b":[1,2]}"#, O)]);
        let (recs, _) = run(input);
        assert_eq!((recs[0].2, recs[1].2), (2, 13));
    }

    #[test]
    fn layout_is_detected_from_first_byte() {
        let mut out = Frames::new();
        let mut framer = Framer::new();
        framer.push(b"\n [", &mut out).unwrap();
        assert_eq!(framer.layout(), Some(Layout::Array));
        let mut framer = Framer::new();
        framer.push(b" {", &mut out).unwrap();
        assert_eq!(framer.layout(), Some(Layout::Lines));
    }

    #[test]
    fn ndjson_and_crlf() {
        let want: &[(&[u8], FrameKind)] = &[(br#"{"a":1}"#, O), (br#"{"b":2}"#, O)];
        assert_frames(b"{\"a\":1}\n{\"b\":2}\n", want);
        assert_frames(b"{\"a\":1}\r\n{\"b\":2}\r\n", want);
        assert_frames(b"{\"a\":1} {\"b\":2}", want);
        let (recs, _) = run(b"{\"a\":1}\r\n{\"b\":2}\r\n");
        assert_eq!((recs[0].2, recs[1].2), (0, 9));
    }

    #[test]
    fn pretty_printed_objects() {
        let input = b"{\n  \"a\": 1,\n  \"b\": {\n    \"c\": [1, 2]\n  }\n}\n{\n  \"d\": 2\n}\n";
        assert_frames(
            input,
            &[
                (b"{\n  \"a\": 1,\n  \"b\": {\n    \"c\": [1, 2]\n  }\n}", O),
                (b"{\n  \"d\": 2\n}", O),
            ],
        );
    }

    #[test]
    fn structural_bytes_and_escapes_inside_strings() {
        assert_frames(
            b"{\"s\":\"{[}],\"}\n{\"t\":\"]]]\"}",
            &[(br#"{"s":"{[}],"}"#, O), (br#"{"t":"]]]"}"#, O)],
        );
        assert_frames(
            br#"{"s":"a\"}b\\"}
{"t":"\\\\","u":"\\\""}"#,
            &[
                (br#"{"s":"a\"}b\\"}"#, O),
                (br#"{"t":"\\\\","u":"\\\""}"#, O),
            ],
        );
        assert_frames(
            br#"[{"s":"a\"]b\\"},{"t":"\\\\"}, "x\"y", "\\"]"#,
            &[
                (br#"{"s":"a\"]b\\"}"#, O),
                (br#"{"t":"\\\\"}"#, O),
                (br#""x\"y""#, N),
                (br#""\\""#, N),
            ],
        );
    }

    #[test]
    fn multibyte_utf8() {
        let input = "{\"s\":\"é\"}\n{\"s\":\"日本\"}\n{\"s\":\"😀\",\"t\":\"{é}\"}\n";
        assert_frames(
            input.as_bytes(),
            &[
                ("{\"s\":\"é\"}".as_bytes(), O),
                ("{\"s\":\"日本\"}".as_bytes(), O),
                ("{\"s\":\"😀\",\"t\":\"{é}\"}".as_bytes(), O),
            ],
        );
        let (recs, _) = run(input.as_bytes());
        assert_eq!((recs[1].2, recs[2].2), (11, 26));
        assert_frames(
            "日本\n{\"a\":1}\n".as_bytes(),
            &[("日本".as_bytes(), NOT_OBJ), (b"{\"a\":1}", O)],
        );
    }

    #[test]
    fn bom_is_skipped_but_counted_in_offsets() {
        let (recs, err) = run(b"\xEF\xBB\xBF{\"a\":1}\n");
        assert_eq!(err, None);
        assert_eq!(recs, vec![(b"{\"a\":1}".to_vec(), 0, 3, O)]);
        let (recs, _) = run("\u{FEFF}[\"é\", {\"日本\":[\"😀\"]}]".as_bytes());
        assert_eq!(recs[0], ("\"é\"".as_bytes().to_vec(), 0, 4, N));
        assert_eq!(recs[1].2, 10);
    }

    #[test]
    fn partial_bom_is_data() {
        assert_frames(
            b"\xEF\xBB{\"a\":1}\n{\"b\":1}",
            &[(b"\xEF\xBB{\"a\":1}", NOT_OBJ), (b"{\"b\":1}", O)],
        );
        assert_frames(
            b"\xEFx\n{\"a\":1}",
            &[(b"\xEFx", NOT_OBJ), (b"{\"a\":1}", O)],
        );
        assert_frames(b"\xEF", &[(b"\xEF", NOT_OBJ)]);
        assert_frames(b"\xEF\xBB", &[(b"\xEF\xBB", NOT_OBJ)]);
    }

    #[test]
    fn nested_arrays_and_non_object_elements() {
        assert_frames(
            b"[[1,[2,3]],{\"a\":[{}]}]",
            &[(b"[1,[2,3]]", N), (b"{\"a\":[{}]}", O)],
        );
        assert_frames(
            b"[1, -2.5e3, \"x,]\", true, false, null, {\"a\":1}]",
            &[
                (b"1", N),
                (b"-2.5e3", N),
                (b"\"x,]\"", N),
                (b"true", N),
                (b"false", N),
                (b"null", N),
                (b"{\"a\":1}", O),
            ],
        );
    }

    #[test]
    fn trailing_and_missing_commas_are_tolerated() {
        assert_frames(b"[{\"a\":1},]", &[(b"{\"a\":1}", O)]);
        assert_frames(
            b"[{\"a\":1},,{\"b\":2},]",
            &[(b"{\"a\":1}", O), (b"{\"b\":2}", O)],
        );
        assert_frames(
            b"[{\"a\":1}{\"b\":2} {\"c\":3}\"s\"1]",
            &[
                (b"{\"a\":1}", O),
                (b"{\"b\":2}", O),
                (b"{\"c\":3}", O),
                (b"\"s\"", N),
                (b"1", N),
            ],
        );
    }

    #[test]
    fn concatenated_arrays_continue_indices() {
        assert_frames(
            b"[{\"a\":1}]\n[{\"b\":2}]\n",
            &[(b"{\"a\":1}", O), (b"{\"b\":2}", O)],
        );
        assert_frames(b"[1][2] [ ]", &[(b"1", N), (b"2", N)]);
    }

    #[test]
    fn lines_records_end_at_closing_brace() {
        assert_frames(b"{\"a\":1} xyz\n", &[(b"{\"a\":1}", O), (b"xyz", NOT_OBJ)]);
        assert_frames(b"{\"a\":1}\n[1,2]\n", &[(b"{\"a\":1}", O), (b"[1,2]", N)]);
        assert_frames(
            b"{\"a\":1}\nfoo  \r\n  bar\r\n",
            &[(b"{\"a\":1}", O), (b"foo", NOT_OBJ), (b"bar", NOT_OBJ)],
        );
        assert_frames(
            b"}\n]]\n{\"a\":1}}\n",
            &[
                (b"}", NOT_OBJ),
                (b"]]", NOT_OBJ),
                (b"{\"a\":1}", O),
                (b"}", NOT_OBJ),
            ],
        );
    }

    // ---- Lines recovery ------------------------------------------------

    #[test]
    fn recovery_unclosed_object_before_next_line() {
        assert_frames(
            b"{\"a\":1}\n{\"b\":\n{\"c\":3}\n",
            &[(b"{\"a\":1}", O), (b"{\"b\":", UNCLOSED), (b"{\"c\":3}", O)],
        );
        assert_frames(
            b"{\"b\": \r\n{\"c\":3}\r\n",
            &[(b"{\"b\":", UNCLOSED), (b"{\"c\":3}", O)],
        );
        assert_frames(
            b"{\"a\":\n\n{\"b\":1}\n",
            &[(b"{\"a\":", UNCLOSED), (b"{\"b\":1}", O)],
        );
        // A `{` at column 0 inside an object is taken as a new record.
        assert_frames(
            b"{\"a\":\n{\"b\":1}}\n",
            &[(b"{\"a\":", UNCLOSED), (b"{\"b\":1}", O), (b"}", NOT_OBJ)],
        );
        // Indented or non-object lines do not end the record.
        assert_frames(
            b"{\"a\":[\n1,\n{\"x\":1}\n]}\n",
            &[
                (b"{\"a\":[\n1,", UNCLOSED),
                (b"{\"x\":1}", O),
                (b"]}", NOT_OBJ),
            ],
        );
        assert_frames(
            b"{\"a\":[\n1,\n {\"x\":1}\n]}\n",
            &[(b"{\"a\":[\n1,\n {\"x\":1}\n]}", O)],
        );
    }

    #[test]
    fn recovery_unterminated_string() {
        assert_frames(
            b"{\"a\":\"x\n{\"b\":2}",
            &[(b"{\"a\":\"x", UNTERMINATED), (b"{\"b\":2}", O)],
        );
        // Even an escaped raw newline ends the string.
        assert_frames(
            b"{\"a\":\"x\\\n{\"b\":2}",
            &[(b"{\"a\":\"x\\", UNTERMINATED), (b"{\"b\":2}", O)],
        );
        assert_frames(
            b"{\"a\":\"x\\\\\n{\"b\":2}",
            &[(b"{\"a\":\"x\\\\", UNTERMINATED), (b"{\"b\":2}", O)],
        );
    }

    #[test]
    fn recovery_not_an_object() {
        assert_frames(
            b"not json\n{\"x\":1}",
            &[(b"not json", NOT_OBJ), (b"{\"x\":1}", O)],
        );
        assert_frames(
            b"{\"a\":1}\n\"str\"\n123\n",
            &[(b"{\"a\":1}", O), (b"\"str\"", NOT_OBJ), (b"123", NOT_OBJ)],
        );
        assert_frames(b"{\"a\":1}\nfoo", &[(b"{\"a\":1}", O), (b"foo", NOT_OBJ)]);
    }

    #[test]
    fn truncated_lines_record_at_end_is_invalid_not_error() {
        assert_frames(
            b"{\"a\":1}\n{\"b\":",
            &[(b"{\"a\":1}", O), (b"{\"b\":", TRUNCATED)],
        );
        assert_frames(b"{\"b\":\"x", &[(b"{\"b\":\"x", TRUNCATED)]);
        assert_frames(b"{\"b\":\n", &[(b"{\"b\":", TRUNCATED)]);
        assert_frames(b"{\"b\":\"\\", &[(b"{\"b\":\"\\", TRUNCATED)]);
    }

    #[test]
    fn invalid_reason_messages() {
        assert_eq!(
            InvalidReason::UnterminatedString.message(),
            "unterminated string"
        );
        assert_eq!(
            InvalidReason::UnclosedBeforeNextLine.message(),
            "object not closed before the next line"
        );
        assert_eq!(InvalidReason::NotAnObject.message(), "not a JSON object");
        assert_eq!(
            InvalidReason::TruncatedAtEnd.message(),
            "truncated record at end of input"
        );
    }

    // ---- errors --------------------------------------------------------

    #[test]
    fn unclosed_array_is_unexpected_eof() {
        let (recs, err) = run(b"[{\"a\":1}");
        assert_eq!(recs.len(), 1);
        let err = err.unwrap();
        assert_eq!(
            err,
            FrameError::UnexpectedEof {
                offset: 8,
                last_index: Some(0)
            }
        );
        assert_eq!(
            err.to_string(),
            "unexpected end of input at byte 8: JSON array never closed (last complete record index 0)"
        );
        let err = run(b" [").1.unwrap();
        assert_eq!(
            err.to_string(),
            "unexpected end of input at byte 2: JSON array never closed (last complete record index none)"
        );
        assert_eq!(
            run(b"[1]\n[{\"a\":").1,
            Some(FrameError::UnexpectedEof {
                offset: 10,
                last_index: Some(0)
            })
        );
    }

    /// Every truncation of a valid single-array input fails with the stream
    /// offset at the cut, after exactly the records complete before it.
    #[test]
    fn every_truncation_of_an_array_is_unexpected_eof() {
        let inputs: Vec<Vec<u8>> = vec![
            b"[{\"a\":1},{\"b\":[1,2]}]".to_vec(),
            b" [ {\"s\":\"x\\\"]\"} , 12, \"q\\\\\", [1,[2]], true ]  ".to_vec(),
            "\u{FEFF}[{\"é\":\"日本😀\"},\n{\"b\":2}]\n"
                .as_bytes()
                .to_vec(),
            first_array_of(generated_array(12)),
        ];
        for input in &inputs {
            let open = input.iter().position(|&b| b == b'[').unwrap();
            let close = input.iter().rposition(|&b| b == b']').unwrap();
            let (full, err) = run(input);
            assert_eq!(err, None);
            for k in 0..=input.len() {
                let (recs, err) = run(&input[..k]);
                if k <= open || k > close {
                    assert_eq!(err, None, "cut at {k}");
                    continue;
                }
                let completed: Vec<Rec> = full
                    .iter()
                    .filter(|r| {
                        let end = r.2 as usize + r.0.len();
                        end < k || (end == k && matches!(r.0[0], b'{' | b'[' | b'"'))
                    })
                    .cloned()
                    .collect();
                assert_eq!(recs, completed, "cut at {k}");
                let last_index = recs.len().checked_sub(1).map(|i| i as u64);
                let want = FrameError::UnexpectedEof {
                    offset: k as u64,
                    last_index,
                };
                assert_eq!(err, Some(want), "cut at {k}");
            }
        }
    }

    #[test]
    fn trailing_garbage_after_array_is_fatal() {
        let (recs, err) = run(b"[{\"a\":1}] x");
        assert_eq!(recs, expect(b"[{\"a\":1}] x", &[(b"{\"a\":1}", O)]));
        let err = err.unwrap();
        assert_eq!(
            err,
            FrameError::TrailingData {
                offset: 10,
                byte: b'x'
            }
        );
        assert_eq!(
            err.to_string(),
            "unexpected byte 0x78 at byte 10 after the end of the JSON array"
        );
        assert_eq!(
            run(b"[]\n{\"a\":1}").1,
            Some(FrameError::TrailingData {
                offset: 3,
                byte: b'{'
            })
        );
    }

    fn too_large(bytes: usize, limit: usize) -> FrameKind {
        FrameKind::TooLarge(Oversize {
            bytes: bytes as u64,
            limit: limit as u64,
        })
    }

    #[test]
    fn a_record_over_the_limit_is_framed_alone_with_its_first_bytes() {
        let input = b"{\"a\":1}\n{\"a\":\"0123456789\"}\n{\"b\":2}\n";
        let array = br#"[{"a":1},{"s":"x]},\"[{","n":[1,[2,{}]],"t":"}"} ,"0123456789",{"b":2}]"#;
        let big_object = br#"{"s":"x]},\"[{","n":[1,[2,{}]],"t":"}"}"#;
        for size in [1, 2, 3, 5, usize::MAX] {
            assert_eq!(
                run_with(input, 10, || size),
                (
                    vec![
                        (b"{\"a\":1}".to_vec(), 0, 0, O),
                        (b"{\"a\":\"0123".to_vec(), 1, 8, too_large(18, 10)),
                        (b"{\"b\":2}".to_vec(), 2, 27, O),
                    ],
                    None
                ),
                "NDJSON in pushes of {size}"
            );
            // Array elements are skipped structurally: brackets and quotes inside strings
            // do not end them.
            assert_eq!(
                run_with(array, 10, || size),
                (
                    vec![
                        (b"{\"a\":1}".to_vec(), 0, 1, O),
                        (
                            big_object[..10].to_vec(),
                            1,
                            9,
                            too_large(big_object.len(), 10)
                        ),
                        (b"\"012345678".to_vec(), 2, 50, too_large(12, 10)),
                        (b"{\"b\":2}".to_vec(), 3, 63, O),
                    ],
                    None
                ),
                "array in pushes of {size}"
            );
        }
        // Exactly at the limit is fine.
        let (recs, err) = run_with(b"[\"0123456789\"]", 12, || usize::MAX);
        assert_eq!((recs[0].3, err), (N, None));
        let (recs, _) = run_with(b"[\"0123456789\"]", 11, || 3);
        assert_eq!(recs[0].3, too_large(12, 11));
        // A record that never ends ends with the input, whatever the push sizes.
        for size in [1, 5, usize::MAX] {
            assert_eq!(
                run_with(&[b'x'; 100], 16, || size),
                (vec![(vec![b'x'; 16], 0, 0, too_large(100, 16))], None)
            );
            let mut array = b"[".to_vec();
            array.extend([b'x'; 100]);
            assert_eq!(
                run_with(&array, 16, || size),
                (
                    vec![],
                    Some(FrameError::UnexpectedEof {
                        offset: 101,
                        last_index: None
                    })
                )
            );
        }
    }

    #[test]
    fn the_cause_gives_the_size_and_the_limit() {
        let message = |bytes: u64, limit: u64| Oversize { bytes, limit }.to_string();
        assert_eq!(
            message(280_123_456, 64 << 20),
            "record of 280,123,456 bytes exceeds the limit of 64 MiB"
        );
        assert_eq!(
            message(18, 10),
            "record of 18 bytes exceeds the limit of 10 bytes"
        );
        assert_eq!(
            message(1_000, 0),
            "record of 1,000 bytes exceeds the limit of 0 bytes"
        );
        assert_eq!(Size(1).to_string(), "1 byte");
        assert_eq!(Size(3 << 20).to_string(), "3 MiB");
        assert_eq!(Size(1_234_567).to_string(), "1,234,567 bytes");
    }

    /// Framing with a limit frames what framing without one frames, except that each record
    /// over the limit is [`FrameKind::TooLarge`] with only its first bytes.
    #[test]
    fn a_limit_changes_only_the_records_over_it() {
        for input in corpus() {
            let (unlimited, error) = run_with(&input, usize::MAX, || usize::MAX);
            for limit in [0, 1, 3, 7, 12, 30] {
                let expected: Vec<Rec> = unlimited
                    .iter()
                    .map(|(bytes, index, offset, kind)| {
                        if bytes.len() <= limit {
                            return (bytes.clone(), *index, *offset, *kind);
                        }
                        let kept = bytes[..limit.clamp(1, KEPT_PREFIX_BYTES)].to_vec();
                        (kept, *index, *offset, too_large(bytes.len(), limit))
                    })
                    .collect();
                assert_eq!(
                    run_with(&input, limit, || usize::MAX),
                    (expected, error.clone()),
                    "limit {limit}, input {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }

    /// However long a record, the framer holds at most the limit of it: a huge string, and a
    /// run of whitespace that may yet be trimmed away.
    #[test]
    fn a_record_over_the_limit_is_never_held_whole() {
        let limit = 2 << 20;
        let frame = |pieces: &[&[u8]], repeat: &[u8], times: usize| {
            let mut framer = Framer::new().with_max_record_bytes(limit);
            let mut out = Frames::new();
            let mut most = 0;
            framer.push(pieces[0], &mut out).unwrap();
            for _ in 0..times {
                framer.push(repeat, &mut out).unwrap();
                most = most.max(framer.held());
            }
            framer.push(pieces[1], &mut out).unwrap();
            framer.finish(&mut out).unwrap();
            assert!(most <= limit, "held {most} bytes of a record");
            assert_eq!(framer.held(), 0, "memory is given back after the record");
            let frames: Vec<(Vec<u8>, FrameKind)> =
                out.iter().map(|(f, b)| (b.to_vec(), f.kind)).collect();
            frames
        };
        let piece = vec![b'x'; 10_000];
        let frames = frame(
            &[b"{\"a\":1}\n{\"big\":\"", b"\"}\n{\"b\":2}\n"],
            &piece,
            1_000,
        );
        let mut prefix = b"{\"big\":\"".to_vec();
        prefix.resize(KEPT_PREFIX_BYTES, b'x');
        assert_eq!(
            frames,
            vec![
                (b"{\"a\":1}".to_vec(), O),
                (prefix, too_large(10_000_010, limit)),
                (b"{\"b\":2}".to_vec(), O)
            ]
        );
        // A record within the limit is held whole, and its memory given back after it.
        let frames = frame(&[b"{\"s\":\"", b"\"}\n"], &piece, 150);
        assert_eq!(frames.len(), 1);
        assert_eq!((frames[0].0.len(), frames[0].1), (1_500_008, O));
        // Whitespace at the end of an invalid record is trimmed: it does not count, and it
        // is not held past the limit either.
        let spaces = vec![b' '; 10_000];
        let frames = frame(&[b"abc", b"\n{}"], &spaces, 1_000);
        assert_eq!(
            frames,
            vec![(b"abc".to_vec(), NOT_OBJ), (b"{}".to_vec(), O)]
        );
        let frames = frame(&[b"abc", b"x\n{}"], &spaces, 1_000);
        let mut prefix = b"abc".to_vec();
        prefix.resize(KEPT_PREFIX_BYTES, b' ');
        assert_eq!(
            frames,
            vec![(prefix, too_large(10_000_004, limit)), (b"{}".to_vec(), O)]
        );
    }

    #[test]
    fn size_limit_ignores_trimmed_whitespace() {
        let mut input = b"abc".to_vec();
        input.extend([b' '; 50]);
        input.extend(b"\r\n{\"a\":1}\n{\"b\":\r\n   \r\n{}");
        for size in [1, 2, 7, usize::MAX] {
            let (recs, err) = run_with(&input, 7, || size);
            assert_eq!(err, None);
            let kinds: Vec<_> = recs.iter().map(|r| (r.0.clone(), r.3)).collect();
            assert_eq!(
                kinds,
                vec![
                    (b"abc".to_vec(), NOT_OBJ),
                    (b"{\"a\":1}".to_vec(), O),
                    (b"{\"b\":".to_vec(), UNCLOSED),
                    (b"{}".to_vec(), O)
                ]
            );
        }
    }

    // ---- chunk-split equivalence ---------------------------------------

    fn assert_same_for_all_splits(input: &[u8], limit: usize) {
        let whole = run_with(input, limit, || usize::MAX);
        let show = String::from_utf8_lossy(input);
        for size in [1, 2, 3, 7] {
            assert_eq!(
                run_with(input, limit, || size),
                whole,
                "size {size}: {show:?}"
            );
        }
        for seed in 1..=8u64 {
            let mut rng = XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let max = [4, 16, 64, 1024][(seed % 4) as usize];
            let sizes = || (rng.next() % max) as usize + 1;
            assert_eq!(
                run_with(input, limit, sizes),
                whole,
                "seed {seed}: {show:?}"
            );
        }
    }

    #[test]
    fn chunk_splits_give_identical_frames() {
        for input in corpus() {
            assert_same_for_all_splits(&input, DEFAULT_MAX_RECORD_BYTES);
        }
    }

    #[test]
    fn chunk_splits_give_identical_frames_with_small_limits() {
        for input in corpus() {
            for limit in [0, 1, 3, 7, 12, 30] {
                assert_same_for_all_splits(&input, limit);
            }
        }
    }

    #[test]
    fn empty_pushes_change_nothing() {
        for input in corpus() {
            let whole = run(&input);
            let mut framer = Framer::new();
            let mut out = Frames::new();
            let mut recs = Vec::new();
            let mut err = None;
            for chunk in input.chunks(3) {
                let r = framer
                    .push(&[], &mut out)
                    .and_then(|()| framer.push(chunk, &mut out));
                drain(&mut out, &mut recs);
                if let Err(e) = r {
                    err = Some(e);
                    break;
                }
            }
            if err.is_none() {
                err = framer.finish(&mut out).err();
                drain(&mut out, &mut recs);
            }
            assert_eq!((recs, err), whole);
        }
    }

    #[test]
    fn records_are_verbatim_slices_of_the_stream() {
        for input in corpus() {
            let (recs, _) = run(&input);
            for (bytes, _, offset, _) in recs {
                let at = offset as usize;
                assert_eq!(&input[at..at + bytes.len()], &bytes[..]);
            }
        }
    }

    // ---- fuzz regressions ----------------------------------------------

    /// Fuzz crash (harness bug): form feed is not JSON whitespace, so it
    /// starts a Lines record.
    #[test]
    fn fuzz_regression_form_feed_is_not_whitespace() {
        let input = b"\x0c\x00\"a\":1}] x";
        assert_frames(input, &[(input, NOT_OBJ)]);
        assert_same_for_all_splits(input, DEFAULT_MAX_RECORD_BYTES);
        assert_same_for_all_splits(input, 0);
    }

    #[test]
    fn objects_are_validated_while_framed_where_they_can_be() {
        let checked = |input: &[u8], pushes: &[usize]| {
            let mut framer = Framer::new().with_check(validate_leading_object::<ReadsAll>);
            let mut out = Frames::new();
            let mut rest = input;
            for &n in pushes {
                let (piece, tail) = rest.split_at(n.min(rest.len()));
                framer.push(piece, &mut out).unwrap();
                rest = tail;
            }
            framer.push(rest, &mut out).unwrap();
            framer.finish(&mut out).unwrap();
            out.frames
                .iter()
                .map(|f| f.checked.is_some())
                .collect::<Vec<_>>()
        };
        let array = br#"[{"a":1}, {"b":[1,{"c":"}"}]},{"bad":01},[1],{"d":null}]"#;
        assert_eq!(checked(array, &[]), [true, true, false, false, true]);
        // An object that runs past the push is scanned, then validated later.
        assert_eq!(checked(array, &[5]), [false, true, false, false, true]);
        let lines = b"{\"a\":1}\n{\n\"b\":2}\n{\"c\":3} {\"d\":4}\n";
        assert_eq!(checked(lines, &[]), [true, false, true, true]);
        // Without a check nothing is marked.
        let mut out = Frames::new();
        let mut framer = Framer::new();
        framer.push(array, &mut out).unwrap();
        assert!(out.frames.iter().all(|f| f.checked.is_none()));
    }

    #[test]
    fn frames_accessors() {
        let mut framer = Framer::new();
        let mut out = Frames::new();
        assert!(out.is_empty());
        framer.push(b"[{\"a\":1}, 2, {\"b\"", &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out.record(0), b"{\"a\":1}");
        assert_eq!(out.record(1), b"2");
        assert_eq!(out.bytes, b"{\"a\":1}2");
        let kinds: Vec<_> = out.iter().map(|(f, _)| f.kind).collect();
        assert_eq!(kinds, vec![O, N]);
        assert_eq!(framer.records_framed(), 2);
        assert_eq!(framer.bytes_consumed(), 17);
        out.clear();
        framer.push(b":2}]", &mut out).unwrap();
        framer.finish(&mut out).unwrap();
        assert_eq!(
            out.frames,
            vec![Frame {
                start: 0,
                end: 7,
                index: 2,
                offset: 13,
                kind: O,
                checked: None,
            }]
        );
    }
}
