//! The Delta Lake sink: the transform's output appended to a Delta table (a folder or
//! `s3://bucket/prefix`) that Spark, Trino, DuckDB, Polars and delta-rs read, beside or
//! instead of PostgreSQL.
//!
//! Layout: the transform's columns plus `date` (the UTC day of `timestamp`), partitioned
//! by `date`, ZSTD Parquet files sized by the Parquet sink's row-group settings. The table
//! is created on first use; a transform whose output differs from an existing table's
//! schema is refused, naming the difference.
//!
//! Exactly once (`job`): a source object's rows become visible in one Delta commit that
//! carries the object's idempotency key (`txn`), recorded in the job before and after.

pub mod group;
mod job;
mod maintain;
mod stream;
mod table;

pub use job::{Append, DeltaJob, DeltaJobError, Written, app_id};
pub use maintain::{Optimized, Vacuumed, optimize, vacuum};
pub use table::{DATE_COLUMN, DeltaError, DeltaSink, TXN_RETENTION, open_table};
