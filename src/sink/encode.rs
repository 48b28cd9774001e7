//! Arrow batches -> PostgreSQL binary COPY data.
//!
//! Binary COPY is 1.6-2x faster for the server than CSV: no text parsing of numbers and
//! timestamps. The format: a header, then per row a 16-bit field count and per field a
//! 32-bit length (-1 for NULL) and the value in the type's binary send format; a trailer of
//! -1. Binary COPY does not check that a value matches its column's type, so every column
//! is encoded from its [`PgType`] as the database described it, never guessed.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, LargeStringArray, StringArray, StringViewArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

use super::pgtype::PgType;

const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
const TRAILER: &[u8] = &(-1i16).to_be_bytes();
/// Seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_SECS: i64 = 946_684_800;
/// Milliseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MILLIS: i64 = PG_EPOCH_SECS * 1_000;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_SECS * 1_000_000;
/// Days from 1970-01-01 to 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
/// The timestamps PostgreSQL accepts, in microseconds since 2000-01-01: from 4714-11-24 BC
/// to the end of 294276 AD (`MIN_TIMESTAMP` and `END_TIMESTAMP` of its `timestamp.h`).
const PG_TIMESTAMPS: std::ops::Range<i64> = -211_813_488_000_000_000..9_223_371_331_200_000_000;
/// The dates PostgreSQL accepts, in days since 2000-01-01: from 4714-11-24 BC to the end of
/// 5874897 AD.
const PG_DATES: std::ops::Range<i32> = -2_451_545..2_145_031_949;

/// A string column of any Arrow string layout, read without copying.
enum Strings {
    Utf8(StringArray),
    Large(LargeStringArray),
    View(StringViewArray),
}

impl Strings {
    fn is_null(&self, row: usize) -> bool {
        match self {
            Self::Utf8(a) => a.is_null(row),
            Self::Large(a) => a.is_null(row),
            Self::View(a) => a.is_null(row),
        }
    }

    fn value(&self, row: usize) -> &str {
        match self {
            Self::Utf8(a) => a.value(row),
            Self::Large(a) => a.value(row),
            Self::View(a) => a.value(row),
        }
    }
}

/// One column of a batch, converted to what its PostgreSQL type is written from.
enum Column {
    Null,
    Text(Strings),
    Json(Strings),
    Jsonb(Strings),
    Int2(Int16Array),
    Int4(Int32Array),
    Int8(Int64Array),
    Float4(Float32Array),
    Float8(Float64Array),
    Bool(BooleanArray),
    /// Microseconds since 2000-01-01 (timestamp, timestamptz); NULL where PostgreSQL's
    /// range ends.
    Micros(Int64Array),
    /// Days since 2000-01-01; NULL where PostgreSQL's range ends.
    Days(Int32Array),
    Uuid(Strings),
}

/// Encodes batches whose columns `columns[i]` (index into the batch, type) are written as
/// the COPY statement's i-th column.
#[derive(Debug, Clone)]
pub struct CopyEncoder {
    columns: Arc<[(usize, PgType)]>,
}

impl CopyEncoder {
    pub fn new(columns: Vec<(usize, PgType)>) -> Self {
        Self {
            columns: columns.into(),
        }
    }

    /// Starts a COPY payload.
    pub fn begin(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(HEADER);
    }

    /// Ends a COPY payload.
    pub fn end(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(TRAILER);
    }

    /// Appends the rows of `batch` to `out`.
    pub fn encode(&self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<(), ArrowError> {
        let columns = self
            .columns
            .iter()
            .map(|(index, pg)| prepare(batch.column(*index), *pg))
            .collect::<Result<Vec<_>, _>>()?;
        let field_count = (columns.len() as i16).to_be_bytes();
        for row in 0..batch.num_rows() {
            out.extend_from_slice(&field_count);
            for column in &columns {
                write_field(column, row, out);
            }
        }
        Ok(())
    }
}

fn text(array: &ArrayRef) -> Result<Strings, ArrowError> {
    Ok(match array.data_type() {
        DataType::Utf8 => Strings::Utf8(array.as_string::<i32>().clone()),
        DataType::LargeUtf8 => Strings::Large(array.as_string::<i64>().clone()),
        DataType::Utf8View => Strings::View(array.as_string_view().clone()),
        _ => Strings::Utf8(cast(array, &DataType::Utf8)?.as_string::<i32>().clone()),
    })
}

fn prepare(array: &ArrayRef, pg: PgType) -> Result<Column, ArrowError> {
    if array.data_type() == &DataType::Null {
        return Ok(Column::Null);
    }
    let to = |dt: &DataType| cast(array, dt);
    Ok(match pg {
        PgType::Text => Column::Text(text(array)?),
        PgType::Json => Column::Json(text(array)?),
        PgType::Jsonb => Column::Jsonb(text(array)?),
        PgType::Int2 => Column::Int2(to(&DataType::Int16)?.as_primitive().clone()),
        PgType::Int4 => Column::Int4(to(&DataType::Int32)?.as_primitive().clone()),
        PgType::Int8 => Column::Int8(to(&DataType::Int64)?.as_primitive().clone()),
        PgType::Float4 => Column::Float4(to(&DataType::Float32)?.as_primitive().clone()),
        PgType::Float8 => Column::Float8(to(&DataType::Float64)?.as_primitive().clone()),
        PgType::Bool => Column::Bool(to(&DataType::Boolean)?.as_boolean().clone()),
        PgType::Timestamptz | PgType::Timestamp => Column::Micros(pg_micros(array)?),
        PgType::Date => {
            let days = to(&DataType::Date32)?;
            let days = arrow::compute::cast(&days, &DataType::Int32)?;
            let days: &Int32Array = days.as_primitive();
            Column::Days(days.unary_opt(|d| {
                d.checked_sub(PG_EPOCH_DAYS)
                    .filter(|d| PG_DATES.contains(d))
            }))
        }
        PgType::Uuid => Column::Uuid(text(array)?),
    })
}

/// Microseconds since 2000-01-01 of a timestamp, date or text column. Timestamps with a
/// time zone hold UTC instants; naive timestamps are read as UTC. A value PostgreSQL cannot
/// hold becomes NULL: binary COPY would make it fail the whole chunk ("timestamp out of
/// range"), or, at the ends of `i64`, store it as `-infinity` / `infinity`.
fn pg_micros(array: &ArrayRef) -> Result<Int64Array, ArrowError> {
    let timestamps = match array.data_type() {
        DataType::Timestamp(_, _) => Arc::clone(array),
        _ => cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?,
    };
    let DataType::Timestamp(unit, _) = timestamps.data_type() else {
        unreachable!("cast to a timestamp")
    };
    let unit = *unit;
    let raw = cast(&timestamps, &DataType::Int64)?;
    let raw = raw.as_primitive::<Int64Type>();
    let in_range = |micros: Option<i64>| micros.filter(|m| PG_TIMESTAMPS.contains(m));
    Ok(match unit {
        TimeUnit::Second => raw.unary_opt(|v| {
            in_range(
                v.checked_sub(PG_EPOCH_SECS)
                    .and_then(|s| s.checked_mul(1_000_000)),
            )
        }),
        TimeUnit::Millisecond => raw.unary_opt(|v| {
            in_range(
                v.checked_sub(PG_EPOCH_MILLIS)
                    .and_then(|ms| ms.checked_mul(1_000)),
            )
        }),
        TimeUnit::Microsecond => raw.unary_opt(|v| in_range(v.checked_sub(PG_EPOCH_MICROS))),
        TimeUnit::Nanosecond => {
            raw.unary_opt(|v| in_range(Some(v.div_euclid(1_000) - PG_EPOCH_MICROS)))
        }
    })
}

fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

fn write_bytes(out: &mut Vec<u8>, prefix: Option<u8>, bytes: &[u8]) {
    let len = bytes.len() + usize::from(prefix.is_some());
    out.extend_from_slice(&(len as i32).to_be_bytes());
    if let Some(prefix) = prefix {
        out.push(prefix);
    }
    out.extend_from_slice(bytes);
}

fn write_fixed<const N: usize>(out: &mut Vec<u8>, bytes: [u8; N]) {
    out.extend_from_slice(&(N as i32).to_be_bytes());
    out.extend_from_slice(&bytes);
}

fn write_field(column: &Column, row: usize, out: &mut Vec<u8>) {
    macro_rules! fixed {
        ($array:expr, $conv:expr) => {
            if $array.is_null(row) {
                write_null(out)
            } else {
                write_fixed(out, $conv($array.value(row)))
            }
        };
    }
    match column {
        Column::Null => write_null(out),
        Column::Text(a) | Column::Json(a) | Column::Jsonb(a) if a.is_null(row) => write_null(out),
        Column::Text(a) | Column::Json(a) => write_bytes(out, None, a.value(row).as_bytes()),
        // jsonb's binary format: a version byte (1), then the JSON text.
        Column::Jsonb(a) => write_bytes(out, Some(1), a.value(row).as_bytes()),
        Column::Int2(a) => fixed!(a, i16::to_be_bytes),
        Column::Int4(a) => fixed!(a, i32::to_be_bytes),
        Column::Int8(a) => fixed!(a, i64::to_be_bytes),
        Column::Float4(a) => fixed!(a, f32::to_be_bytes),
        Column::Float8(a) => fixed!(a, f64::to_be_bytes),
        Column::Bool(a) => fixed!(a, |b: bool| [u8::from(b)]),
        Column::Micros(a) => fixed!(a, i64::to_be_bytes),
        Column::Days(a) => fixed!(a, i32::to_be_bytes),
        Column::Uuid(a) => match (!a.is_null(row))
            .then(|| parse_uuid(a.value(row)))
            .flatten()
        {
            Some(bytes) => write_fixed(out, bytes),
            None => write_null(out),
        },
    }
}

/// Parses `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hyphens optional) into 16 bytes.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let mut bytes = [0u8; 16];
    let mut nibbles = text.bytes().filter(|b| *b != b'-');
    for byte in &mut bytes {
        let high = hex(nibbles.next()?)?;
        let low = hex(nibbles.next()?)?;
        *byte = high << 4 | low;
    }
    nibbles.next().is_none().then_some(bytes)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn uuid_parsing() {
        let bytes = parse_uuid("01932f4e-1a2b-7c3d-8e4f-0123456789ab").unwrap();
        assert_eq!(bytes[0], 0x01);
        assert_eq!(bytes[15], 0xab);
        assert!(parse_uuid("not-a-uuid").is_none());
        assert!(parse_uuid("01932f4e-1a2b-7c3d-8e4f-0123456789abcd").is_none());
    }

    /// The microseconds since 2000 written for `values` of `unit`, None for NULL.
    fn micros_written(unit: TimeUnit, values: Vec<i64>) -> Vec<Option<i64>> {
        let array = arrow::array::PrimitiveArray::<Int64Type>::from(values);
        let array: ArrayRef = Arc::new(array);
        let array = cast(&array, &DataType::Timestamp(unit, None)).unwrap();
        pg_micros(&array).unwrap().iter().collect()
    }

    #[test]
    fn timestamps_beyond_postgresql_become_null_in_every_unit() {
        // 4714-11-24 00:00:00 BC UTC, PostgreSQL's first instant, in Unix epoch units.
        let first_second = -210_866_803_200;
        let pg_first = PG_TIMESTAMPS.start;
        assert_eq!(
            micros_written(
                TimeUnit::Second,
                vec![first_second, first_second - 1, i64::MIN, i64::MAX, 0]
            ),
            vec![Some(pg_first), None, None, None, Some(-PG_EPOCH_MICROS)]
        );
        let first_milli = first_second * 1_000;
        assert_eq!(
            micros_written(
                TimeUnit::Millisecond,
                vec![
                    first_milli,
                    first_milli - 1,
                    1_730_800_800_123_456,
                    9_223_372_036_854_775,
                    i64::MIN,
                    i64::MAX
                ]
            ),
            vec![
                Some(pg_first),
                None,
                Some(1_730_800_800_123_456_000 - PG_EPOCH_MICROS),
                Some(9_223_372_036_854_775_000 - PG_EPOCH_MICROS),
                None,
                None
            ]
        );
        let first_micro = first_milli * 1_000;
        assert_eq!(
            micros_written(
                TimeUnit::Microsecond,
                vec![first_micro, first_micro - 1, i64::MIN, i64::MAX]
            ),
            vec![Some(pg_first), None, None, Some(i64::MAX - PG_EPOCH_MICROS)]
        );
        assert_eq!(
            micros_written(TimeUnit::Nanosecond, vec![i64::MIN, i64::MAX, -1]),
            vec![
                Some(i64::MIN.div_euclid(1_000) - PG_EPOCH_MICROS),
                Some(i64::MAX / 1_000 - PG_EPOCH_MICROS),
                Some(-1 - PG_EPOCH_MICROS)
            ]
        );
    }

    #[test]
    fn dates_beyond_postgresql_become_null() {
        let schema = Schema::new(vec![Field::new("d", DataType::Date32, true)]);
        let days = arrow::array::Date32Array::from(vec![
            i32::MIN,
            i32::MAX,
            PG_DATES.start + PG_EPOCH_DAYS,
            PG_DATES.start + PG_EPOCH_DAYS - 1,
            0,
        ]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(days)]).unwrap();
        let Column::Days(written) = prepare(batch.column(0), PgType::Date).unwrap() else {
            panic!("a date column")
        };
        let written: Vec<Option<i32>> = written.iter().collect();
        assert_eq!(
            written,
            vec![None, None, Some(PG_DATES.start), None, Some(-PG_EPOCH_DAYS)]
        );
    }

    #[test]
    fn encodes_rows_fields_and_nulls() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int32Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec![Some("{}"), Some("x")])),
            ],
        )
        .unwrap();
        let encoder = CopyEncoder::new(vec![(0, PgType::Int8), (1, PgType::Jsonb)]);
        let mut out = Vec::new();
        encoder.encode(&batch, &mut out).unwrap();
        let expected: Vec<u8> = [
            &2i16.to_be_bytes()[..],
            &8i32.to_be_bytes(),
            &7i64.to_be_bytes(),
            &3i32.to_be_bytes(),
            &[1, b'{', b'}'],
            &2i16.to_be_bytes(),
            &(-1i32).to_be_bytes(),
            &2i32.to_be_bytes(),
            &[1, b'x'],
        ]
        .concat();
        assert_eq!(out, expected);
    }
}
