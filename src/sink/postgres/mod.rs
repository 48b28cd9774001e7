//! The PostgreSQL sink: the target table (`table.rs`), which Arrow types go into which
//! column types and how (`writer.rs`, `pgtype.rs`, `temporal.rs`), the binary COPY encoder
//! (`encode.rs`), a chunk's COPY (`copy.rs`), the deletion of an object's earlier rows
//! (`forget.rs`), and tables partitioned by day (`partitions/`).

mod copy;
mod encode;
mod forget;
mod ident;
pub mod partitions;
mod pgtype;
mod table;
mod temporal;
mod writer;

pub use copy::{ChunkCopy, CopyError};
pub use encode::{CopyColumn, CopyEncoder, EncodeError, PgRange, parse_uuid};
pub use forget::delete_object_rows;
pub use ident::quote_ident;
pub use pgtype::PgType;
pub use table::{SinkError, SinkPlan, TargetTable};
