//! Timestamps and dates as PostgreSQL's binary format holds them: microseconds or days
//! since 2000-01-01, within PostgreSQL's ranges.
//!
//! A value PostgreSQL cannot hold becomes NULL: binary COPY would make it fail the whole
//! chunk ("timestamp out of range"), or, at the ends of `i64`, store it as `-infinity` /
//! `infinity`. In a NOT NULL column that NULL would fail the chunk just the same, with a
//! message naming neither the column nor the value, so there the conversion fails instead
//! with an [`EncodeError`] that names both. The check costs nothing while every value is
//! in range: it compares the null counts of the column before and after.

use arrow::array::timezone::Tz;
use arrow::array::{Array, ArrayRef, AsArray, Int32Array, Int64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int32Type, Int64Type, TimeUnit};
use arrow::error::ArrowError;
use chrono::{DateTime, Utc};

/// A value the encoder refuses to write: a data error, which fails the file
/// (`FileError::Encode`, permanent) before anything of its chunk is committed. Reaches the
/// pipeline as `ArrowError::ExternalError`.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// A timestamp or date PostgreSQL cannot hold, in a NOT NULL column (in a nullable one
    /// it is written as NULL).
    #[error("column \"{column}\" is NOT NULL and {value} is outside PostgreSQL's {range}")]
    OutOfRange {
        column: String,
        /// The value as its date when it has one, and as its number with its unit.
        value: String,
        range: PgRange,
    },
}

/// A range of values PostgreSQL can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgRange {
    Timestamp,
    Date,
}

impl std::fmt::Display for PgRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Timestamp => "timestamp range (4714-11-24 BC to 294276-12-31 AD)",
            Self::Date => "date range (4714-11-24 BC to 5874897-12-31 AD)",
        })
    }
}

/// Seconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_SECS: i64 = 946_684_800;
/// Milliseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MILLIS: i64 = PG_EPOCH_SECS * 1_000;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub(super) const PG_EPOCH_MICROS: i64 = PG_EPOCH_SECS * 1_000_000;
/// Days from 1970-01-01 to 2000-01-01.
pub(super) const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds in a day.
const DAY_MICROS: i64 = 86_400_000_000;
/// The timestamps PostgreSQL accepts, in microseconds since 2000-01-01: from 4714-11-24 BC
/// to the end of 294276 AD (`MIN_TIMESTAMP` and `END_TIMESTAMP` of its `timestamp.h`).
pub(super) const PG_TIMESTAMPS: std::ops::Range<i64> =
    -211_813_488_000_000_000..9_223_371_331_200_000_000;
/// The dates PostgreSQL accepts, in days since 2000-01-01: from 4714-11-24 BC to the end of
/// 5874897 AD.
pub(super) const PG_DATES: std::ops::Range<i32> = -2_451_545..2_145_031_949;

/// What a raw temporal value counts since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Seconds,
    Millis,
    Micros,
    Nanos,
    Days,
}

impl Unit {
    fn of(unit: TimeUnit) -> Self {
        match unit {
            TimeUnit::Second => Self::Seconds,
            TimeUnit::Millisecond => Self::Millis,
            TimeUnit::Microsecond => Self::Micros,
            TimeUnit::Nanosecond => Self::Nanos,
        }
    }

    fn per_day(self) -> i64 {
        match self {
            Self::Seconds => 86_400,
            Self::Millis => 86_400_000,
            Self::Micros => DAY_MICROS,
            Self::Nanos => DAY_MICROS * 1_000,
            Self::Days => 1,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Seconds => "seconds",
            Self::Millis => "milliseconds",
            Self::Micros => "microseconds",
            Self::Nanos => "nanoseconds",
            Self::Days => "days",
        }
    }

    /// The instant `value` stands for, when chrono can represent it (about 262,000 years
    /// either side of year 0).
    fn instant(self, value: i64) -> Option<DateTime<Utc>> {
        match self {
            Self::Seconds => DateTime::from_timestamp(value, 0),
            Self::Millis => DateTime::from_timestamp_millis(value),
            Self::Micros => DateTime::from_timestamp_micros(value),
            Self::Nanos => Some(DateTime::from_timestamp_nanos(value)),
            Self::Days => DateTime::from_timestamp(value.checked_mul(86_400)?, 0),
        }
    }

    /// `value` for an error message: its date when chrono can show it, and the number.
    fn describe(self, value: i64) -> String {
        let raw = format!("{value} {} since 1970-01-01", self.name());
        match self.instant(value) {
            Some(instant) if self == Self::Days => format!("{} ({raw})", instant.date_naive()),
            Some(instant) => format!("{} UTC ({raw})", instant.format("%Y-%m-%d %H:%M:%S%.f")),
            None => raw,
        }
    }
}

/// The raw values of a timestamp or date column, widened to `i64`, and their unit.
fn raw_values(array: &ArrayRef) -> Result<(Int64Array, Unit), ArrowError> {
    let unit = match array.data_type() {
        DataType::Timestamp(unit, _) => Unit::of(*unit),
        DataType::Date32 => Unit::Days,
        DataType::Date64 => Unit::Millis,
        other => unreachable!("raw_values of {other}: the table sends only timestamps and dates"),
    };
    let raw = cast(array, &DataType::Int64)?;
    Ok((raw.as_primitive::<Int64Type>().clone(), unit))
}

/// Microseconds since 2000-01-01 of a timestamp (any unit), date or text column, NULL where
/// PostgreSQL's range ends. `not_null`: the column's name when it is NOT NULL, where a
/// value beyond the range is an [`EncodeError`] instead.
pub(super) fn pg_micros(
    array: &ArrayRef,
    not_null: Option<&str>,
) -> Result<Int64Array, ArrowError> {
    let parsed;
    let source = match array.data_type() {
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 => array,
        // Text: parsed (a value that does not parse is NULL before the range is looked at).
        _ => {
            parsed = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            &parsed
        }
    };
    let (raw, unit) = raw_values(source)?;
    let in_range = |micros: Option<i64>| micros.filter(|m| PG_TIMESTAMPS.contains(m));
    // From the unit to microseconds after moving the epoch, not before: the last years of
    // PostgreSQL's range (294247-294276 AD) overflow a microsecond count since 1970.
    let written = match unit {
        Unit::Micros => raw.unary_opt(|v| in_range(v.checked_sub(PG_EPOCH_MICROS))),
        Unit::Nanos => raw.unary_opt(|v| in_range(Some(v.div_euclid(1_000) - PG_EPOCH_MICROS))),
        Unit::Seconds => raw.unary_opt(|v| {
            in_range(
                v.checked_sub(PG_EPOCH_SECS)
                    .and_then(|s| s.checked_mul(1_000_000)),
            )
        }),
        Unit::Millis => raw.unary_opt(|v| {
            in_range(
                v.checked_sub(PG_EPOCH_MILLIS)
                    .and_then(|ms| ms.checked_mul(1_000)),
            )
        }),
        Unit::Days => raw.unary_opt(|v| {
            in_range(
                v.checked_sub(i64::from(PG_EPOCH_DAYS))
                    .and_then(|d| d.checked_mul(DAY_MICROS)),
            )
        }),
    };
    if let Some(column) = not_null {
        check_kept(column, &raw, unit, &written, PgRange::Timestamp)?;
    }
    Ok(written)
}

/// Days since 2000-01-01 of a date, timestamp or text column, NULL where PostgreSQL's
/// range ends (an [`EncodeError`] in a NOT NULL column, as for [`pg_micros`]). A timestamp
/// with a time zone gives its date in that zone (as Arrow's cast does), UTC when it has
/// none.
pub(super) fn pg_days(array: &ArrayRef, not_null: Option<&str>) -> Result<Int32Array, ArrowError> {
    let parsed;
    let (source, zone) = match array.data_type() {
        DataType::Timestamp(_, Some(zone)) => (array, Some(zone.parse::<Tz>()?)),
        DataType::Timestamp(_, None) | DataType::Date32 | DataType::Date64 => (array, None),
        _ => {
            parsed = cast(array, &DataType::Date32)?;
            (&parsed, None)
        }
    };
    let (raw, unit) = raw_values(source)?;
    let per_day = unit.per_day();
    let utc_days = |v: i64| v.div_euclid(per_day);
    let days_since_1970 = match zone {
        None => raw.unary::<_, Int64Type>(utc_days),
        // Beyond chrono's range (±262,000 years) the offset is unknown: the UTC date.
        Some(zone) => raw.unary::<_, Int64Type>(|v| {
            unit.instant(v).map_or_else(
                || utc_days(v),
                |instant| local_days(&instant.with_timezone(&zone).date_naive()),
            )
        }),
    };
    let written = days_since_1970.unary_opt::<_, Int32Type>(|d| {
        d.checked_sub(i64::from(PG_EPOCH_DAYS))
            .and_then(|d| i32::try_from(d).ok())
            .filter(|d| PG_DATES.contains(d))
    });
    if let Some(column) = not_null {
        check_kept(column, &raw, unit, &written, PgRange::Date)?;
    }
    Ok(written)
}

/// Days from 1970-01-01 to `date`.
fn local_days(date: &chrono::NaiveDate) -> i64 {
    const CE_TO_1970: i64 = 719_163;
    i64::from(chrono::Datelike::num_days_from_ce(date)) - CE_TO_1970
}

/// In a NOT NULL column: fails naming the first value of `raw` that `written` left NULL
/// (beyond PostgreSQL's `range`). Free while the null counts agree.
fn check_kept(
    column: &str,
    raw: &Int64Array,
    unit: Unit,
    written: &dyn Array,
    range: PgRange,
) -> Result<(), ArrowError> {
    if written.null_count() == raw.null_count() {
        return Ok(());
    }
    let Some(row) = (0..raw.len()).find(|&row| raw.is_valid(row) && written.is_null(row)) else {
        return Ok(());
    };
    Err(ArrowError::ExternalError(Box::new(
        EncodeError::OutOfRange {
            column: column.to_string(),
            value: unit.describe(raw.value(row)),
            range,
        },
    )))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use arrow::array::PrimitiveArray;

    /// The microseconds since 2000 written for `values` of `unit`, None for NULL.
    fn micros_written(unit: TimeUnit, values: Vec<i64>) -> Vec<Option<i64>> {
        let array = PrimitiveArray::<Int64Type>::from(values);
        let array: ArrayRef = Arc::new(array);
        let array = cast(&array, &DataType::Timestamp(unit, None)).unwrap();
        pg_micros(&array, None).unwrap().iter().collect()
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
        let days: ArrayRef = Arc::new(arrow::array::Date32Array::from(vec![
            i32::MIN,
            i32::MAX,
            PG_DATES.start + PG_EPOCH_DAYS,
            PG_DATES.start + PG_EPOCH_DAYS - 1,
            0,
        ]));
        let written: Vec<Option<i32>> = pg_days(&days, None).unwrap().iter().collect();
        assert_eq!(
            written,
            vec![None, None, Some(PG_DATES.start), None, Some(-PG_EPOCH_DAYS)]
        );
        let as_micros: Vec<Option<i64>> = pg_micros(&days, None).unwrap().iter().collect();
        assert_eq!(
            as_micros,
            vec![
                None,
                None,
                Some(PG_TIMESTAMPS.start),
                None,
                Some(-PG_EPOCH_MICROS)
            ]
        );
    }

    #[test]
    fn a_timestamp_has_the_date_of_its_own_time_zone() {
        // 2024-11-05 23:30 UTC is already the 6th in Paris, still the 5th naive (UTC).
        let seconds: ArrayRef = Arc::new(Int64Array::from(vec![1_730_849_400, i64::MAX]));
        let expected_5th = 20_032 - PG_EPOCH_DAYS;
        for (zone, day) in [(None, expected_5th), (Some("+01:00"), expected_5th + 1)] {
            let stamps = cast(
                &seconds,
                &DataType::Timestamp(TimeUnit::Second, zone.map(Into::into)),
            )
            .unwrap();
            let written: Vec<Option<i32>> = pg_days(&stamps, None).unwrap().iter().collect();
            assert_eq!(written, vec![Some(day), None], "{zone:?}");
        }
    }

    /// The message of the error a NOT NULL column `c` gets for `array`.
    fn not_null_error(array: ArrayRef, days: bool) -> String {
        let error = if days {
            pg_days(&array, Some("c")).unwrap_err()
        } else {
            pg_micros(&array, Some("c")).unwrap_err()
        };
        let ArrowError::ExternalError(error) = error else {
            panic!("an EncodeError: {error}")
        };
        assert!(error.is::<EncodeError>());
        error.to_string()
    }

    #[test]
    fn beyond_the_range_a_not_null_column_fails_naming_column_and_value() {
        let seconds: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(0),
            None,
            Some(9_000_000_000_000_000),
        ]));
        let stamps = cast(&seconds, &DataType::Timestamp(TimeUnit::Second, None)).unwrap();
        assert_eq!(
            not_null_error(stamps, false),
            "column \"c\" is NOT NULL and 9000000000000000 seconds since 1970-01-01 is outside \
             PostgreSQL's timestamp range (4714-11-24 BC to 294276-12-31 AD)"
        );
        let millis: ArrayRef = Arc::new(Int64Array::from(vec![-300_000_000_000_000]));
        let stamps = cast(
            &millis,
            &DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        )
        .unwrap();
        assert_eq!(
            not_null_error(stamps, false),
            "column \"c\" is NOT NULL and -7537-05-18 18:40:00 UTC (-300000000000000 \
             milliseconds since 1970-01-01) is outside PostgreSQL's timestamp range \
             (4714-11-24 BC to 294276-12-31 AD)"
        );
        let days: ArrayRef = Arc::new(arrow::array::Date32Array::from(vec![i32::MAX]));
        assert_eq!(
            not_null_error(days, true),
            "column \"c\" is NOT NULL and 2147483647 days since 1970-01-01 is outside \
             PostgreSQL's date range (4714-11-24 BC to 5874897-12-31 AD)"
        );
    }

    #[test]
    fn in_range_and_null_values_pass_a_not_null_column() {
        let text: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![
            Some("2024-11-05T10:00:00Z"),
            Some("not a date"),
            None,
        ]));
        let micros: Vec<Option<i64>> = pg_micros(&text, Some("c")).unwrap().iter().collect();
        assert_eq!(
            micros,
            vec![Some(1_730_800_800_000_000 - PG_EPOCH_MICROS), None, None],
            "text that does not parse is NULL (for PostgreSQL to refuse), not out of range"
        );
    }
}
