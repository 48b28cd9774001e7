//! One source object's rows into spooled Parquet files, one per day. Runs on a blocking
//! thread (Parquet encoding and ZSTD are CPU work); memory is bounded by the row group
//! limits: when a new day starts, the row groups buffered for the other days are written
//! out.
//!
//! At most [`LakeOptions::open_days`](super::LakeOptions) writers are open at once (each
//! holds a file descriptor and its file's footer metadata): a new day beyond that closes
//! the least recently written day, and rows of that day arriving later go to a new part
//! file of the same day (`<stem>-1.parquet`, `<stem>-2.parquet`, ...). So descriptors and
//! memory stay flat however many days a file spans, and the names stay deterministic: the
//! same object, read in the same order, always gives the same parts.

use std::collections::BTreeMap;
use std::fs::File;

use arrow::array::{Array, AsArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, Date32Type};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use tempfile::TempPath;
use tokio::sync::mpsc::Receiver;

use super::lake::{Lake, LakeError, NULL_PARTITION, PARTITION_COLUMN};

/// A finished Parquet file in the spool, not yet visible in the lake. Its spool file is
/// removed when it is dropped unpublished.
#[derive(Debug)]
pub struct Staged {
    /// `YYYY-MM-DD`, or [`NULL_PARTITION`].
    pub day: String,
    /// The part of the day: 0 for the first file, then 1, 2, ... when the day's writer was
    /// closed to respect the cap on open writers and the day got more rows later.
    pub part: u32,
    pub temp: TempPath,
    pub rows: u64,
    pub bytes: u64,
}

struct Open {
    writer: ArrowWriter<File>,
    temp: TempPath,
    rows: u64,
    part: u32,
    /// When rows were last written (a counter): the least recent is closed first.
    used: u64,
}

/// The open Parquet writers of one source object, by day, at most `open_days` at once.
pub struct DayWriters {
    lake: std::sync::Arc<Lake>,
    stem: String,
    properties: WriterProperties,
    open: BTreeMap<String, Open>,
    /// Files closed before the end (the cap), in the order they were closed.
    closed: Vec<Staged>,
    /// The next part number of each day whose writer was closed.
    next_part: BTreeMap<String, u32>,
    /// Counts writes, to find the least recently written day.
    clock: u64,
}

impl DayWriters {
    /// Writers for the object whose files are named `stem`; `source` goes into each file's
    /// metadata (`ingestor.source`).
    pub fn new(lake: std::sync::Arc<Lake>, stem: String, source: &str) -> Self {
        let properties = lake.properties(source);
        Self {
            lake,
            stem,
            properties,
            open: BTreeMap::new(),
            closed: Vec::new(),
            next_part: BTreeMap::new(),
            clock: 0,
        }
    }

    /// Appends `batch`, split by the day of its [`PARTITION_COLUMN`].
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for (day, rows) in split_by_day(batch)? {
            let part = match rows {
                None => batch.clone(),
                Some(indices) => take_record_batch(batch, &indices)?,
            };
            self.writer(&day)?.write_rows(&part)?;
        }
        Ok(())
    }

    fn writer(&mut self, day: &str) -> Result<&mut Open, LakeError> {
        self.clock += 1;
        if !self.open.contains_key(day) {
            // Logs move forward in time: the days already open rarely get more rows. The
            // least recently written one is closed when the cap is reached; the others'
            // buffered row groups go to disk, so memory stays that of one row group however
            // many days a file spans.
            while self.open.len() >= self.lake.options.open_days.max(1) {
                self.close_least_recent()?;
            }
            for open in self.open.values_mut() {
                open.flush()?;
            }
            let spool = &self.lake.spool;
            let io = |source| LakeError::Io {
                path: spool.display().to_string(),
                source,
            };
            let named = tempfile::Builder::new()
                .prefix(&format!("{}.{day}.", self.stem))
                .suffix(".parquet.tmp")
                .tempfile_in(spool)
                .map_err(io)?;
            let (file, temp) = named.into_parts();
            let writer = ArrowWriter::try_new(
                file,
                self.lake.schema.clone(),
                Some(self.properties.clone()),
            )
            .map_err(|source| LakeError::Write {
                path: temp.display().to_string(),
                source,
            })?;
            let part = self.next_part.get(day).copied().unwrap_or(0);
            self.open.insert(
                day.to_string(),
                Open {
                    writer,
                    temp,
                    rows: 0,
                    part,
                    used: 0,
                },
            );
        }
        let open = self.open.get_mut(day).expect("inserted above");
        open.used = self.clock;
        Ok(open)
    }

    /// Closes the writer of the least recently written day; its next rows start a new part.
    fn close_least_recent(&mut self) -> Result<(), LakeError> {
        let Some(day) = self
            .open
            .iter()
            .min_by_key(|(_, open)| open.used)
            .map(|(day, _)| day.clone())
        else {
            return Ok(());
        };
        let open = self.open.remove(&day).expect("found above");
        self.next_part.insert(day.clone(), open.part + 1);
        self.closed.push(open.close(day)?);
        Ok(())
    }

    /// Closes every file (footers written, data on disk) and hands them over for
    /// publishing, in day and part order.
    pub fn finish(self) -> Result<Vec<Staged>, LakeError> {
        let mut staged = self.closed;
        staged.reserve(self.open.len());
        for (day, open) in self.open {
            staged.push(open.close(day)?);
        }
        staged.sort_by(|a, b| (&a.day, a.part).cmp(&(&b.day, b.part)));
        Ok(staged)
    }
}

impl Open {
    /// Writes the footer, syncs the file and releases its descriptor.
    fn close(self, day: String) -> Result<Staged, LakeError> {
        let path = self.temp.display().to_string();
        let file = self
            .writer
            .into_inner()
            .map_err(|source| LakeError::Write {
                path: path.clone(),
                source,
            })?;
        file.sync_all()
            .map_err(|source| LakeError::Io { path, source })?;
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Staged {
            day,
            part: self.part,
            temp: self.temp,
            rows: self.rows,
            bytes,
        })
    }

    fn flush(&mut self) -> Result<(), LakeError> {
        self.writer.flush().map_err(|source| LakeError::Write {
            path: self.temp.display().to_string(),
            source,
        })
    }

    fn write_rows(&mut self, batch: &RecordBatch) -> Result<(), LakeError> {
        self.writer
            .write(batch)
            .map_err(|source| LakeError::Write {
                path: self.temp.display().to_string(),
                source,
            })?;
        self.rows += batch.num_rows() as u64;
        Ok(())
    }
}

/// The rows of `batch` by day: `None` for "all of them" (the common case of a batch within
/// one day), else the row indices of each day, in day order.
fn split_by_day(batch: &RecordBatch) -> Result<Vec<(String, Option<UInt32Array>)>, LakeError> {
    let column = batch.column_by_name(PARTITION_COLUMN).ok_or_else(|| {
        LakeError::Config(format!("the output has no `{PARTITION_COLUMN}` column"))
    })?;
    let days = cast(column, &DataType::Date32)?;
    let days = days.as_primitive::<Date32Type>();
    let day_of = |row: usize| days.is_valid(row).then(|| days.value(row));
    let first = day_of(0);
    if (1..days.len()).all(|row| day_of(row) == first) {
        return Ok(vec![(day_name(first), None)]);
    }
    let mut groups: BTreeMap<Option<i32>, Vec<u32>> = BTreeMap::new();
    for row in 0..days.len() {
        groups.entry(day_of(row)).or_default().push(row as u32);
    }
    Ok(groups
        .into_iter()
        .map(|(day, rows)| (day_name(day), Some(UInt32Array::from(rows))))
        .collect())
}

/// `YYYY-MM-DD` of days since the epoch.
fn day_name(day: Option<i32>) -> String {
    const EPOCH_FROM_CE: i32 = 719_163;
    day.and_then(|d| chrono::NaiveDate::from_num_days_from_ce_opt(d + EPOCH_FROM_CE))
        .map_or_else(
            || NULL_PARTITION.to_string(),
            |d| d.format("%Y-%m-%d").to_string(),
        )
}

/// The writer stage: writes every batch from `input`, then closes the files.
pub fn write_stage(
    mut input: Receiver<RecordBatch>,
    mut writers: DayWriters,
) -> Result<Vec<Staged>, LakeError> {
    while let Some(batch) = input.blocking_recv() {
        writers.write(&batch)?;
    }
    writers.finish()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};

    use super::*;

    fn batch(micros: Vec<Option<i64>>) -> RecordBatch {
        let n = micros.len() as i64;
        let schema = Schema::new(vec![
            Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Field::new("n", DataType::Int64, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(TimestampMicrosecondArray::from(micros)),
                Arc::new(Int64Array::from_iter_values(0..n)),
            ],
        )
        .unwrap()
    }

    const DAY: i64 = 86_400_000_000;

    fn writers(dir: &std::path::Path, open_days: usize) -> DayWriters {
        let options = super::super::LakeOptions {
            open_days,
            ..Default::default()
        };
        let location = super::super::LakeLocation::Local(dir.to_path_buf());
        let lake = Lake::new(location, options, batch(vec![None]).schema()).unwrap();
        DayWriters::new(std::sync::Arc::new(lake), "obj-0123".into(), "test")
    }

    /// Open descriptors of this process (nextest runs each test in its own process).
    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd").unwrap().count()
    }

    /// The values of column `n` in a staged file.
    fn staged_values(staged: &Staged) -> Vec<i64> {
        let file = File::open(&staged.temp).unwrap();
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .flat_map(|b| {
                let b = b.unwrap();
                b.column(1)
                    .as_primitive::<arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn a_day_left_when_the_cap_is_reached_continues_in_a_new_part() {
        let dir = tempfile::tempdir().unwrap();
        let mut writers = writers(dir.path(), 2);
        let day = |d: i64| Some(20_000 * DAY + d * DAY);
        // Days 0, 1, then 2 (closes day 0, the least recent), 1, then 0 again (closes day
        // 2; a second part of day 0) and 1.
        for days in [
            vec![day(0), day(0)],
            vec![day(1)],
            vec![day(2)],
            vec![day(1)],
        ] {
            writers.write(&batch(days)).unwrap();
        }
        writers.write(&batch(vec![day(0), day(1)])).unwrap();
        let staged = writers.finish().unwrap();
        let parts: Vec<(&str, u32, u64)> = staged
            .iter()
            .map(|s| (s.day.as_str(), s.part, s.rows))
            .collect();
        assert_eq!(
            parts,
            [
                ("2024-10-04", 0, 2),
                ("2024-10-04", 1, 1),
                ("2024-10-05", 0, 3),
                ("2024-10-06", 0, 1),
            ]
        );
        // Every file is a whole Parquet file with its rows.
        let values: Vec<Vec<i64>> = staged.iter().map(staged_values).collect();
        assert_eq!(values, [vec![0, 1], vec![0], vec![0, 0, 1], vec![0]]);
    }

    #[test]
    fn descriptors_stay_bounded_whatever_the_days() {
        let dir = tempfile::tempdir().unwrap();
        let mut writers = writers(dir.path(), super::super::OPEN_DAYS);
        let before = open_fds();
        let mut most = before;
        // Three years and more, one record per day, in batches of a few days.
        let days: Vec<Option<i64>> = (0..1_100).map(|d| Some(19_000 * DAY + d * DAY)).collect();
        for chunk in days.chunks(7) {
            writers.write(&batch(chunk.to_vec())).unwrap();
            most = most.max(open_fds());
        }
        assert!(
            most <= before + super::super::OPEN_DAYS,
            "{most} descriptors open, {before} before"
        );
        let staged = writers.finish().unwrap();
        assert_eq!(staged.len(), 1_100);
        assert!(staged.iter().all(|s| s.rows == 1 && s.part == 0));
        assert_eq!(open_fds(), before);
    }

    #[test]
    fn one_day_batches_are_not_copied() {
        let start = 19_999 * DAY;
        let split = split_by_day(&batch(vec![Some(start), Some(start + DAY - 1)])).unwrap();
        assert_eq!(split.len(), 1);
        assert_eq!(split[0].0, "2024-10-03");
        assert!(split[0].1.is_none());
    }

    #[test]
    fn rows_split_at_midnight_utc_and_nulls_go_to_the_default_partition() {
        let midnight = 20_032 * DAY; // 2024-11-05T00:00:00Z
        let split = split_by_day(&batch(vec![
            Some(midnight - 1),
            None,
            Some(midnight),
            Some(midnight - 2),
        ]))
        .unwrap();
        let names: Vec<_> = split.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(names, [NULL_PARTITION, "2024-11-04", "2024-11-05"]);
        let rows: Vec<Vec<u32>> = split
            .iter()
            .map(|(_, r)| r.as_ref().unwrap().values().to_vec())
            .collect();
        assert_eq!(rows, [vec![1], vec![0, 3], vec![2]]);
    }
}
