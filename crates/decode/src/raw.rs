//! Framed records -> one Arrow batch in the RAW schema (the `raw_logs` table of SQL).
//!
//! The RAW schema cannot fail on type drift: every leaf is text (arrow-json coerces numbers
//! and booleans to their JSON text, and turns type conflicts into NULL), `req.query`,
//! `req.headers` and `req.params` are the original JSON text, and `_raw` is the record's
//! exact bytes from the framer. Types are decided later, in SQL.
//!
//! Records that are not objects or not valid JSON become [`Reject`]s; the rest of the
//! batch goes on. Should arrow-json still refuse a batch, the records are decoded one by
//! one so that only the offending record is rejected.

use std::sync::{Arc, LazyLock};

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, NullBufferBuilder, StringArray, StructArray,
};
use arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use arrow_json::ReaderBuilder;
use arrow_json::reader::Decoder;

use super::framer::{Frame, FrameKind, Frames, Oversize, Size};
use super::validate::{
    Checked, KeysRead, SideValues, Unread, validate_leading_object, validate_unread,
};
use crate::buffers;

/// Top-level leaf fields of a record, as text.
const LEAF_FIELDS: &[&str] = &[
    "timestamp",
    "time",
    "level",
    "msg",
    "message",
    "context",
    "hostname",
    "authUserId",
    "pid",
    "processingTimeMs",
    "cacheHit",
    "documentCount",
    "lastUpdated",
];
/// Leaf fields of `req`, as text.
const REQ_LEAF_FIELDS: &[&str] = &["id", "method", "url", "remoteAddress", "remotePort"];
/// Fields of `req` kept as JSON text.
const REQ_JSON_FIELDS: &[&str] = &["query", "headers", "params"];

pub const SOURCE_BUCKET: &str = "_source_bucket";
pub const SOURCE_KEY: &str = "_source_key";
pub const SOURCE_INDEX: &str = "_source_index";
pub const RAW: &str = "_raw";

fn text_fields(names: &[&str]) -> Vec<Field> {
    names
        .iter()
        .map(|name| Field::new(*name, DataType::Utf8, true))
        .collect()
}

fn req_fields() -> Fields {
    let mut fields = text_fields(REQ_LEAF_FIELDS);
    fields.extend(text_fields(REQ_JSON_FIELDS));
    fields.into()
}

/// The field that stands in for the members arrow-json does not read: each such member of a
/// record is replaced by `"_":null` before decoding (see [`push_for_arrow_json`]), and the
/// column is dropped. First in each struct, so that arrow-json's linear key search finds it
/// at once (every other name is longer, so it costs the others one length test).
const UNREAD_FIELD: &str = "_";
/// An unread member as arrow-json sees it.
const UNREAD_STAND_IN: &[u8] = b"\"_\":null";

/// The top-level fields arrow-json decodes, in the order pino and the usual loggers write
/// them: arrow-json finds each key of a record by a linear scan of the schema, so the usual
/// order keeps the scan short. The same names as [`LEAF_FIELDS`] plus `req`.
const DECODE_ORDER: &[&str] = &[
    "level",
    "time",
    "pid",
    "hostname",
    "timestamp",
    "context",
    "message",
    "msg",
    "req",
    "authUserId",
    "processingTimeMs",
    "cacheHit",
    "documentCount",
    "lastUpdated",
];

/// The keys arrow-json reads, for the validator: the members with other keys are hidden from
/// arrow-json. Must name exactly [`LEAF_FIELDS`] + `req`, and [`REQ_LEAF_FIELDS`] (a test
/// checks it); written as `match`es because it runs for every member of every record.
struct RawKeys;

impl KeysRead for RawKeys {
    #[inline(always)]
    fn top(key: &[u8]) -> bool {
        matches!(
            key,
            b"level"
                | b"time"
                | b"pid"
                | b"hostname"
                | b"timestamp"
                | b"context"
                | b"message"
                | b"msg"
                | b"req"
                | b"authUserId"
                | b"processingTimeMs"
                | b"cacheHit"
                | b"documentCount"
                | b"lastUpdated"
        )
    }

    #[inline(always)]
    fn req(key: &[u8]) -> bool {
        matches!(
            key,
            b"id" | b"method" | b"url" | b"remoteAddress" | b"remotePort"
        )
    }
}

/// What arrow-json decodes: the stand-in for unread members, the leaves, and `req` with its
/// leaves only.
fn json_schema() -> SchemaRef {
    let unread = Field::new(UNREAD_FIELD, DataType::Utf8, true);
    let mut req_fields = vec![unread.clone()];
    req_fields.extend(text_fields(REQ_LEAF_FIELDS));
    let mut fields = vec![unread];
    fields.extend(DECODE_ORDER.iter().map(|name| match *name {
        "req" => Field::new(
            "req",
            DataType::Struct(Fields::from(req_fields.clone())),
            true,
        ),
        leaf => Field::new(leaf, DataType::Utf8, true),
    }));
    Arc::new(Schema::new(fields))
}

static RAW_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = text_fields(LEAF_FIELDS);
    fields.push(Field::new("req", DataType::Struct(req_fields()), true));
    fields.push(Field::new(SOURCE_BUCKET, DataType::Utf8, false));
    fields.push(Field::new(SOURCE_KEY, DataType::Utf8, false));
    fields.push(Field::new(SOURCE_INDEX, DataType::Int64, false));
    fields.push(Field::new(RAW, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
});

/// The schema of `raw_logs`.
pub fn raw_schema() -> SchemaRef {
    Arc::clone(&RAW_SCHEMA)
}

/// The (bucket, key) of the object being decoded, as `raw_logs` shows it.
#[derive(Debug, Clone)]
pub struct SourceName {
    pub bucket: Arc<str>,
    pub key: Arc<str>,
}

/// A record kept out of the target table, with the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub index: u64,
    pub offset: u64,
    pub raw: String,
    pub error: String,
}

impl Reject {
    fn new(index: u64, offset: u64, bytes: &[u8], error: String) -> Self {
        // PostgreSQL text cannot hold NUL bytes or invalid UTF-8.
        let raw = String::from_utf8_lossy(bytes).replace('\0', "\u{FFFD}");
        Self {
            index,
            offset,
            raw,
            error,
        }
    }
}

impl Reject {
    /// A record over the size limit, of which the framer kept the first `bytes`: `raw`
    /// holds them (up to the last whole UTF-8 character), the cause its size and the limit.
    fn oversized(frame: &Frame, bytes: &[u8], oversize: Oversize) -> Self {
        let whole = match std::str::from_utf8(bytes) {
            Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
            _ => bytes,
        };
        let error = format!(
            "{oversize}; raw holds its first {}",
            Size(whole.len() as u64)
        );
        Self::new(frame.index, frame.offset, whole, error)
    }
}

/// Converts framed records into RAW batches. One per file; reused for every batch.
pub struct RawBatcher {
    source: SourceName,
    decoder: Decoder,
    batch_capacity: usize,
    ndjson: Vec<u8>,
}

/// Column builders for the values that do not come from arrow-json.
struct Extras {
    query: TextColumn,
    headers: TextColumn,
    params: TextColumn,
    index: Vec<i64>,
    raw: RawSpans,
}

impl Extras {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        Self {
            // Sized from the batch's bytes so that typical records never make the columns
            // grow (and copy): in pino HTTP logs headers are ~28% of a record, query ~7%,
            // params ~2%.
            query: TextColumn::with_capacity(rows, bytes / 8),
            headers: TextColumn::with_capacity(rows, bytes * 3 / 8),
            params: TextColumn::with_capacity(rows, bytes / 32),
            index: Vec::with_capacity(rows),
            raw: RawSpans::with_capacity(rows),
        }
    }

    /// Adds a valid record (its text is valid UTF-8).
    fn push(&mut self, frame: &Frame, side: &SideValues<'_>) {
        self.query.push_option(side.query);
        self.headers.push_option(side.headers);
        self.params.push_option(side.params);
        self.index.push(frame.index as i64);
        self.raw.push(frame);
    }
}

/// The `_raw` column while a batch is made: where each valid record's text lies in the
/// frame buffer. Read there in place when the records lie back to back, else copied.
struct RawSpans {
    spans: Vec<(usize, usize)>,
    back_to_back: bool,
}

impl RawSpans {
    fn with_capacity(rows: usize) -> Self {
        Self {
            spans: Vec::with_capacity(rows),
            back_to_back: true,
        }
    }

    fn push(&mut self, frame: &Frame) {
        if let Some(&(_, end)) = self.spans.last() {
            self.back_to_back &= end == frame.start;
        }
        self.spans.push((frame.start, frame.end));
    }

    /// Whether each record starts where the one before ended (none between was left out),
    /// and offsets into the buffer fit Arrow's 32 bits.
    fn back_to_back(&self) -> bool {
        self.back_to_back
            && self
                .spans
                .last()
                .is_none_or(|&(_, end)| end <= i32::MAX as usize)
    }

    /// The column over the frame buffer the spans point into (see [`Frames::detach`]); the
    /// spans must be [`RawSpans::back_to_back`].
    fn in_place(&self, buffer: Buffer) -> StringArray {
        assert!(
            self.back_to_back()
                && self
                    .spans
                    .last()
                    .is_none_or(|&(_, end)| end <= buffer.len())
        );
        let first = self.spans.first().map_or(0, |&(start, _)| start);
        let bounds = std::iter::once(first).chain(self.spans.iter().map(|&(_, end)| end));
        let offsets: Vec<i32> = bounds.map(|bound| bound as i32).collect();
        // SAFETY: the spans are valid records' texts (valid UTF-8, checked by the
        // validator), back to back, within the buffer: the offsets grow from the first
        // record's start to the last one's end, each on a record's boundary.
        unsafe {
            StringArray::new_unchecked(OffsetBuffer::new_unchecked(offsets.into()), buffer, None)
        }
    }

    /// The column as a copy of the records' text in `bytes` (the frame buffer).
    fn copied(&self, bytes: &[u8]) -> StringArray {
        let total = self.spans.iter().map(|&(start, end)| end - start).sum();
        let mut column = TextColumn::with_capacity(self.spans.len(), total);
        for &(start, end) in &self.spans {
            // SAFETY: every span is a valid record's text (valid UTF-8, checked by the
            // validator).
            column.push(unsafe { std::str::from_utf8_unchecked(&bytes[start..end]) });
        }
        column.finish()
    }
}

/// A text column whose values are appended to a recycled buffer (`crate::buffers`) that
/// arrow then reads in place: a batch's columns of record text (`_raw`, query, headers,
/// params) reuse the memory of batches already gone instead of mapping fresh pages.
struct TextColumn {
    values: Vec<u8>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl TextColumn {
    fn with_capacity(rows: usize, bytes: usize) -> Self {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Self {
            values: buffers::take(bytes),
            offsets,
            nulls: NullBufferBuilder::new(rows),
        }
    }

    fn push(&mut self, text: &str) {
        self.values.extend_from_slice(text.as_bytes());
        self.end_value();
        self.nulls.append_non_null();
    }

    fn push_option(&mut self, text: Option<&str>) {
        match text {
            Some(text) => self.push(text),
            None => {
                self.end_value();
                self.nulls.append_null();
            }
        }
    }

    fn end_value(&mut self) {
        let end = i32::try_from(self.values.len()).expect("a batch's text stays under 2 GiB");
        self.offsets.push(end);
    }

    fn finish(mut self) -> StringArray {
        let offsets = OffsetBuffer::new(ScalarBuffer::from(self.offsets));
        let values = buffers::into_arrow(self.values);
        // SAFETY: every value was appended from a `&str` (valid UTF-8, checked by the
        // validator), and the offsets start at 0 and grow with each value up to the length;
        // there is one null bit per value.
        unsafe { StringArray::new_unchecked(offsets, values, self.nulls.finish()) }
    }
}

fn build_decoder(batch_capacity: usize) -> Result<Decoder, ArrowError> {
    ReaderBuilder::new(json_schema())
        .with_batch_size(batch_capacity)
        .with_coerce_primitive(true)
        .with_ignore_type_conflicts(true)
        .with_strict_mode(false)
        .build_decoder()
}

impl RawBatcher {
    /// Validates the object at the start of `bytes` as this batcher would: give it to
    /// [`Framer::with_check`](super::Framer::with_check) so that records are read once.
    pub fn check(bytes: &[u8]) -> Option<Checked> {
        validate_leading_object::<RawKeys>(bytes)
    }

    /// A batcher for records of `source`, at most `batch_capacity` records per call.
    pub fn new(source: SourceName, batch_capacity: usize) -> Result<Self, ArrowError> {
        Ok(Self {
            source,
            decoder: build_decoder(batch_capacity)?,
            batch_capacity,
            ndjson: Vec::new(),
        })
    }

    /// The most records one call to [`RawBatcher::convert`] takes.
    pub fn batch_capacity(&self) -> usize {
        self.batch_capacity
    }

    /// Converts the records of `frames` whose index is at least `skip_below` into one RAW
    /// batch (None when no record is valid); invalid records are appended to `rejects`.
    pub fn convert(
        &mut self,
        frames: &Frames,
        skip_below: u64,
        rejects: &mut Vec<Reject>,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let Some((decoded, extras)) = self.decode(frames, 0..frames.len(), skip_below, rejects)?
        else {
            return Ok(None);
        };
        let raw = extras.raw.copied(&frames.bytes);
        self.assemble(decoded, extras, raw).map(Some)
    }

    /// [`RawBatcher::convert`] for the first `n` records of `frames`, which are then dropped
    /// from `frames`. When the batch keeps them all (none skipped or rejected), its `_raw`
    /// column reads their text where the framer put it ([`Frames::detach`]) instead of a copy.
    pub fn convert_front(
        &mut self,
        frames: &mut Frames,
        n: usize,
        skip_below: u64,
        rejects: &mut Vec<Reject>,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let n = n.min(frames.len());
        let Some((decoded, extras)) = self.decode(frames, 0..n, skip_below, rejects)? else {
            frames.consume(n);
            return Ok(None);
        };
        let raw = if extras.raw.back_to_back() {
            extras.raw.in_place(frames.detach(n))
        } else {
            let raw = extras.raw.copied(&frames.bytes);
            frames.consume(n);
            raw
        };
        self.assemble(decoded, extras, raw).map(Some)
    }

    /// Validates the records `range` of `frames` and decodes the valid ones with arrow-json;
    /// None when no record is valid.
    fn decode(
        &mut self,
        frames: &Frames,
        range: std::ops::Range<usize>,
        skip_below: u64,
        rejects: &mut Vec<Reject>,
    ) -> Result<Option<(RecordBatch, Extras)>, ArrowError> {
        let mut extras = Extras::with_capacity(range.len(), frames.bytes.len());
        self.ndjson.clear();
        let selected = || frames.frames[range.clone()].iter();
        for frame in selected() {
            if frame.index < skip_below {
                continue;
            }
            let bytes = &frames.bytes[frame.start..frame.end];
            let checked = match (frame.kind, frame.checked) {
                // SAFETY: the framer emitted these bytes with this result.
                (FrameKind::Object, Some(checked)) => {
                    Ok(unsafe { checked.apply::<RawKeys>(bytes) })
                }
                (FrameKind::Object, None) => validate_unread::<RawKeys>(bytes),
                (FrameKind::NotObject, _) => Err(not_an_object(bytes)),
                (FrameKind::Invalid(reason), _) => Err(reason.message().to_string()),
                (FrameKind::TooLarge(oversize), _) => {
                    rejects.push(Reject::oversized(frame, bytes, oversize));
                    continue;
                }
            };
            match checked {
                Ok((_, side, unread)) => {
                    extras.push(frame, &side);
                    push_for_arrow_json(&mut self.ndjson, bytes, &unread);
                    self.ndjson.push(b'\n');
                }
                Err(error) => rejects.push(Reject::new(frame.index, frame.offset, bytes, error)),
            }
        }
        if extras.index.is_empty() {
            return Ok(None);
        }
        match self.decode_all() {
            Ok(decoded) => Ok(Some((decoded, extras))),
            Err(_) => self.decode_one_by_one(frames, selected(), skip_below, rejects),
        }
    }

    fn decode_all(&mut self) -> Result<RecordBatch, ArrowError> {
        let result = decode_buffer(&mut self.decoder, &self.ndjson);
        if result.is_err() {
            // A decoder that failed is unusable: start afresh.
            self.decoder = build_decoder(self.batch_capacity)?;
        }
        result
    }

    /// Slow path: arrow-json refused the batch. Decode each record alone, reject those that
    /// fail, and decode the survivors together.
    fn decode_one_by_one<'f>(
        &mut self,
        frames: &Frames,
        selected: impl Iterator<Item = &'f Frame>,
        skip_below: u64,
        rejects: &mut Vec<Reject>,
    ) -> Result<Option<(RecordBatch, Extras)>, ArrowError> {
        let mut extras = Extras::with_capacity(64, 64 * 1024);
        self.ndjson.clear();
        for frame in selected {
            if frame.index < skip_below || frame.kind != FrameKind::Object {
                continue;
            }
            let bytes = &frames.bytes[frame.start..frame.end];
            let Ok((_, side, _)) = validate_unread::<RawKeys>(bytes) else {
                continue;
            };
            let mut single = build_decoder(1)?;
            match decode_buffer(&mut single, bytes) {
                Ok(_) => {
                    extras.push(frame, &side);
                    self.ndjson.extend_from_slice(bytes);
                    self.ndjson.push(b'\n');
                }
                Err(e) => {
                    rejects.push(Reject::new(frame.index, frame.offset, bytes, e.to_string()))
                }
            }
        }
        rejects.sort_by_key(|r| r.index);
        if extras.index.is_empty() {
            return Ok(None);
        }
        let decoded = self.decode_all()?;
        Ok(Some((decoded, extras)))
    }

    fn assemble(
        &self,
        decoded: RecordBatch,
        mut extras: Extras,
        raw: StringArray,
    ) -> Result<RecordBatch, ArrowError> {
        let rows = decoded.num_rows();
        debug_assert_eq!(rows, extras.index.len());
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(RAW_SCHEMA.fields().len());
        for name in LEAF_FIELDS {
            columns.push(Arc::clone(
                decoded.column_by_name(name).expect("leaf column"),
            ));
        }
        let req = decoded
            .column_by_name("req")
            .expect("req column")
            .as_struct();
        let mut req_columns: Vec<ArrayRef> = REQ_LEAF_FIELDS
            .iter()
            .map(|name| Arc::clone(req.column_by_name(name).expect("req leaf column")))
            .collect();
        req_columns.push(Arc::new(extras.query.finish()));
        req_columns.push(Arc::new(extras.headers.finish()));
        req_columns.push(Arc::new(extras.params.finish()));
        columns.push(Arc::new(StructArray::try_new(
            req_fields(),
            req_columns,
            req.nulls().cloned(),
        )?));
        columns.push(constant_text(&self.source.bucket, rows));
        columns.push(constant_text(&self.source.key, rows));
        columns.push(Arc::new(Int64Array::from(std::mem::take(
            &mut extras.index,
        ))));
        columns.push(Arc::new(raw));
        RecordBatch::try_new(raw_schema(), columns)
    }
}

fn decode_buffer(decoder: &mut Decoder, buffer: &[u8]) -> Result<RecordBatch, ArrowError> {
    let mut rest = buffer;
    let mut batches = Vec::new();
    while !rest.is_empty() {
        let consumed = decoder.decode(rest)?;
        if consumed == 0 {
            // The decoder's batch is full: take it and go on.
            batches.extend(decoder.flush()?);
            continue;
        }
        rest = &rest[consumed..];
    }
    batches.extend(decoder.flush()?);
    match batches.len() {
        0 => Err(ArrowError::JsonError("no rows decoded".into())),
        1 => Ok(batches.remove(0)),
        _ => arrow::compute::concat_batches(&batches[0].schema(), &batches),
    }
}

/// Appends `record` to the buffer arrow-json decodes, with each member it does not read
/// (`res`, unknown keys, and `req.query`, `req.headers`, `req.params`, which are kept as JSON
/// text) replaced by `"_":null`: arrow-json would tokenize them only to skip them, and
/// look each of their keys up in vain.
fn push_for_arrow_json(out: &mut Vec<u8>, record: &[u8], unread: &Unread) {
    unread.hide(record, UNREAD_STAND_IN, out);
}

fn constant_text(value: &str, rows: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        value, rows,
    )))
}

fn not_an_object(bytes: &[u8]) -> String {
    let kind = match bytes.first() {
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    };
    format!("not a JSON object: the element is {kind}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framer::Framer;
    use crate::test_util::framed;

    #[test]
    fn the_decode_order_names_every_leaf_and_req_once() {
        let mut decoded: Vec<&str> = DECODE_ORDER.to_vec();
        let mut expected: Vec<&str> = LEAF_FIELDS.iter().copied().chain(["req"]).collect();
        decoded.sort_unstable();
        expected.sort_unstable();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn the_keys_read_are_the_decoded_fields() {
        for name in LEAF_FIELDS.iter().chain(&["req"]) {
            assert!(RawKeys::top(name.as_bytes()), "{name}");
        }
        for name in REQ_LEAF_FIELDS {
            assert!(RawKeys::req(name.as_bytes()), "{name}");
        }
        for name in REQ_JSON_FIELDS
            .iter()
            .chain(&["res", "err", "_", "", "Level"])
        {
            assert!(!RawKeys::top(name.as_bytes()), "{name}");
            assert!(!RawKeys::req(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn unread_members_are_hidden_from_arrow_json_only() {
        let record = r#"{"res":{"statusCode":200},"level":30,"req":{"query":{"a":1},"method":"GET","headers":{"h":"v"},"url":"/x"},"err":[1,{"b":2}],"_":"u","msg":"m"}"#;
        let (_, _, unread) = validate_unread::<RawKeys>(record.as_bytes()).unwrap();
        let mut out = Vec::new();
        push_for_arrow_json(&mut out, record.as_bytes(), &unread);
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"_":null,"level":30,"req":{"_":null,"method":"GET","_":null,"url":"/x"},"_":null,"_":null,"msg":"m"}"#
        );
        let (batch, rejects) = convert(&format!("[{record}]"));
        assert!(rejects.is_empty());
        let batch = batch.unwrap();
        assert_eq!(batch.schema(), raw_schema());
        let text = |column: &dyn Array| column.as_string::<i32>().value(0).to_string();
        assert_eq!(text(batch.column_by_name("level").unwrap()), "30");
        assert_eq!(text(batch.column_by_name("msg").unwrap()), "m");
        assert_eq!(text(batch.column_by_name(RAW).unwrap()), record);
        let req = batch.column_by_name("req").unwrap().as_struct();
        assert_eq!(text(req.column_by_name("method").unwrap()), "GET");
        assert_eq!(text(req.column_by_name("url").unwrap()), "/x");
        assert_eq!(text(req.column_by_name("query").unwrap()), r#"{"a":1}"#);
        assert_eq!(text(req.column_by_name("headers").unwrap()), r#"{"h":"v"}"#);
        assert!(req.column_by_name("id").unwrap().is_null(0));
    }

    fn convert(input: &str) -> (Option<RecordBatch>, Vec<Reject>) {
        let (frames, mut batcher) = framed(input);
        let mut rejects = Vec::new();
        let batch = batcher.convert(&frames, 0, &mut rejects).unwrap();
        (batch, rejects)
    }

    #[test]
    fn the_front_is_read_in_place_when_its_kept_records_lie_back_to_back() {
        let input = r#"[{"a":1},{"level":30},{"msg":"m"},7,{"b":2},{"c":3},{"d":4},"x",{"e":5}]"#;
        let (mut frames, mut batcher) = framed(input);
        let mut rejects = Vec::new();
        let mut front = |frames: &mut Frames, skip_below| {
            let address = frames.bytes.as_ptr();
            let batch = batcher.convert_front(frames, 3, skip_below, &mut rejects);
            let batch = batch.unwrap().unwrap();
            let raw = batch.column_by_name(RAW).unwrap().as_string::<i32>();
            let texts: Vec<String> = raw.iter().map(|t| t.unwrap().to_string()).collect();
            (texts, raw.values().as_ptr() == address)
        };
        assert_eq!(
            front(&mut frames, 1),
            (
                vec![r#"{"level":30}"#.into(), r#"{"msg":"m"}"#.into()],
                true
            ),
            "records skipped before the first kept one"
        );
        assert_eq!(
            front(&mut frames, 0),
            (vec![r#"{"b":2}"#.into(), r#"{"c":3}"#.into()], true),
            "a record rejected before the first kept one"
        );
        assert_eq!(
            front(&mut frames, 0),
            (vec![r#"{"d":4}"#.into(), r#"{"e":5}"#.into()], false),
            "a record rejected between two kept ones: copied"
        );
        assert!(frames.is_empty());
        let rejected: Vec<u64> = rejects.iter().map(|r| r.index).collect();
        assert_eq!(rejected, [3, 7]);
    }

    #[test]
    fn leaves_become_text_and_conflicts_null() {
        let (batch, rejects) =
            convert(r#"[{"level":30,"pid":"12","cacheHit":true,"message":{"x":1}}]"#);
        assert!(rejects.is_empty());
        let batch = batch.unwrap();
        let text = |name: &str| {
            batch
                .column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .clone()
        };
        assert_eq!(text("level").value(0), "30");
        assert_eq!(text("pid").value(0), "12");
        assert_eq!(text("cacheHit").value(0), "true");
        assert!(text("message").is_null(0));
        assert_eq!(batch.schema(), raw_schema());
    }

    #[test]
    fn side_values_are_kept_and_hidden_from_arrow_json() {
        let (batch, rejects) = convert(
            r#"[{"req":{"method":"GET","query":{"a":[1,{"b":2}]},"headers":{"h":"v"},"id":7}}]"#,
        );
        assert!(rejects.is_empty());
        let batch = batch.unwrap();
        let req = batch.column_by_name("req").unwrap().as_struct();
        let text = |name: &str| {
            req.column_by_name(name)
                .unwrap()
                .as_string::<i32>()
                .value(0)
                .to_string()
        };
        assert_eq!(text("method"), "GET");
        assert_eq!(text("id"), "7");
        assert_eq!(text("query"), r#"{"a":[1,{"b":2}]}"#);
        assert_eq!(text("headers"), r#"{"h":"v"}"#);
        let raw = batch
            .column_by_name(RAW)
            .unwrap()
            .as_string::<i32>()
            .value(0)
            .to_string();
        assert!(raw.contains(r#""query":{"a":[1,{"b":2}]}"#), "{raw}");
    }

    #[test]
    fn a_record_over_the_limit_is_rejected_with_its_first_whole_characters() {
        let input = r#"[{"a":1},{"s":"日本語のテキスト"},{"b":2}]"#;
        let mut framer = Framer::new().with_max_record_bytes(10);
        let mut frames = Frames::new();
        framer.push(input.as_bytes(), &mut frames).unwrap();
        framer.finish(&mut frames).unwrap();
        let source = SourceName {
            bucket: "b".into(),
            key: "k".into(),
        };
        let mut batcher = RawBatcher::new(source, 1024).unwrap();
        let mut rejects = Vec::new();
        let batch = batcher.convert(&frames, 0, &mut rejects).unwrap().unwrap();
        let index = batch
            .column_by_name(SOURCE_INDEX)
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(index.values().as_ref(), &[0, 2]);
        let record = r#"{"s":"日本語のテキスト"}"#;
        assert_eq!(
            rejects,
            vec![Reject {
                index: 1,
                offset: 9,
                raw: r#"{"s":"日"#.into(),
                error: format!(
                    "record of {} bytes exceeds the limit of 10 bytes; raw holds its first 9 bytes",
                    record.len()
                ),
            }]
        );
    }

    #[test]
    fn rejects_keep_index_and_the_rest_goes_on() {
        let (batch, rejects) = convert("[{\"a\":1}, 7, {\"b\":}, {\"c\":3}]");
        let batch = batch.unwrap();
        assert_eq!(batch.num_rows(), 2);
        let index = batch
            .column_by_name(SOURCE_INDEX)
            .unwrap()
            .as_primitive::<arrow::datatypes::Int64Type>();
        assert_eq!(index.values().as_ref(), &[0, 3]);
        let rejected: Vec<u64> = rejects.iter().map(|r| r.index).collect();
        assert_eq!(rejected, vec![1, 2]);
        assert!(rejects[0].error.contains("not a JSON object"));
        assert!(rejects[1].error.contains("invalid JSON"));
    }
}
