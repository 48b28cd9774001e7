//! Arrow batches into PostgreSQL: the target table as the database describes it, the check
//! of a transform's output against it, and the binary COPY encoding.

mod encode;
mod pgtype;
mod table;

pub use encode::CopyEncoder;
pub use pgtype::PgType;
pub use table::{SinkError, SinkPlan, TargetTable, quote_ident};
