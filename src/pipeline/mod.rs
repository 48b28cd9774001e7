//! One file's journey: claim -> read -> decompress -> frame and decode (blocking thread)
//! -> transform and encode -> chunk transactions (COPY + checkpoint) -> COMPLETED.
//!
//! Delivery policy, enforced in [`commit`]: a chunk's rows, its rejected records and the
//! file's checkpoint commit in one transaction guarded by the lease token. After a crash,
//! the next claim resumes at the checkpoint by skipping that many records, so every record
//! lands exactly once without `ON CONFLICT` or a dedup table. A file counts as done only
//! when the transaction that marks it COMPLETED has committed.
//!
//! With a Parquet sink ([`crate::sink::parquet`]) the transform's output also feeds a writer stage,
//! and a file is one chunk: its Parquet files are published, and recorded in the job, in the
//! transaction that marks it COMPLETED (`sink::parquet::LakeJob`).
//!
//! Stages are joined by bounded channels, so memory is bounded by the batch size and the
//! number of files in flight, never by the size of a file.

mod commit;
mod decode_stage;
mod error;
mod file;
mod group;
mod preview;
mod read_stage;
mod reject_spool;
mod report;
mod settings;
mod summary;
mod task;
mod transform_stage;

pub use crate::cancel::Cancel;
pub use error::{FatalError, FileError};
pub use file::{FileOptions, Resume, ingest_file, ingest_file_with, process_claimed};
pub use group::{GROUP_BYTES, GroupDone, Member, ReadAhead, ingest_group, read_ahead};
pub use preview::{Preview, preview};
pub use report::{FileReport, Outcome};
pub use settings::Settings;
pub use summary::Summary;
pub use task::{FileTask, Ingest};
