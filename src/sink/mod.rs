//! Arrow batches into PostgreSQL: the target table as the database describes it, the check
//! of a transform's output against it, and the binary COPY encoding. The check and the
//! encoder read one table (`writer.rs`): what the check accepts, the encoder writes.

mod encode;
mod pgtype;
mod table;
mod temporal;
mod writer;

pub use encode::{CopyColumn, CopyEncoder, EncodeError, PgRange};
pub use pgtype::PgType;
pub use table::{SinkError, SinkPlan, TargetTable, quote_ident};
