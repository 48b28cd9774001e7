//! The PostgreSQL sink's writes: a chunk's COPY, and the deletion of an object's earlier
//! rows.

mod copy;
mod forget;

pub use copy::{ChunkCopy, CopyError};
pub use forget::delete_object_rows;
