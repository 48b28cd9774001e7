//! Where bytes come from: local files and object stores (S3 or a local folder), opened as
//! one streaming reader, with compression detected from the content; Parquet files are
//! read back as the JSON records they hold. Local folders are walked by [`walk`]; buckets are
//! listed by [`listing`]. Bucket notifications (S3 events in an SQS queue) are received by
//! [`notifications`]; requests to AWS are signed by [`signed`].

mod counting;
mod input;
pub mod listing;
pub mod local;
mod location;
pub mod notifications;
mod parquet;
pub mod resume;
pub mod signed;
pub mod store;
mod version;
pub mod walk;

pub use counting::{ByteCounter, CountingReader};
pub use input::{BoxRead, READ_BUFFER_BYTES, decompress, decompress_whole};
pub use location::{SourceRef, is_parquet, open, read_whole, version};
pub use parquet::{RAW_COLUMNS, read_parquet};
pub use version::ObjectVersion;
