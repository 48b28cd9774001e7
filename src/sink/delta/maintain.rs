//! Upkeep of a Delta table while ingestion goes on: compaction of small files per
//! partition (`lake optimize`) and removal of files no version needs any more (`lake
//! vacuum`). Both are Delta commits like any other: a concurrent append never conflicts
//! with them, and a vacuum only removes files older than its retention period, which
//! files being written now (not yet committed) never are.

use std::num::NonZeroU64;
use std::time::Duration;

use deltalake_core::operations::vacuum::VacuumMode;

use super::table::{DeltaError, open_table};

/// What `lake optimize` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Optimized {
    pub table_version: i64,
    pub files_added: u64,
    pub files_removed: u64,
    pub partitions_optimized: u64,
}

/// What `lake vacuum` did (or would do, on a dry run).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Vacuumed {
    pub dry_run: bool,
    pub files_deleted: usize,
}

/// Rewrites the small files of each partition of the table at `url` into files of about
/// `target_bytes`; rows and their partitions do not change.
pub async fn optimize(
    url: &str,
    target_bytes: u64,
    s3_timeout_secs: Option<u64>,
) -> Result<Optimized, DeltaError> {
    let err = |source| DeltaError::Table {
        table: url.to_string(),
        source,
    };
    let mut table = open_table(url, s3_timeout_secs)?;
    table.load().await.map_err(err)?;
    let target = NonZeroU64::new(target_bytes.max(1)).expect("at least 1");
    let (table, metrics) = table
        .optimize()
        .with_target_size(target)
        .await
        .map_err(err)?;
    Ok(Optimized {
        table_version: table.version().unwrap_or_default() as i64,
        files_added: metrics.num_files_added,
        files_removed: metrics.num_files_removed,
        partitions_optimized: metrics.partitions_optimized,
    })
}

/// Deletes the files of the table at `url` that no version within `retention` needs, and
/// files no version ever committed (left by writers that died) older than `retention`.
pub async fn vacuum(
    url: &str,
    retention: Duration,
    dry_run: bool,
    s3_timeout_secs: Option<u64>,
) -> Result<Vacuumed, DeltaError> {
    let err = |source| DeltaError::Table {
        table: url.to_string(),
        source,
    };
    let mut table = open_table(url, s3_timeout_secs)?;
    table.load().await.map_err(err)?;
    let retention = chrono::Duration::from_std(retention)
        .map_err(|e| DeltaError::Config(format!("retention: {e}")))?;
    let (_, metrics) = table
        .vacuum()
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .with_mode(VacuumMode::Full)
        .with_dry_run(dry_run)
        .await
        .map_err(err)?;
    Ok(Vacuumed {
        dry_run: metrics.dry_run,
        files_deleted: metrics.files_deleted.len(),
    })
}
