//! The lake side of one file, whichever lake the run writes to: a Parquet lake
//! ([`parquet`](super::parquet)) or a Delta table ([`delta`](super::delta)). Both are fed
//! the transform's output while the file is read, and are published in the transaction
//! that marks the file COMPLETED.

use sqlx::PgConnection;

use super::delta::{DeltaError, DeltaJob, DeltaJobError};
use super::parquet::{AfterCommit, LakeJob, PublishError};
use crate::jobs::Lease;

/// One file's lake output being written.
pub enum LakeWrite {
    Parquet(LakeJob),
    Delta(DeltaJob),
}

/// What is left to do after the completing transaction committed.
pub enum LakeDone {
    Parquet(AfterCommit),
    Delta,
}

/// Why a file's lake output could not be published.
#[derive(Debug, thiserror::Error)]
pub enum LakeWriteError {
    #[error(transparent)]
    Parquet(#[from] PublishError),
    #[error(transparent)]
    Delta(#[from] DeltaError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("lease lost: another worker took the file over")]
    LeaseLost,
}

impl From<DeltaJobError> for LakeWriteError {
    fn from(error: DeltaJobError) -> Self {
        match error {
            DeltaJobError::Delta(e) => LakeWriteError::Delta(e),
            DeltaJobError::Database(e) => LakeWriteError::Database(e),
            DeltaJobError::LeaseLost => LakeWriteError::LeaseLost,
        }
    }
}

impl LakeWrite {
    /// Publishes the output in `conn`, the transaction that then marks the file COMPLETED.
    pub async fn publish(
        self,
        conn: &mut PgConnection,
        lease: &Lease,
    ) -> Result<LakeDone, LakeWriteError> {
        match self {
            LakeWrite::Parquet(job) => Ok(LakeDone::Parquet(job.publish(conn, lease).await?)),
            LakeWrite::Delta(job) => {
                job.publish(conn, lease).await?;
                Ok(LakeDone::Delta)
            }
        }
    }

    /// The writer's own error, after the pipeline stopped early (None if it had none).
    pub async fn error(self) -> Option<LakeWriteError> {
        match self {
            LakeWrite::Parquet(job) => job
                .error()
                .await
                .map(|e| LakeWriteError::Parquet(PublishError::Lake(e))),
            LakeWrite::Delta(job) => job.error().await.map(LakeWriteError::Delta),
        }
    }
}

impl LakeDone {
    /// Counts the published files and removes stale ones (Parquet); logs failures.
    pub async fn finish(self) {
        match self {
            LakeDone::Parquet(after) => after.finish().await,
            LakeDone::Delta => {}
        }
    }
}
