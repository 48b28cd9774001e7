//! The Parquet side of one file: a writer stage fed with the transform's output, and the
//! publishing of its files inside the transaction that completes the job.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use sqlx::PgConnection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::events;
use crate::jobs::Lease;

use super::lake::{Lake, LakeError, stem};
use super::publish::Published;
use super::writer::{DayWriters, Staged, write_stage};

/// Why a file's Parquet output could not be published.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Another worker took the file over: nothing was published.
    #[error("lease lost: another worker took the file over")]
    LeaseLost,
}

/// Batches in flight between the transform and the Parquet writer.
const QUEUE_BATCHES: usize = 2;

/// The Parquet output of one file being written.
pub struct LakeJob {
    lake: Arc<Lake>,
    stem: String,
    writer: JoinHandle<Result<Vec<Staged>, LakeError>>,
}

/// What is left to do once the transaction that published the files has committed:
/// count them, and remove the files of an earlier run that this run did not write again.
pub struct AfterCommit {
    lake: Arc<Lake>,
    paths: Vec<String>,
    files: u64,
    bytes: u64,
}

impl LakeJob {
    /// Starts the writer for the object `bucket`/`key` (named `display` in errors); send
    /// the transform's output on the returned sender and drop it at the end of the file.
    /// Removes spool files a killed run left.
    pub fn start(
        lake: Arc<Lake>,
        bucket: &str,
        key: &str,
        display: &str,
    ) -> Result<(Self, mpsc::Sender<RecordBatch>), LakeError> {
        let stem = stem(bucket, key);
        lake.clean_spool(&stem)?;
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let writers = DayWriters::new(Arc::clone(&lake), stem.clone(), display);
        let writer = tokio::task::spawn_blocking(move || write_stage(rx, writers));
        Ok((Self { lake, stem, writer }, tx))
    }

    /// Waits for the writer, publishes its files and records them in the job, in the
    /// transaction `conn` that then marks the file COMPLETED. The job's row is locked
    /// (guarded by the lease) before any file is published.
    pub async fn publish(
        self,
        conn: &mut PgConnection,
        lease: &Lease,
    ) -> Result<AfterCommit, PublishError> {
        let Self { lake, stem, writer } = self;
        let staged = finished(&lake, writer).await?;
        let Some(before) = lease.lake_files(conn).await? else {
            return Err(PublishError::LeaseLost);
        };
        let published = lake.publish(&stem, staged).await?;
        let record = serde_json::json!({
            "lake": lake.display(),
            "files": published,
            "rows": published.iter().map(|p| p.rows).sum::<u64>(),
            "bytes": published.iter().map(|p| p.bytes).sum::<u64>(),
        });
        if !lease.record_lake(conn, &record).await? {
            return Err(PublishError::LeaseLost);
        }

        let kept: Vec<&str> = published
            .iter()
            .map(|p: &Published| p.path.as_str())
            .collect();
        let paths = before
            .into_iter()
            .filter(|path| !kept.contains(&path.as_str()))
            .collect();
        Ok(AfterCommit {
            lake,
            paths,
            files: published.len() as u64,
            bytes: published.iter().map(|p| p.bytes).sum(),
        })
    }

    /// The writer's own error, after the pipeline stopped early (None if it had none).
    pub async fn error(self) -> Option<LakeError> {
        finished(&self.lake, self.writer).await.err()
    }
}

/// The writer's result: its staged files, or why it failed.
async fn finished(
    lake: &Lake,
    writer: JoinHandle<Result<Vec<Staged>, LakeError>>,
) -> Result<Vec<Staged>, LakeError> {
    match writer.await {
        Ok(result) => result,
        Err(e) => Err(LakeError::Io {
            path: lake.display(),
            source: std::io::Error::other(e),
        }),
    }
}

impl AfterCommit {
    /// Counts the published files and removes the stale ones; a failure is logged (the
    /// job is already committed).
    pub async fn finish(self) {
        events::parquet_published(self.files, self.bytes);
        if self.paths.is_empty() {
            return;
        }
        if let Err(e) = self.lake.remove(&self.paths).await {
            tracing::warn!(error = %e, "cannot remove Parquet files the object no longer produces");
        }
    }
}
