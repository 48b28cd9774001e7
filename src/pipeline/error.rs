//! Why a file did not complete, and which errors end the whole pass.

use arrow::error::ArrowError;

use crate::decode::FrameError;
use crate::jobs::Lease;
use crate::sink::delta::DeltaError;
use crate::sink::lake::LakeWriteError;
use crate::sink::parquet::{LakeError, PublishError};
use crate::sink::postgres::partitions::PartitionError;
use crate::transform::TransformError;

/// A row of a chunk that the database refused.
#[derive(Debug, Clone)]
pub struct RefusedRow {
    /// The first source index of the chunk (its checkpoint before).
    pub chunk_start: u64,
    /// The row within the chunk's COPY, from 1.
    pub row: u64,
    /// The database's message.
    pub message: String,
    /// Its SQLSTATE (`23514` for a row no partition takes, as for a CHECK constraint).
    pub code: String,
}

/// Why a file's input cannot be read to its end, and where it stopped.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The bytes could not be read or decompressed past this point of the stream: bad
    /// bytes (a corrupt or truncated gzip, zstd, bzip2 or xz, a missing object) or a network
    /// or storage fault.
    #[error(
        "cannot read past byte {decompressed} of the decompressed stream ({compressed} bytes of the object read): {cause}"
    )]
    Read {
        /// Decompressed bytes framed before the fault.
        decompressed: u64,
        /// Bytes of the object (as stored) read before the fault.
        compressed: u64,
        cause: std::io::Error,
    },
    /// The bytes are not a JSON array or NDJSON to their end (the framer names the byte
    /// offset and the last record).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Records could not be decoded into Arrow.
    #[error("cannot decode records {first} to {last} into Arrow: {cause}")]
    Arrow {
        /// Source indices of the batch's first and last records.
        first: u64,
        last: u64,
        cause: ArrowError,
    },
    /// The decoder could not be built.
    #[error("internal: cannot build the decoder: {0}")]
    Decoder(ArrowError),
    /// A second fault while sending the records read before the first.
    #[error("{first}; {then}")]
    Then {
        first: Box<InputError>,
        then: Box<InputError>,
    },
}

impl InputError {
    /// True when the bytes of this version are bad, so that reading them again cannot help
    /// (corrupt or truncated data, an array that never closes, an object that no longer
    /// exists); false for a network or storage fault, after which a later attempt may read
    /// further.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Read { cause, .. } => is_permanent_read(cause),
            Self::Then { first, .. } => first.is_permanent(),
            Self::Frame(_) | Self::Arrow { .. } | Self::Decoder(_) => true,
        }
    }
}

/// Whether a read error is the data's (permanent) rather than the way to it's.
pub fn is_permanent_read(error: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    match error.kind() {
        // The decompressor's verdicts on the bytes, and a missing local file.
        ErrorKind::InvalidData | ErrorKind::UnexpectedEof | ErrorKind::NotFound => true,
        _ => error
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<object_store::Error>())
            .is_some_and(|e| matches!(e, object_store::Error::NotFound { .. })),
    }
}

/// Why a file did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The input cannot be read to its end: bad bytes of this version (permanent) or a
    /// network or storage fault (a later attempt may read it).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The object changed since part of it was committed (or the Parquet sink needs it
    /// whole), and its earlier rows cannot be found to delete them.
    #[error(
        "cannot start the object over (it changed since part of it was committed, or \
         the Parquet sink needs it whole): the table has no source_bucket/source_key \
         columns to find the rows committed before"
    )]
    CannotStartOver,
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error("cannot encode rows for COPY: {0}")]
    Encode(#[from] ArrowError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A day's partition could not be created (a lock held too long, a retention run
    /// dropping that day): transient.
    #[error(transparent)]
    Partition(#[from] PartitionError),
    #[error(transparent)]
    Lake(#[from] LakeError),
    /// Boxed: delta-rs' errors are large, and results of this type are everywhere.
    #[error(transparent)]
    Delta(Box<DeltaError>),
    #[error("lease lost: another worker took the file over")]
    LeaseLost,
    #[error("stopped by a signal")]
    Cancelled,
    /// The database refused a row of a chunk (a constraint, a trigger): the chunk is read
    /// again with the suspect record alone, which is then rejected.
    #[error("the database refused the row of record {} or a later one: {}", .0.chunk_start + .0.row - 1, .0.message)]
    RowRefused(RefusedRow),
    /// A stage of the pipeline failed or stopped early (a bug, never the data): the
    /// attempt fails, and nothing after the last committed chunk counts as read.
    #[error("internal: {0}")]
    Stage(String),
}

impl FileError {
    /// True when no retry of the same version can succeed: corrupt or truncated data, an
    /// object that no longer exists, a transform or encoding error, a row refused in a file
    /// that is one transaction. Network, storage and database faults are transient.
    pub fn is_permanent(&self) -> bool {
        match self {
            FileError::Input(e) => e.is_permanent(),
            FileError::CannotStartOver
            | FileError::Transform(_)
            | FileError::Encode(_)
            | FileError::RowRefused(_) => true,
            // A table that cannot take the object's rows as they are (a replacing run of a
            // transform without source columns) stays so on retry; I/O and commits do not.
            FileError::Delta(e) => matches!(**e, DeltaError::Config(_)),
            FileError::Database(_)
            | FileError::Partition(_)
            | FileError::Lake(_)
            | FileError::LeaseLost
            | FileError::Cancelled
            | FileError::Stage(_) => false,
        }
    }
}

/// Errors that end the whole pass (the database is gone), not just one file.
#[derive(Debug, thiserror::Error)]
#[error("{display}: {source}")]
pub struct FatalError {
    pub display: String,
    #[source]
    pub source: sqlx::Error,
    /// The claim held when the database failed, to give back once it answers again.
    pub lease: Option<Lease>,
}

impl From<DeltaError> for FileError {
    fn from(error: DeltaError) -> Self {
        FileError::Delta(Box::new(error))
    }
}

impl From<LakeWriteError> for FileError {
    fn from(error: LakeWriteError) -> Self {
        match error {
            LakeWriteError::Parquet(e) => e.into(),
            LakeWriteError::Delta(e) => FileError::from(e),
            LakeWriteError::Database(e) => FileError::Database(e),
            LakeWriteError::LeaseLost => FileError::LeaseLost,
        }
    }
}

impl From<PublishError> for FileError {
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::Lake(e) => FileError::Lake(e),
            PublishError::Database(e) => FileError::Database(e),
            PublishError::LeaseLost => FileError::LeaseLost,
        }
    }
}
