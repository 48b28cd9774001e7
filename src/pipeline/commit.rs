//! The chunk transaction: the only place where rows reach the target table.

use sqlx::PgPool;

use crate::decode::Reject;
use crate::jobs::{self, ChunkCounts, Lease};

use super::file::FileError;

/// A chunk ready to commit.
pub struct EncodedChunk {
    /// Binary COPY payload (header to trailer), or empty when no row survived.
    pub copy_data: Vec<u8>,
    pub rejects: Vec<Reject>,
    pub counts: ChunkCounts,
    pub next_checkpoint: u64,
}

/// Commits one chunk: checkpoint (guarded by the lease, taken first so a competing claim
/// waits for us), COPY, rejected records; all or nothing.
pub async fn commit(
    pool: &PgPool,
    lease: &Lease,
    copy_sql: &str,
    chunk: EncodedChunk,
) -> Result<(), FileError> {
    let mut tx = pool.begin().await?;
    if !jobs::checkpoint(&mut tx, lease, chunk.next_checkpoint, chunk.counts).await? {
        tx.rollback().await?;
        return Err(FileError::LeaseLost);
    }
    if chunk.counts.ingested > 0 {
        let mut copy = tx.copy_in_raw(copy_sql).await?;
        copy.send(chunk.copy_data).await?;
        copy.finish().await?;
    }
    if !chunk.rejects.is_empty() {
        jobs::insert_rejects(&mut tx, lease, &chunk.rejects).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Marks the file COMPLETED.
pub async fn complete(pool: &PgPool, lease: &Lease) -> Result<(), FileError> {
    let mut conn = pool.acquire().await?;
    if jobs::complete(&mut conn, lease).await? {
        Ok(())
    } else {
        Err(FileError::LeaseLost)
    }
}
