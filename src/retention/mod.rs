//! `ingestor retention`: whole days of a table partitioned by day, before a cut, archived
//! to a lake (optional) and dropped, without stopping ingestion (docs/partitions.md).
//!
//! Which days (`cut.rs`, `plan.rs`), a day's rows read as Arrow (`read.rs`) and written to
//! the lake exactly once (`archive.rs`), the steps of each day (`run.rs`). The partitions
//! themselves are detached and dropped by `sink::postgres::partitions`, which owns every
//! write to the table; which files are still being written is asked of `jobs`.

mod archive;
mod cut;
mod plan;
mod read;
mod run;

pub use archive::{Archive, ArchiveError, Archived};
pub use cut::{Cut, parse_duration};
pub use plan::{Planned, State};
pub use read::Columns;
pub use run::{DayReport, Outcome, Retention, RetentionError};
