//! Compression detection. Gzip is recognised by its magic bytes (never by the file name)
//! and always decoded as multi-member: a gzip file made of several concatenated members is
//! common (appended logs, parallel compressors), and a single-member decoder would stop
//! after the first one and report a normal end of file — silent data loss.

use async_compression::tokio::bufread::GzipDecoder;
use tokio::io::{AsyncRead, AsyncReadExt, BufReader};

/// A boxed streaming reader.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// Read buffer in front of the decompressor and the framer.
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Wraps `raw` in a gzip decoder when its first bytes are the gzip magic.
pub async fn decompress(mut raw: BoxRead) -> std::io::Result<BoxRead> {
    // The first read may return a single byte: read until the magic is decided.
    let mut head = [0u8; GZIP_MAGIC.len()];
    let mut filled = 0;
    while filled < head.len() {
        let n = raw.read(&mut head[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let is_gzip = head[..filled] == GZIP_MAGIC;
    let stream = std::io::Cursor::new(head[..filled].to_vec()).chain(raw);
    let reader = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
    if is_gzip {
        let mut decoder = GzipDecoder::new(reader);
        decoder.multiple_members(true);
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(reader))
    }
}
