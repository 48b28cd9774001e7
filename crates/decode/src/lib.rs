//! Bytes to Arrow: the framer splits a decompressed stream into records (raw text and byte
//! offsets kept), the raw batcher validates them and decodes them into the lenient RAW
//! schema that SQL sees as `raw_logs`.

pub mod framer;
pub mod raw;
mod swar;
pub mod validate;

pub use framer::{FrameError, FrameKind, Framer, Frames};
pub use raw::{RawBatcher, Reject, SourceName, raw_schema};
