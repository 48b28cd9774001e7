//! The one table of what the COPY encoder writes: for an Arrow type and a PostgreSQL column
//! type, the [`Writer`] that prepares the column, or None when it cannot be written. The
//! check made before any file is read ([`PgType::accepts`]) and the encoder (`prepare` in
//! `encode.rs`) both read this table and nothing else, so a transform the check accepts is
//! one the encoder writes: the unit test `every_accepted_pair_is_encoded` walks Arrow types
//! against every [`PgType`], and the integration test
//! `every_pair_the_check_accepts_is_copied_into_postgresql` has PostgreSQL read what the
//! encoder wrote.
//!
//! Lenient, as the built-in transform is: a value that does not fit its column (an
//! overflowing integer, a malformed uuid, a float that JSON cannot hold, an instant
//! PostgreSQL cannot hold) is written as NULL. The one exception is a timestamp or date
//! beyond PostgreSQL's range in a NOT NULL column: NULL would only move the failure into
//! the database, so the encoder fails the batch naming the column and the value
//! ([`EncodeError`](super::EncodeError)).
//!
//! Bytes: 16 bytes (`FixedSizeBinary(16)`) are a uuid, written as they are into `uuid` and
//! as the canonical lowercase text (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`) into a text
//! column. Any other bytes go into a text column as lowercase hex, as Arrow displays them
//! and as `encode(x, 'hex')` would: never guessed to be UTF-8 (cast the column to `Utf8`
//! in the transform for that). Bytes go into no other type.

use arrow::compute::can_cast_types;
use arrow::datatypes::DataType;

use super::pgtype::PgType;

/// How a column of one Arrow type is prepared for one PostgreSQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// An all-NULL column (Arrow `Null`), into any type.
    Null,
    /// Strings as they are, read without copying: into text, json and jsonb.
    Strings,
    /// Any other value as Arrow displays it (numbers, booleans, dates, times, lists, bytes
    /// as hex): into text. A value Arrow cannot display (a timestamp beyond chrono's
    /// range) is NULL.
    Display,
    /// Numbers and booleans as their text: into json and jsonb. NaN and the infinities,
    /// which JSON cannot hold, are NULL.
    JsonScalar,
    /// 16 bytes as the canonical uuid text: into text.
    UuidText,
    /// Strings parsed as a uuid (hyphens optional, either case): into uuid; NULL when
    /// malformed.
    UuidParse,
    /// 16 bytes as they are: into uuid.
    UuidBytes,
    /// Arrow's lenient cast to `Int16` (NULL where a value does not fit): into int2.
    Int2,
    /// Arrow's lenient cast to `Int32`: into int4.
    Int4,
    /// Arrow's lenient cast to `Int64`: into int8.
    Int8,
    /// Arrow's lenient cast to `Float32`: into float4.
    Float4,
    /// Arrow's lenient cast to `Float64`: into float8.
    Float8,
    /// Arrow's lenient cast to `Boolean`: into bool.
    Bool,
    /// Microseconds since 2000-01-01 of a timestamp of any unit (a UTC instant, or a naive
    /// one read as UTC), a date, or text parsed as a timestamp: into timestamptz and
    /// timestamp.
    Micros,
    /// Days since 2000-01-01 of a date, a timestamp (its date in its own time zone, UTC
    /// when it has none) or text parsed as a date: into date.
    Days,
}

/// How values of Arrow type `from` are written into a column of type `to`, or None when
/// they cannot be.
pub fn writer(from: &DataType, to: PgType) -> Option<Writer> {
    use DataType as A;
    let string = matches!(from, A::Utf8 | A::LargeUtf8 | A::Utf8View);
    let uuid = from == &A::FixedSizeBinary(16);
    let bytes = matches!(
        from,
        A::Binary | A::LargeBinary | A::BinaryView | A::FixedSizeBinary(_)
    );
    let temporal = matches!(from, A::Timestamp(_, _) | A::Date32 | A::Date64);
    let castable = |to: A| !bytes && can_cast_types(from, &to);
    let writer = match to {
        _ if from == &A::Null => Writer::Null,
        PgType::Text if string => Writer::Strings,
        PgType::Text if uuid => Writer::UuidText,
        PgType::Text if bytes || can_cast_types(from, &A::Utf8) => Writer::Display,
        PgType::Json | PgType::Jsonb if string => Writer::Strings,
        PgType::Json | PgType::Jsonb if from.is_numeric() || from == &A::Boolean => {
            Writer::JsonScalar
        }
        PgType::Int2 if castable(A::Int16) => Writer::Int2,
        PgType::Int4 if castable(A::Int32) => Writer::Int4,
        PgType::Int8 if castable(A::Int64) => Writer::Int8,
        PgType::Float4 if castable(A::Float32) => Writer::Float4,
        PgType::Float8 if castable(A::Float64) => Writer::Float8,
        PgType::Bool if castable(A::Boolean) => Writer::Bool,
        PgType::Timestamptz | PgType::Timestamp if string || temporal => Writer::Micros,
        PgType::Date if string || temporal => Writer::Days,
        PgType::Uuid if string => Writer::UuidParse,
        PgType::Uuid if uuid => Writer::UuidBytes,
        _ => return None,
    };
    Some(writer)
}

impl PgType {
    /// True when values of Arrow type `from` can be written into this column (values that
    /// do not fit, such as an overflowing integer or a malformed uuid, become NULL): when
    /// the encoder's table has a [`Writer`](Writer) for the pair.
    pub fn accepts(self, from: &DataType) -> bool {
        writer(from, self).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Fields, TimeUnit};

    /// The choices the table makes beyond Arrow's casts, pinned.
    #[test]
    fn bytes_nested_and_temporal_choices() {
        use DataType as A;
        let uuid = A::FixedSizeBinary(16);
        assert_eq!(writer(&uuid, PgType::Uuid), Some(Writer::UuidBytes));
        assert_eq!(writer(&uuid, PgType::Text), Some(Writer::UuidText));
        for bytes in [
            A::Binary,
            A::LargeBinary,
            A::BinaryView,
            A::FixedSizeBinary(4),
        ] {
            assert_eq!(
                writer(&bytes, PgType::Text),
                Some(Writer::Display),
                "{bytes}"
            );
            for pg in [PgType::Uuid, PgType::Jsonb, PgType::Int8, PgType::Bool] {
                assert_eq!(writer(&bytes, pg), None, "{bytes} into {pg:?}");
            }
        }
        for pg in [
            PgType::Json,
            PgType::Int8,
            PgType::Timestamptz,
            PgType::Date,
        ] {
            assert_eq!(writer(&uuid, pg), None, "{pg:?}");
        }
        let record = A::Struct(Fields::from(vec![Field::new("a", A::Int64, true)]));
        for pg in [PgType::Text, PgType::Jsonb, PgType::Int8] {
            assert_eq!(writer(&record, pg), None, "{pg:?}");
        }
        for stamp in [
            A::Timestamp(TimeUnit::Second, None),
            A::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            A::Date32,
            A::Date64,
            A::Utf8View,
        ] {
            assert_eq!(writer(&stamp, PgType::Timestamptz), Some(Writer::Micros));
            assert_eq!(writer(&stamp, PgType::Date), Some(Writer::Days));
        }
        assert_eq!(writer(&A::Int64, PgType::Timestamptz), None);
        assert_eq!(writer(&A::Float32, PgType::Jsonb), Some(Writer::JsonScalar));
        assert_eq!(writer(&A::Null, PgType::Uuid), Some(Writer::Null));
    }

    /// The built-in transform's columns keep their cheapest writers (the hot path).
    #[test]
    fn the_builtin_columns_are_written_as_they_are() {
        use DataType as A;
        let micros = A::Timestamp(TimeUnit::Microsecond, None);
        for (from, to, expected) in [
            (A::Utf8, PgType::Uuid, Writer::UuidParse),
            (micros, PgType::Timestamptz, Writer::Micros),
            (A::Utf8, PgType::Text, Writer::Strings),
            (A::Utf8View, PgType::Text, Writer::Strings),
            (A::Utf8, PgType::Jsonb, Writer::Strings),
            (A::Int64, PgType::Int8, Writer::Int8),
            (A::Int32, PgType::Int4, Writer::Int4),
            (A::Float64, PgType::Float8, Writer::Float8),
            (A::Boolean, PgType::Bool, Writer::Bool),
        ] {
            assert_eq!(writer(&from, to), Some(expected), "{from} into {to:?}");
        }
    }
}
