//! Why a file did not complete, and which errors end the whole pass.

use crate::jobs::Lease;
use crate::sink::parquet::{LakeError, PublishError};
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
}

/// Why a file did not complete.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The input cannot be read to its end (the message names the byte offset): the bytes
    /// of this version are bad.
    #[error("{0}")]
    Input(String),
    /// The input could not be read further because of a network or storage fault: a later
    /// attempt may read it.
    #[error("{0}")]
    Read(String),
    #[error(transparent)]
    Transform(#[from] TransformError),
    #[error("cannot encode rows for COPY: {0}")]
    Encode(#[from] arrow::error::ArrowError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Lake(#[from] LakeError),
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
            FileError::Input(_)
            | FileError::Transform(_)
            | FileError::Encode(_)
            | FileError::RowRefused(_) => true,
            FileError::Read(_)
            | FileError::Database(_)
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

impl From<PublishError> for FileError {
    fn from(error: PublishError) -> Self {
        match error {
            PublishError::Lake(e) => FileError::Lake(e),
            PublishError::Database(e) => FileError::Database(e),
            PublishError::LeaseLost => FileError::LeaseLost,
        }
    }
}
