//! Where rows go. PostgreSQL: the target table as the database describes it, the check of
//! a transform's output against it, and the binary COPY encoding. [`parquet`]: a lake of
//! Parquet files published with the job's completion.

mod encode;
pub mod parquet;
mod pgtype;
pub mod postgres;
mod table;

pub use encode::CopyEncoder;
pub use pgtype::PgType;
pub use table::{SinkError, SinkPlan, TargetTable, quote_ident};
