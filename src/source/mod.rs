//! Where bytes come from: local files and object stores (S3 or a local folder), opened as
//! one streaming reader, with compression detected from the content.

mod counting;
mod input;
pub mod local;
mod location;

pub use counting::{ByteCounter, CountingReader};
pub use input::{BoxRead, READ_BUFFER_BYTES, decompress};
pub use location::{SourceRef, open};
