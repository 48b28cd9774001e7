//! Files completed together: a group of small files ingested in one transaction is
//! completed by one statement, each file still guarded by its own lease token.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{ChunkCounts, Lease};
use crate::source::ObjectVersion;

/// One file of a group: its lease, where its records end, its counts and the version read.
#[derive(Debug, Clone)]
pub struct GroupEntry<'a> {
    pub lease: &'a Lease,
    pub next_checkpoint: u64,
    pub counts: ChunkCounts,
    pub version: Option<&'a ObjectVersion>,
}

/// Completes every file of `entries` (all of bucket `bucket`) in `conn`'s transaction (see
/// `sql/jobs/complete_group.sql`). False when a lease was lost: the transaction must roll
/// back, and no file of the group counts as done.
pub async fn complete_group(
    conn: &mut PgConnection,
    bucket: &str,
    entries: &[GroupEntry<'_>],
    destinations: &[String],
) -> sqlx::Result<bool> {
    let keys: Vec<&str> = entries.iter().map(|e| e.lease.key.as_str()).collect();
    let tokens: Vec<uuid::Uuid> = entries.iter().map(|e| e.lease.token).collect();
    let count = |f: fn(&ChunkCounts) -> u64| -> Vec<i64> {
        entries.iter().map(|e| f(&e.counts) as i64).collect()
    };
    let checkpoints: Vec<i64> = entries.iter().map(|e| e.next_checkpoint as i64).collect();
    let versions: Vec<Option<String>> = entries
        .iter()
        .map(|e| e.version.map(ObjectVersion::id))
        .collect();
    let etags: Vec<Option<&str>> = entries
        .iter()
        .map(|e| e.version.and_then(|v| v.etag.as_deref()))
        .collect();
    let sizes: Vec<Option<i64>> = entries
        .iter()
        .map(|e| e.version.map(|v| v.size as i64))
        .collect();
    let modified: Vec<Option<DateTime<Utc>>> = entries
        .iter()
        .map(|e| e.version.and_then(|v| v.last_modified))
        .collect();
    let done: Vec<String> = sqlx::query_scalar(include_str!("../../sql/jobs/complete_group.sql"))
        .bind(bucket)
        .bind(destinations)
        .bind(&keys)
        .bind(&tokens)
        .bind(&checkpoints)
        .bind(count(|c| c.ingested))
        .bind(count(|c| c.rejected))
        .bind(count(|c| c.filtered))
        .bind(&versions)
        .bind(&etags)
        .bind(&sizes)
        .bind(&modified)
        .fetch_all(conn)
        .await?;
    Ok(done.len() == entries.len())
}
