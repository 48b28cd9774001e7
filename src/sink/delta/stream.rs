//! The transform's output, as it arrives on a channel, as the input plan of a Delta
//! write: the table's writer pulls batches while the file is still being read, so memory
//! stays that of the writer's open files, not of the source object.
//!
//! The end of the channel is not the end of the input: the stream then waits for the
//! file's completion to say so (`Gate`). A file that fails or is cancelled half-way drops
//! the gate, the stream ends with an error and the table gets no commit.

use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::common::Column;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{LogicalPlan, cast, col};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use tokio::sync::mpsc::Receiver;
use tokio::sync::oneshot;

use super::table::DATE_COLUMN;
use crate::sink::parquet::PARTITION_COLUMN;

/// One partition whose batches come from a channel; it can be executed once.
struct ChannelPartition {
    schema: SchemaRef,
    input: Mutex<Option<(Receiver<RecordBatch>, oneshot::Receiver<()>)>>,
}

/// Opened when the whole file went through: the write may commit.
pub struct Gate(oneshot::Sender<()>);

impl Gate {
    pub fn open(self) {
        let _ = self.0.send(());
    }
}

impl std::fmt::Debug for ChannelPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelPartition")
    }
}

impl PartitionStream for ChannelPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let input = self.input.lock().expect("not poisoned").take();
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        builder.spawn(async move {
            let Some((mut input, gate)) = input else {
                return Err(DataFusionError::Execution(
                    "the transform's output can be written once".into(),
                ));
            };
            while let Some(batch) = input.recv().await {
                if tx.send(Ok(batch)).await.is_err() {
                    return Ok(());
                }
            }
            gate.await.map_err(|_| {
                DataFusionError::Execution(
                    "the file was not read to its end: nothing of it is committed".into(),
                )
            })
        });
        builder.build()
    }
}

/// The plan that writes what arrives on `input` (batches of `schema`), with the `date`
/// partition column added (the UTC day of `timestamp`), and the gate that lets it end.
pub fn input_plan(
    schema: SchemaRef,
    input: Receiver<RecordBatch>,
) -> Result<(LogicalPlan, Gate), DataFusionError> {
    let (open, gate) = oneshot::channel();
    let partition = ChannelPartition {
        schema: Arc::clone(&schema),
        input: Mutex::new(Some((input, gate))),
    };
    let table = StreamingTable::try_new(schema, vec![Arc::new(partition)])?;
    let ctx = SessionContext::new();
    let frame = ctx.read_table(Arc::new(table))?.with_column(
        DATE_COLUMN,
        cast(col(Column::from_name(PARTITION_COLUMN)), DataType::Date32),
    )?;
    Ok((frame.into_unoptimized_plan(), Gate(open)))
}

/// The plan that writes `batches` (of `schema`, held in memory: a group of small files),
/// with the `date` partition column added.
pub fn batches_plan(
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<LogicalPlan, DataFusionError> {
    let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
    let ctx = SessionContext::new();
    let frame = ctx.read_table(Arc::new(table))?.with_column(
        DATE_COLUMN,
        cast(col(Column::from_name(PARTITION_COLUMN)), DataType::Date32),
    )?;
    Ok(frame.into_unoptimized_plan())
}
