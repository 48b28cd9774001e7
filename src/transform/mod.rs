//! The SQL stage: DataFusion runs the transform (`sql/transform.sql` or the user's own) over
//! the `raw_logs` table, chunk by chunk. Every DataFusion type of the crate stays in this
//! module, so a DataFusion upgrade touches one place.
//!
//! The query is planned once per file, and its physical plan decides how it runs
//! ([`PlanKind`]):
//! - a **row-wise** plan (projection, filter, scalar functions, `CASE`) runs once per batch:
//!   the [`FeedPartition`] hands out the batches of the current piece to each execution, so
//!   every output row maps to its piece (and so to the file's checkpoint) exactly, even when
//!   the transform filters records out or the plan coalesces batches;
//! - **every other plan** (aggregates, sorts, limits, `DISTINCT`, windows, joins) runs once
//!   per file ([`Transform::start_file`]): the file's batches stream into one execution, so
//!   the SQL means what it says over the whole file, never one result per batch.

mod record_id;

#[cfg(test)]
mod golden;

use std::collections::VecDeque;
use std::fmt;
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
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;

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

/// What the plan reads as `raw_logs`.
#[derive(Debug, Default)]
struct Feed {
    /// The batches of the current piece (row-wise plans: one execution per piece).
    piece: VecDeque<RecordBatch>,
    /// The file's batches as they are decoded (whole-file plans: one execution per file).
    file: Option<mpsc::Receiver<RecordBatch>>,
}

/// Hands the plan its input: the file's stream when one was started, else the batches of
/// the current piece.
#[derive(Debug)]
struct FeedPartition {
    schema: SchemaRef,
    feed: Arc<Mutex<Feed>>,
}

impl PartitionStream for FeedPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut feed = self.feed.lock().expect("feed lock");
        let schema = Arc::clone(&self.schema);
        if let Some(file) = feed.file.take() {
            let stream = futures::stream::unfold(file, |mut file| async move {
                let batch = file.recv().await?;
                Some((Ok(batch), file))
            });
            return Box::pin(RecordBatchStreamAdapter::new(schema, stream));
        }
        let batches: Vec<RecordBatch> = feed.piece.drain(..).collect();
        let stream = futures::stream::iter(batches.into_iter().map(Ok));
        Box::pin(RecordBatchStreamAdapter::new(schema, stream))
    }
}

/// How a transform runs over a file, decided from its physical plan (never from the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanKind {
    /// Each output row comes from one input row (projection, filter, scalar functions,
    /// `CASE`, `unnest`): the plan runs batch by batch and its rows stream into chunk
    /// transactions with checkpoints.
    RowWise,
    /// The plan needs all of a file's records at once: it runs once per file, and its
    /// output commits with the file's completion.
    WholeFile {
        /// The first step of the plan that is not row by row (`AggregateExec`, ...).
        step: String,
    },
}

impl PlanKind {
    pub fn is_whole_file(&self) -> bool {
        matches!(self, Self::WholeFile { .. })
    }
}

impl fmt::Display for PlanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RowWise => {
                f.write_str("row-wise: runs batch by batch, rows stream with checkpoints")
            }
            Self::WholeFile { step } => write!(
                f,
                "whole-file: {} ({step}), so it runs once over all of a file's records and its \
                 output commits with the file's completion",
                what_it_does(step)
            ),
        }
    }
}

/// The steps of a physical plan that map each input row to at most a few output rows on
/// their own, whatever the batch they come in.
const ROW_WISE_STEPS: &[&str] = &[
    "ProjectionExec",
    "FilterExec",
    "CoalesceBatchesExec",
    "CooperativeExec",
    "StreamingTableExec",
    "UnnestExec",
];

/// The steps of a plan that give exactly one output row for each input row, in order: a
/// plan made of these alone (no filter, no unnest) can run over several files' records at
/// once and still say how many rows each file gave.
const ONE_ROW_EACH_STEPS: &[&str] = &[
    "ProjectionExec",
    "CoalesceBatchesExec",
    "CooperativeExec",
    "StreamingTableExec",
];

/// Whether each step of `plan` gives one row for each row it reads (see
/// [`ONE_ROW_EACH_STEPS`]). A scan with a row limit pushed into it does not.
fn one_row_each(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let name = plan.name();
    let step = name.split('(').next().unwrap_or(name);
    let limited = plan.fetch().is_some();
    ONE_ROW_EACH_STEPS.contains(&step) && !limited && plan.children().into_iter().all(one_row_each)
}

/// The plan's step that reads `raw_logs`.
const SCAN_STEP: &str = "StreamingTableExec";

/// What a plan step does, in the words of SQL.
fn what_it_does(step: &str) -> &'static str {
    // `SortExec(TopK)`: the step, then its variant.
    let step = step.split('(').next().unwrap_or(step);
    match step {
        "AggregateExec" => "it aggregates (GROUP BY, DISTINCT or an aggregate function)",
        "SortExec" | "SortPreservingMergeExec" | "PartialSortExec" => "it sorts (ORDER BY)",
        "GlobalLimitExec" | "LocalLimitExec" => "it limits (LIMIT / OFFSET)",
        "WindowAggExec" | "BoundedWindowAggExec" => "it uses a window function",
        "HashJoinExec"
        | "NestedLoopJoinExec"
        | "CrossJoinExec"
        | "SortMergeJoinExec"
        | "SymmetricHashJoinExec" => "it joins",
        "UnionExec" | "InterleaveExec" => "it unions",
        _ => "it has a step that is not row by row",
    }
}

/// Decides how a plan runs. Refuses a plan that does not read `raw_logs` exactly once: a
/// file is read once, so a second read of it (a self-join, a UNION of two reads) would see
/// nothing, and a plan that reads nothing gives the same rows for every file.
fn classify(plan: &Arc<dyn ExecutionPlan>) -> Result<PlanKind, String> {
    fn walk(plan: &Arc<dyn ExecutionPlan>, scans: &mut usize, other: &mut Option<String>) {
        let name = plan.name();
        let step = name.split('(').next().unwrap_or(name);
        if step == SCAN_STEP {
            *scans += 1;
        }
        if other.is_none() && !ROW_WISE_STEPS.contains(&step) {
            *other = Some(name.to_string());
        }
        for child in plan.children() {
            walk(child, scans, other);
        }
    }
    let (mut scans, mut other) = (0, None);
    walk(plan, &mut scans, &mut other);
    match scans {
        0 => Err(format!(
            "the query does not read {RAW_TABLE}: its output would not depend on the file"
        )),
        1 => Ok(match other {
            None => PlanKind::RowWise,
            Some(step) => PlanKind::WholeFile { step },
        }),
        n => Err(format!(
            "the query reads {RAW_TABLE} {n} times (a self-join, or a UNION of two reads of \
             it); a file is read once, so a transform may read {RAW_TABLE} only once (use a \
             window function or a GROUP BY in a subquery instead)"
        )),
    }
}

/// Planned transforms of one SQL text, kept for the next file: planning (a DataFusion
/// session, the SQL parsed and optimised, the JSON functions registered) costs more than a
/// small file's rows take to transform. A transform comes back only from a file that ended
/// normally, its input cleared; at most `KEEP` wait.
pub struct PlanCache {
    sql: TransformSql,
    batch_rows: usize,
    idle: Mutex<Vec<Transform>>,
    /// Plans made by [`PlanCache::take`].
    made: std::sync::atomic::AtomicUsize,
}

impl PlanCache {
    /// Plans kept at most: one per file in flight is what a worker uses.
    const KEEP: usize = 64;

    pub fn new(sql: TransformSql, batch_rows: usize) -> Self {
        Self {
            sql,
            batch_rows,
            idle: Mutex::new(Vec::new()),
            made: Default::default(),
        }
    }

    /// A planned transform: a kept one, or a new plan.
    pub async fn take(&self) -> Result<Transform, TransformError> {
        let kept = self.idle.lock().expect("plan cache lock").pop();
        match kept {
            Some(transform) => Ok(transform),
            None => {
                self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Transform::plan(&self.sql, self.batch_rows).await
            }
        }
    }

    /// Keeps `transform` for another file.
    pub fn give_back(&self, transform: Transform) {
        {
            let mut feed = transform.feed.lock().expect("feed lock");
            feed.piece.clear();
            feed.file = None;
        }
        let mut idle = self.idle.lock().expect("plan cache lock");
        if idle.len() < Self::KEEP {
            idle.push(transform);
        }
    }

    /// Plans [`PlanCache::take`] had to make: one per file in flight at most, not one per
    /// file.
    pub fn made(&self) -> usize {
        self.made.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// A planned transform, ready to run piece after piece (row-wise) or over a file.
pub struct Transform {
    /// The session's state as executions see it, made once: making it clones the session's
    /// configuration and its registries of several hundred functions, which cost more than
    /// running the plan over a small file's records.
    task: Arc<TaskContext>,
    plan: Arc<dyn ExecutionPlan>,
    feed: Arc<Mutex<Feed>>,
    kind: PlanKind,
    /// Each input row gives exactly one output row (see [`one_row_each`]).
    one_row_each: bool,
}

/// The file's RAW batches go in here, in order; dropping it ends the plan's input.
pub type FileInput = mpsc::Sender<RecordBatch>;

/// The output of a plan's execution over a whole file.
pub type FileOutput = BoxStream<'static, Result<RecordBatch, TransformError>>;

impl Transform {
    /// Plans `sql` over `raw_logs`. Fails with [`TransformError::Plan`] when the SQL does not
    /// parse, names an unknown column or function, is not a single query, or does not read
    /// `raw_logs` exactly once.
    pub async fn plan(sql: &TransformSql, batch_rows: usize) -> Result<Self, TransformError> {
        let plan_error = |source| TransformError::Plan {
            origin: sql.origin.clone(),
            source,
        };
        let config = SessionConfig::new()
            .with_target_partitions(1)
            .with_batch_size(batch_rows);
        let mut ctx = SessionContext::new_with_config(config);
        ctx.register_udf(ScalarUDF::from(record_id::RecordIdUdf::new()));
        // json_get_str(_raw, 'a', 'b'), `->`, `->>`, ...: any key of the record, nested
        // ones included, without a change to the fixed RAW schema.
        datafusion_functions_json::register_all(&mut ctx).map_err(plan_error)?;
        let feed = Arc::new(Mutex::new(Feed::default()));
        let partition = FeedPartition {
            schema: raw_schema(),
            feed: Arc::clone(&feed),
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
        let kind = classify(&plan).map_err(|why| plan_error(DataFusionError::Plan(why)))?;
        Ok(Self {
            task: ctx.task_ctx(),
            one_row_each: one_row_each(&plan),
            plan,
            feed,
            kind,
        })
    }

    /// How the plan runs over a file.
    pub fn kind(&self) -> &PlanKind {
        &self.kind
    }

    /// Whether the plan gives exactly one row for each record it reads, in order (a
    /// projection: no filter, no unnest, nothing whole-file). Small files' records then go
    /// through it together, each file's row count known without running it per file.
    pub fn one_row_each(&self) -> bool {
        self.one_row_each
    }

    /// The columns the transform produces.
    pub fn output_schema(&self) -> SchemaRef {
        self.plan.schema()
    }

    /// Runs a row-wise transform over one piece of RAW batches.
    pub async fn run(
        &mut self,
        batches: Vec<RecordBatch>,
    ) -> Result<Vec<RecordBatch>, TransformError> {
        debug_assert!(
            !self.kind.is_whole_file(),
            "a whole-file plan runs per file"
        );
        self.feed.lock().expect("feed lock").piece.extend(batches);
        // Every execution adds its metrics to the plan's nodes, and a file runs the plan once
        // per batch: run a copy with fresh state, so that nothing accumulates as a file goes on.
        self.plan = reset_plan_states(Arc::clone(&self.plan))?;
        let stream = execute_stream(Arc::clone(&self.plan), Arc::clone(&self.task))?;
        let out: Vec<RecordBatch> = stream.try_collect().await?;
        Ok(out.into_iter().filter(|b| b.num_rows() > 0).collect())
    }

    /// Starts the one execution of the plan over a file: its RAW batches go into the
    /// returned input, in order, and the plan's rows come out of the output, which ends
    /// once the input is dropped and the plan has finished. Memory is what the plan itself
    /// holds (a sort holds its input, an aggregate its groups) plus a batch in flight.
    pub fn start_file(&mut self) -> Result<(FileInput, FileOutput), TransformError> {
        let (input, receiver) = mpsc::channel(1);
        self.feed.lock().expect("feed lock").file = Some(receiver);
        self.plan = reset_plan_states(Arc::clone(&self.plan))?;
        let stream = execute_stream(Arc::clone(&self.plan), Arc::clone(&self.task))?;
        let output = stream
            .map_err(TransformError::Execute)
            .try_filter(|b| futures::future::ready(b.num_rows() > 0))
            .boxed();
        Ok((input, output))
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
    use crate::decode::test_util::framed;

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
    async fn only_a_projection_gives_one_row_for_each_record() {
        let plan = |sql: &str| {
            let sql = TransformSql {
                text: sql.to_string(),
                ..TransformSql::builtin()
            };
            async move { Transform::plan(&sql, 64).await.unwrap() }
        };
        assert!(
            Transform::plan(&TransformSql::builtin(), 64)
                .await
                .unwrap()
                .one_row_each()
        );
        assert!(
            plan("SELECT msg, upper(level) AS l FROM raw_logs")
                .await
                .one_row_each()
        );
        for sql in [
            "SELECT msg FROM raw_logs WHERE level = '30'",
            "SELECT unnest([1, 2]) AS n, msg FROM raw_logs",
            "SELECT msg FROM raw_logs LIMIT 3",
            "SELECT level, count(*) AS n FROM raw_logs GROUP BY level",
        ] {
            assert!(!plan(sql).await.one_row_each(), "{sql}");
        }
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
