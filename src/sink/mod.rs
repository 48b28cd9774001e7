//! Where rows go, and every write there. [`postgres`]: the target table as the database
//! describes it, the check of a transform's output against it and the binary COPY encoder
//! (both read one table of types, `writer.rs`), a chunk's COPY, the deletion of an object's
//! earlier rows. [`parquet`]: a lake of Parquet files published with the job's completion.
//! [`delta`]: a Delta table, one commit per source object. [`lake`]: either lake, as the
//! pipeline sees it.

pub mod delta;
pub mod lake;
pub mod parquet;
pub mod postgres;

pub use postgres::{
    CopyColumn, CopyEncoder, EncodeError, PgRange, PgType, SinkError, SinkPlan, TargetTable,
    quote_ident,
};
