//! Where a retention run cuts: the instant before which whole days go.

use std::time::Duration;

use crate::sink::postgres::partitions::{DAY_MS, Slot};

/// The instant, in milliseconds since the epoch: a day goes when it ended at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    pub millis: i64,
}

impl Cut {
    /// `--before DATE`: the days before `date` (UTC).
    pub fn before(date: chrono::NaiveDate) -> Self {
        let millis = Slot::of_date(date).start_millis().expect("a date is a day");
        Self { millis }
    }

    /// `--older-than DURATION`: the days that ended at least `age` before `now`.
    pub fn older_than(age: Duration, now: chrono::DateTime<chrono::Utc>) -> Self {
        let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        Self {
            millis: now.timestamp_millis().saturating_sub(age),
        }
    }

    /// True when every record of `slot` is older than the cut; never for undated records.
    pub fn takes(&self, slot: Slot) -> bool {
        slot.start_millis()
            .is_some_and(|start| start.saturating_add(DAY_MS) <= self.millis)
    }

    /// The first day the cut keeps, for messages.
    pub fn first_kept(&self) -> Slot {
        Slot::of_millis(self.millis.div_euclid(DAY_MS) * DAY_MS + 1)
    }
}

/// Parses `30d`, `12h`, `90m`, `3600s` or `2w` (a whole number and a unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
        format!("`{text}`: give a unit: d (days), h, m, s or w (weeks), e.g. 30d")
    })?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a whole number and a unit, e.g. 30d or 12h"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}`: use d (days), h, m, s or w (weeks)"
            ));
        }
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_a_unit() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert!(parse_duration("30").unwrap_err().contains("unit"));
        assert!(parse_duration("30y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn only_whole_days_before_the_cut_go() {
        let day = |y, m, d| chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let cut = Cut::before(day(2024, 11, 5));
        assert!(cut.takes(Slot::of_date(day(2024, 11, 4))));
        assert!(!cut.takes(Slot::of_date(day(2024, 11, 5))));
        assert!(!cut.takes(Slot::Undated));
        assert_eq!(cut.first_kept(), Slot::of_date(day(2024, 11, 5)));
        // 12 hours before noon on the 5th: the 4th ended before it, the 5th did not.
        let noon = day(2024, 11, 5).and_hms_opt(12, 0, 0).unwrap().and_utc();
        let cut = Cut::older_than(Duration::from_secs(12 * 3_600), noon);
        assert!(cut.takes(Slot::of_date(day(2024, 11, 4))));
        assert!(!cut.takes(Slot::of_date(day(2024, 11, 5))));
        let cut = Cut::older_than(Duration::from_secs(11 * 3_600), noon);
        assert!(!cut.takes(Slot::of_date(day(2024, 11, 5))));
        assert_eq!(cut.first_kept(), Slot::of_date(day(2024, 11, 5)));
    }
}
