//! The PostgreSQL sink: the target table (`table.rs`), which Arrow types go into which
//! column types and how (`writer.rs`, `pgtype.rs`, `temporal.rs`), the binary COPY encoder
//! (`encode.rs`), a chunk's COPY (`copy.rs`) and the deletion of an object's earlier rows
//! (`forget.rs`).

mod copy;
mod encode;
mod forget;
mod pgtype;
mod table;
mod temporal;
mod writer;

pub use copy::{ChunkCopy, CopyError};
pub use encode::{CopyColumn, CopyEncoder, EncodeError, PgRange};
pub use forget::delete_object_rows;
pub use pgtype::PgType;
pub use table::{SinkError, SinkPlan, TargetTable, quote_ident};
