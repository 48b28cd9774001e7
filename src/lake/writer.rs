//! One source object's rows into spooled Parquet files, one per day. Runs on a blocking
//! thread (Parquet encoding and ZSTD are CPU work); memory is bounded by the row group
//! limits: when a new day starts, the row groups buffered for the other days are written
//! out.

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

use super::{Lake, LakeError, NULL_PARTITION, PARTITION_COLUMN};

/// A finished Parquet file in the spool, not yet visible in the lake. Its spool file is
/// removed when it is dropped unpublished.
#[derive(Debug)]
pub struct Staged {
    /// `YYYY-MM-DD`, or [`NULL_PARTITION`].
    pub day: String,
    pub temp: TempPath,
    pub rows: u64,
    pub bytes: u64,
}

struct Open {
    writer: ArrowWriter<File>,
    temp: TempPath,
    rows: u64,
}

/// The open Parquet writers of one source object, by day.
pub struct DayWriters {
    lake: std::sync::Arc<Lake>,
    stem: String,
    properties: WriterProperties,
    open: BTreeMap<String, Open>,
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
        if !self.open.contains_key(day) {
            // Logs move forward in time: the days already open rarely get more rows. Their
            // buffered row groups go to disk, so memory stays that of one row group however
            // many days a file spans.
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
            self.open.insert(
                day.to_string(),
                Open {
                    writer,
                    temp,
                    rows: 0,
                },
            );
        }
        Ok(self.open.get_mut(day).expect("inserted above"))
    }

    /// Closes every file (footers written, data on disk) and hands them over for
    /// publishing, in day order.
    pub fn finish(self) -> Result<Vec<Staged>, LakeError> {
        let mut staged = Vec::with_capacity(self.open.len());
        for (day, open) in self.open {
            let path = open.temp.display().to_string();
            let file = open
                .writer
                .into_inner()
                .map_err(|source| LakeError::Write {
                    path: path.clone(),
                    source,
                })?;
            file.sync_all()
                .map_err(|source| LakeError::Io { path, source })?;
            let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
            staged.push(Staged {
                day,
                temp: open.temp,
                rows: open.rows,
                bytes,
            });
        }
        Ok(staged)
    }
}

impl Open {
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
