//! Small objects, few commits: the objects of a group (see `pipeline::group`) share one
//! Delta commit, which carries one `txn` per object. Only first runs whose key the table
//! does not hold yet join it; the others (a replacing run, a retry whose earlier attempt
//! may have committed) are handed to the one-file path, which knows how to find a commit
//! or replace rows.

use arrow::record_batch::RecordBatch;
use deltalake_core::DeltaTableError;
use deltalake_core::kernel::Transaction;
use deltalake_core::kernel::transaction::CommitProperties;
use deltalake_core::operations::write::WriteBuilder;
use sqlx::PgPool;

use super::job::{app_id, committed};
use super::stream::batches_plan;
use super::table::{DATE_COLUMN, DeltaError, DeltaSink};
use crate::jobs::Lease;

/// Prepares the run of each of `leases` (recorded pending, as for one file) and says which
/// may share the group's commit: a first run whose key the table does not hold.
pub async fn prepare(
    sink: &DeltaSink,
    pool: &PgPool,
    leases: &[&Lease],
) -> Result<Vec<bool>, DeltaError> {
    let table = sink.latest().await?;
    let mut out = Vec::with_capacity(leases.len());
    for lease in leases {
        let version = match lease.delta_prepare(pool, sink.display()).await {
            Ok(Some(version)) => version,
            // A lost lease or a database fault: the one-file path finds out.
            Ok(None) | Err(_) => {
                out.push(false);
                continue;
            }
        };
        let app = app_id(&lease.bucket, &lease.key);
        out.push(version == 1 && !committed(sink, &table, &app, 1).await?);
    }
    Ok(out)
}

/// Appends `batches` (the transform's output of the objects of `leases`, all prepared at
/// version 1) in one commit carrying each object's key; returns the table version.
pub async fn commit(
    sink: &DeltaSink,
    leases: &[&Lease],
    batches: Vec<RecordBatch>,
) -> Result<i64, DeltaError> {
    let err = |source| DeltaError::Table {
        table: sink.display().to_string(),
        source,
    };
    let table = sink.latest().await?;
    let plan =
        batches_plan(sink.schema.clone(), batches).map_err(|e| err(DeltaTableError::from(e)))?;
    let txns = leases
        .iter()
        .map(|lease| Transaction::new(app_id(&lease.bucket, &lease.key), 1))
        .collect();
    let snapshot = table.snapshot().map_err(err)?.snapshot().clone();
    let target = std::num::NonZeroU64::new(sink.options.row_group_bytes as u64);
    let written = WriteBuilder::new(table.log_store(), Some(snapshot))
        .with_input_plan(plan)
        .with_partition_columns([DATE_COLUMN])
        .with_writer_properties(sink.properties())
        .with_target_file_size(target)
        .with_commit_properties(CommitProperties::default().with_application_transactions(txns))
        .await
        .map_err(err)?;
    Ok(written.version().unwrap_or_default() as i64)
}
