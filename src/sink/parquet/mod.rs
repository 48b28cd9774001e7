//! The Parquet sink: the transform's output written to a data lake (a local folder or
//! `s3://bucket/prefix`), beside or instead of PostgreSQL.
//!
//! Layout: `ROOT/date=YYYY-MM-DD/<stem>.parquet`, Hive-partitioned by the UTC day of the
//! output's `timestamp` column (`date=__HIVE_DEFAULT_PARTITION__` for rows without one),
//! one file per source object and day (more parts, `<stem>-1.parquet`, ..., when a file
//! spans more days than writers may be open at once and returns to a day it left). The
//! stem is derived from the source object alone (its file name and a stable hash of bucket
//! and key), so a re-run writes the same names.
//!
//! Exactly once: a file's Parquet output is written to temporary files in a spool folder
//! (`writer`), which become visible only when the source object is done (`publish`:
//! an atomic rename, or one upload that completes a multipart upload), inside the
//! transaction that marks the job COMPLETED and records the published paths. A run killed
//! before that leaves nothing under a final name; its spool files are removed when the
//! object is claimed again.

mod job;
mod lake;
mod publish;
mod writer;

pub use job::{AfterCommit, LakeJob, PublishError};
pub use lake::{
    Lake, LakeError, LakeLocation, LakeOptions, NULL_PARTITION, OPEN_DAYS, PARTITION_COLUMN,
    check_day_source, location, relative_path, stem,
};
pub use publish::Published;
pub use writer::{DayWriters, Staged, write_stage};
