//! Bytes to Arrow: the framer splits a decompressed stream into records (raw text and byte
//! offsets kept), the raw batcher validates them and decodes them into the lenient RAW
//! schema that SQL sees as `raw_logs`. Depends on arrow and arrow-json only.

pub mod buffers;
pub mod framer;
pub mod raw;
mod swar;
pub mod validate;

pub use framer::{FrameError, FrameKind, Framer, Frames};
pub use raw::{RawBatcher, Reject, SourceName, raw_schema};

/// Helpers for the tests of crates that build on the decoder (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
pub mod test_util {
    use super::{Framer, Frames, RawBatcher, SourceName};

    /// All records of `input`, framed, and a batcher for them (bucket `b`, key `k`).
    pub fn framed(input: &str) -> (Frames, RawBatcher) {
        let mut framer = Framer::new();
        let mut frames = Frames::new();
        framer.push(input.as_bytes(), &mut frames).unwrap();
        framer.finish(&mut frames).unwrap();
        let source = SourceName {
            bucket: "b".into(),
            key: "k".into(),
        };
        (frames, RawBatcher::new(source, 1024).unwrap())
    }
}
