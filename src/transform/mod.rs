//! The SQL stage: DataFusion runs the transform (`sql/transform.sql` or the user's own) over
//! the `raw_logs` table, chunk by chunk. Every DataFusion type of the crate stays in this
//! module, so a DataFusion upgrade touches one place.
//!
//! The query is planned once per file; each chunk of RAW batches is then pushed through
//! the same physical plan by a [`ChunkPartition`] whose `execute` hands out the batches of
//! the current chunk. One execution per chunk keeps the mapping from output rows to the
//! chunk (and so to the file's checkpoint) exact, even when the transform filters records
//! out or the plan coalesces batches.

mod record_id;

#[cfg(test)]
mod golden;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::ScalarUDF;
use datafusion::physical_plan::execution_plan::reset_plan_states;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, execute_stream};
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::TryStreamExt;

pub use record_id::{object_hash, record_id};

use crate::decode::raw_schema;

/// The built-in transform (the contract's mapping onto `logs`).
pub const BUILTIN_SQL: &str = include_str!("../../sql/transform.sql");

/// The name SQL sees the records under.
pub const RAW_TABLE: &str = "raw_logs";

/// A transform's SQL text and where it came from.
#[derive(Debug, Clone)]
pub struct TransformSql {
    pub origin: String,
    pub text: String,
}

impl TransformSql {
    pub fn builtin() -> Self {
        Self {
            origin: "built-in sql/transform.sql".into(),
            text: BUILTIN_SQL.into(),
        }
    }

    pub fn from_file(path: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot read transform {}: {e}", path.display()),
            )
        })?;
        Ok(Self {
            origin: path.display().to_string(),
            text,
        })
    }
}

/// Errors of the SQL stage.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The SQL does not plan against `raw_logs`: a configuration error.
    #[error("transform {origin}: {source}")]
    Plan {
        origin: String,
        #[source]
        source: DataFusionError,
    },
    /// Executing the plan on a chunk failed.
    #[error("transform failed: {0}")]
    Execute(#[from] DataFusionError),
}

/// Hands out the batches of the current chunk to the plan.
#[derive(Debug)]
struct ChunkPartition {
    schema: SchemaRef,
    chunk: Arc<Mutex<VecDeque<RecordBatch>>>,
}

impl PartitionStream for ChunkPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let batches: Vec<RecordBatch> = self.chunk.lock().expect("chunk lock").drain(..).collect();
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        ))
    }
}

/// A planned transform, ready to run chunk after chunk.
pub struct Transform {
    ctx: SessionContext,
    plan: Arc<dyn ExecutionPlan>,
    chunk: Arc<Mutex<VecDeque<RecordBatch>>>,
}

impl Transform {
    /// Plans `sql` over `raw_logs`. Fails with [`TransformError::Plan`] when the SQL does not
    /// parse, names an unknown column or function, or is not a single query.
    pub async fn plan(sql: &TransformSql, batch_rows: usize) -> Result<Self, TransformError> {
        let plan_error = |source| TransformError::Plan {
            origin: sql.origin.clone(),
            source,
        };
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(batch_rows);
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udf(ScalarUDF::from(record_id::RecordIdUdf::new()));
        let chunk = Arc::new(Mutex::new(VecDeque::new()));
        let partition = ChunkPartition {
            schema: raw_schema(),
            chunk: Arc::clone(&chunk),
        };
        let table =
            StreamingTable::try_new(raw_schema(), vec![Arc::new(partition)]).map_err(plan_error)?;
        ctx.register_table(RAW_TABLE, Arc::new(table))
            .map_err(plan_error)?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let frame = ctx
            .sql_with_options(&sql.text, options)
            .await
            .map_err(plan_error)?;
        let plan = frame.create_physical_plan().await.map_err(plan_error)?;
        Ok(Self { ctx, plan, chunk })
    }

    /// The columns the transform produces.
    pub fn output_schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    /// Runs the transform over one chunk of RAW batches.
    pub async fn run(
        &mut self,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>, TransformError> {
        self.chunk.lock().expect("chunk lock").extend(batches);
        // Every execution adds its metrics to the plan's nodes, and a file runs the plan once
        // per batch: run a copy with fresh state, so that nothing accumulates as a file goes on.
        self.plan = reset_plan_states(Arc::clone(&self.plan))?;
        let stream = execute_stream(Arc::clone(&self.plan), self.ctx.task_ctx())?;
        let out: Vec<RecordBatch> = stream.try_collect().await?;
        Ok(out.into_iter().filter(|b| b.num_rows() > 0).collect())
    }

    /// The physical plan, as `EXPLAIN` would show it.
    pub fn explain(&self) -> String {
        datafusion::physical_plan::displayable(self.plan.as_ref())
            .indent(true)
            .to_string()
    }
}

/// Renders batches as a text table (for `preview`).
pub fn pretty(batches: &[RecordBatch]) -> Result<String, arrow::error::ArrowError> {
    Ok(arrow::util::pretty::pretty_format_batches(batches)?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::raw::tests::framed;

    /// Metrics entries held by `plan` and its children.
    fn metrics_held(plan: &Arc<dyn ExecutionPlan>) -> usize {
        let own = plan.metrics().map_or(0, |metrics| metrics.iter().count());
        own + plan.children().into_iter().map(metrics_held).sum::<usize>()
    }

    /// Issue 14 item 1 at the transform: no timestamp goes through nanoseconds, `time` is
    /// epoch milliseconds at any size, and a value beyond a microsecond count is NULL, not an
    /// error that fails the chunk.
    #[tokio::test]
    async fn the_builtin_timestamps_are_microseconds_and_never_fail() {
        use arrow::array::AsArray;
        use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
        let json = r#"[{"time":1730800800123456},{"time":-9223372036854775808},
            {"time":9223372036854776},{"timestamp":"2300-01-01T00:00:00Z","time":1}]"#;
        let (frames, mut batcher) = framed(json);
        let batch = batcher
            .convert(&frames, 0, &mut Vec::new())
            .unwrap()
            .unwrap();
        let mut transform = Transform::plan(&TransformSql::builtin(), 64).await.unwrap();
        let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
        let schema = transform.output_schema();
        for column in ["timestamp", "last_updated"] {
            assert_eq!(schema.field_with_name(column).unwrap().data_type(), &micros);
        }
        let out = transform.run(vec![batch]).await.unwrap();
        let ts = out[0]
            .column_by_name("timestamp")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            ts.iter().collect::<Vec<_>>(),
            [
                Some(1_730_800_800_123_456_000),
                None,
                None,
                Some(10_413_792_000_000_000)
            ]
        );
    }

    #[tokio::test]
    async fn running_batch_after_batch_holds_nothing_per_batch() {
        let json = r#"[{"level":30,"time":1730764800000,"msg":"m","req":{"id":"1","method":"GET","url":"/x","headers":{"h":"v"}}}]"#;
        let (frames, mut batcher) = framed(json);
        let batch = batcher
            .convert(&frames, 0, &mut Vec::new())
            .unwrap()
            .unwrap();
        let mut transform = Transform::plan(&TransformSql::builtin(), 64).await.unwrap();
        transform.run(vec![batch.clone()]).await.unwrap();
        let after_one = metrics_held(&transform.plan);
        for _ in 0..50 {
            let out = transform.run(vec![batch.clone()]).await.unwrap();
            assert_eq!(out.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        }
        assert_eq!(metrics_held(&transform.plan), after_one);
    }
}
