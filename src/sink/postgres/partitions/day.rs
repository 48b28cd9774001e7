//! Which partition of a day-partitioned table a record id belongs to, and the bounds and
//! names of those partitions. Pure arithmetic over the id layout, no database.
//!
//! The table is partitioned by `RANGE (id)`. An id is a UUIDv7 whose first 48 bits are the
//! record's time in epoch milliseconds (`ingestor_record_id`), 0 when the record has no
//! timestamp (or one before 1970). So the ids of one UTC day form one range:
//! `[day start ms, next day start ms)` written as the smallest UUID with that prefix. The
//! prefix 0 (no time) gets its own partition, `<table>_undated`, which covers
//! `[MINVALUE, ms 1)`; the day 1970-01-01 therefore starts at ms 1. Ids end with the 48-bit
//! range (year 10889): the last day's partition ends at `MAXVALUE`.

use std::fmt;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;

use crate::sink::postgres::parse_uuid;

/// Milliseconds per day.
pub const DAY_MS: i64 = 86_400_000;

/// The largest millisecond value an id holds (48 bits).
const MAX_MS: i64 = (1 << 48) - 1;

/// One partition of the layout: the records without a time, or one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// Ids whose time prefix is 0: records without a timestamp.
    Undated,
    /// Days since 1970-01-01 (UTC).
    Day(i32),
}

/// The ids a slot holds, as 128-bit UUID values: `[lo, hi)`; `hi` None is MAXVALUE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub lo: u128,
    pub hi: Option<u128>,
}

impl Slot {
    /// The slot of an id given as its 16 bytes.
    pub fn of_id(id: &[u8; 16]) -> Self {
        let mut ms = 0i64;
        for byte in &id[..6] {
            ms = ms << 8 | i64::from(*byte);
        }
        Self::of_millis(ms)
    }

    /// The slot of a time prefix (milliseconds since the epoch, as the id holds it).
    pub fn of_millis(ms: i64) -> Self {
        if ms <= 0 {
            Self::Undated
        } else {
            Self::Day((ms.min(MAX_MS) / DAY_MS) as i32)
        }
    }

    /// The slot of the UTC day of `date`.
    pub fn of_date(date: chrono::NaiveDate) -> Self {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
        Self::Day((date - epoch).num_days() as i32)
    }

    /// The ids of this slot.
    pub fn range(self) -> IdRange {
        match self {
            Self::Undated => IdRange {
                lo: 0,
                hi: Some(id_floor(1)),
            },
            Self::Day(day) => {
                let start = (i64::from(day) * DAY_MS).max(1);
                let end = (i64::from(day) + 1) * DAY_MS;
                IdRange {
                    lo: id_floor(start),
                    hi: (end <= MAX_MS).then(|| id_floor(end)),
                }
            }
        }
    }

    /// `FROM (...) TO (...)` of `ALTER TABLE ... ATTACH PARTITION ... FOR VALUES`.
    pub fn bounds_sql(self) -> String {
        let range = self.range();
        let lo = match self {
            Self::Undated => "MINVALUE".to_string(),
            Self::Day(_) => format!("'{}'", uuid_text(range.lo)),
        };
        let hi = match range.hi {
            Some(hi) => format!("'{}'", uuid_text(hi)),
            None => "MAXVALUE".to_string(),
        };
        format!("FROM ({lo}) TO ({hi})")
    }

    /// The calendar day, None for [`Slot::Undated`].
    pub fn date(self) -> Option<chrono::NaiveDate> {
        match self {
            Self::Undated => None,
            Self::Day(day) => {
                let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
                epoch.checked_add_signed(chrono::Duration::days(i64::from(day)))
            }
        }
    }

    /// The name suffix of the slot's partition: `p20261203` or `undated`.
    pub fn suffix(self) -> String {
        match self.date() {
            None => "undated".to_string(),
            Some(date) => {
                use chrono::Datelike;
                format!("p{:04}{:02}{:02}", date.year(), date.month(), date.day())
            }
        }
    }

    /// The first instant of the day, in milliseconds since the epoch (None: undated).
    pub fn start_millis(self) -> Option<i64> {
        match self {
            Self::Undated => None,
            Self::Day(day) => Some(i64::from(day) * DAY_MS),
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.date() {
            None => f.write_str("undated"),
            Some(date) => write!(f, "{}", date.format("%Y-%m-%d")),
        }
    }
}

/// The smallest id whose time prefix is `ms`.
pub fn id_floor(ms: i64) -> u128 {
    (ms.clamp(0, MAX_MS) as u128) << 80
}

/// The canonical text of a 128-bit UUID value.
pub fn uuid_text(value: u128) -> String {
    let hex = format!("{value:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Parses a UUID as PostgreSQL prints it.
pub fn uuid_value(text: &str) -> Option<u128> {
    parse_uuid(text).map(u128::from_be_bytes)
}

/// The name of the partition of `slot` for the table named `table` (unquoted), kept
/// within PostgreSQL's 63 bytes (the table's part is cut, at a character boundary).
pub fn partition_name(table: &str, slot: Slot, generation: u32) -> String {
    let mut suffix = format!("_{}", slot.suffix());
    if generation > 0 {
        suffix.push_str(&format!("_{generation}"));
    }
    let mut head = table.to_string();
    while head.len() + suffix.len() > 63 {
        head.pop();
    }
    head + &suffix
}

/// The slots of the ids in `column` (text as the COPY encoder parses it, or 16 bytes),
/// sorted and without repeats. Ids that do not parse are left out: the encoder writes
/// them as NULL, which the primary key refuses anyway.
pub fn slots_of(column: &dyn Array, into: &mut Vec<Slot>) {
    let mut last = None;
    let mut take = |bytes: &[u8; 16]| {
        let slot = Slot::of_id(bytes);
        if last != Some(slot) {
            last = Some(slot);
            into.push(slot);
        }
    };
    match column.data_type() {
        DataType::Utf8 => column
            .as_string::<i32>()
            .iter()
            .flatten()
            .filter_map(parse_uuid)
            .for_each(|b| take(&b)),
        DataType::LargeUtf8 => column
            .as_string::<i64>()
            .iter()
            .flatten()
            .filter_map(parse_uuid)
            .for_each(|b| take(&b)),
        DataType::Utf8View => column
            .as_string_view()
            .iter()
            .flatten()
            .filter_map(parse_uuid)
            .for_each(|b| take(&b)),
        DataType::FixedSizeBinary(16) => column
            .as_fixed_size_binary()
            .iter()
            .flatten()
            .for_each(|b| take(b.try_into().expect("16 bytes"))),
        _ => {}
    }
    into.sort_unstable();
    into.dedup();
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{FixedSizeBinaryArray, StringArray};

    /// 2024-11-05T10:00:00.123Z, the id `record_id` gives it.
    const ID: &str = "0192fbc4-517b-7b74-adb4-e87017dbde95";

    #[test]
    fn an_id_falls_in_the_day_of_its_time_prefix() {
        let bytes = parse_uuid(ID).unwrap();
        let slot = Slot::of_id(&bytes);
        assert_eq!(slot.to_string(), "2024-11-05");
        let range = slot.range();
        let id = u128::from_be_bytes(bytes);
        assert!(range.lo <= id && id < range.hi.unwrap());
        assert_eq!(
            slot.bounds_sql(),
            "FROM ('0192f99f-0000-0000-0000-000000000000') TO ('0192fec5-5c00-0000-0000-000000000000')"
        );
        assert_eq!(slot.suffix(), "p20241105");
        assert_eq!(Slot::of_date(slot.date().unwrap()), slot);
    }

    #[test]
    fn days_touch_each_other_and_the_undated_range() {
        let undated = Slot::Undated.range();
        assert_eq!(undated.lo, 0);
        assert_eq!(
            Slot::Undated.bounds_sql().split(' ').nth(1),
            Some("(MINVALUE)")
        );
        let first = Slot::Day(0).range();
        assert_eq!(undated.hi, Some(first.lo), "1970-01-01 starts at ms 1");
        for day in [0, 1, 20_000, 3_257_810] {
            assert_eq!(
                Slot::Day(day).range().hi,
                Some(Slot::Day(day + 1).range().lo)
            );
        }
        // The last day the 48-bit prefix reaches ends at MAXVALUE.
        let last = Slot::of_millis(MAX_MS);
        assert_eq!(last.range().hi, None);
        assert!(last.bounds_sql().ends_with("TO (MAXVALUE)"));
        assert_eq!(Slot::of_millis(0), Slot::Undated);
        assert_eq!(Slot::of_millis(1), Slot::Day(0));
        assert_eq!(Slot::of_millis(DAY_MS), Slot::Day(1));
        assert_eq!(Slot::of_millis(DAY_MS - 1), Slot::Day(0));
    }

    #[test]
    fn names_fit_postgresql_identifiers() {
        assert_eq!(
            partition_name("logs", Slot::Day(20_032), 0),
            "logs_p20241105"
        );
        assert_eq!(
            partition_name("logs", Slot::Day(20_032), 2),
            "logs_p20241105_2"
        );
        assert_eq!(partition_name("logs", Slot::Undated, 0), "logs_undated");
        let long = "x".repeat(70);
        let name = partition_name(&long, Slot::Day(20_032), 1);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with("_p20241105_1"));
        assert_eq!(uuid_value(&uuid_text(12345)), Some(12345));
    }

    #[test]
    fn slots_of_text_and_byte_ids() {
        let day = |ms: i64| uuid_text(id_floor(ms) | 0x7000_8000_0000_0000_0001);
        let ids = StringArray::from(vec![
            Some(day(2 * DAY_MS + 5)),
            None,
            Some(day(2 * DAY_MS + 7)),
            Some(day(0)),
            Some("not a uuid".to_string()),
            Some(day(DAY_MS + 1)),
            Some(day(2 * DAY_MS + 9)),
        ]);
        let mut slots = Vec::new();
        slots_of(&ids, &mut slots);
        assert_eq!(slots, [Slot::Undated, Slot::Day(1), Slot::Day(2)]);
        let bytes: Vec<[u8; 16]> = [3 * DAY_MS, 3 * DAY_MS + 1, 4 * DAY_MS]
            .iter()
            .map(|ms| id_floor(*ms).to_be_bytes())
            .collect();
        let bytes = FixedSizeBinaryArray::try_from_iter(bytes.iter()).unwrap();
        let mut slots = Vec::new();
        slots_of(&bytes, &mut slots);
        assert_eq!(slots, [Slot::Day(3), Slot::Day(4)]);
    }
}
