//! Compression detection. Gzip, zstd, bzip2 and xz are recognised by their magic bytes
//! (never by the file name) and always decoded to the end of the stored bytes: a file made
//! of several concatenated members, frames or streams is common (appended logs, parallel
//! compressors such as pigz, pzstd and pbzip2), and a decoder that stopped after the first
//! one would report a normal end of file — silent data loss.
//!
//! A decoder's verdict on the bytes (cut short, corrupt, a bad checksum) names the format and
//! is permanent (`InvalidData` or `UnexpectedEof`); a fault of the source under it (the
//! network, the disk) passes through unchanged, so that it stays what it was.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_compression::tokio::bufread::{BzDecoder, GzipDecoder, XzDecoder, ZstdDecoder};
use tokio::io::{AsyncBufRead, AsyncRead, AsyncReadExt, BufReader, ReadBuf};

/// A boxed streaming reader.
pub type BoxRead = Box<dyn AsyncRead + Send + Unpin>;

/// Read buffer in front of the decompressor and the framer.
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Bytes read before the format is decided: the longest magic (xz's).
const HEAD_BYTES: usize = 6;

/// A compression recognised from the first bytes of the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    /// The compression whose magic `head` (the first bytes of the content, fewer for a short
    /// file) starts with, if any.
    pub fn detect(head: &[u8]) -> Option<Self> {
        match head {
            [0x1f, 0x8b, ..] => Some(Self::Gzip),
            // A zstd frame, or a skippable frame (pzstd starts with one).
            [0x28, 0xb5, 0x2f, 0xfd, ..] | [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..] => Some(Self::Zstd),
            // "BZh" and the block size, '1' to '9'.
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Some(Self::Bzip2),
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Some(Self::Xz),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
            Self::Bzip2 => "bzip2",
            Self::Xz => "xz",
        }
    }

    /// A multi-member (multi-frame, multi-stream) decoder of this format over `reader`.
    fn decoder<R: AsyncBufRead + Send + Unpin + 'static>(self, reader: R) -> BoxRead {
        match self {
            Self::Gzip => {
                let mut decoder = GzipDecoder::new(reader);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Self::Zstd => {
                let mut decoder = ZstdDecoder::new(reader);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Self::Bzip2 => {
                let mut decoder = BzDecoder::new(reader);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
            Self::Xz => {
                let mut decoder = XzDecoder::new(reader);
                decoder.multiple_members(true);
                Box::new(decoder)
            }
        }
    }
}

/// Wraps `raw` in the decoder of its compression when its first bytes are the magic of one.
pub async fn decompress(mut raw: BoxRead) -> std::io::Result<BoxRead> {
    // The first read may return a single byte: read until the magic is decided.
    let mut head = [0u8; HEAD_BYTES];
    let mut filled = 0;
    while filled < head.len() {
        let n = raw.read(&mut head[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let head = std::io::Cursor::new(head[..filled].to_vec());
    match Compression::detect(head.get_ref()) {
        Some(format) => {
            let stream = head.chain(SourceFaults(raw));
            let reader = BufReader::with_capacity(READ_BUFFER_BYTES, stream);
            Ok(Box::new(Named {
                inner: format.decoder(reader),
                format,
            }))
        }
        None => Ok(Box::new(BufReader::with_capacity(
            READ_BUFFER_BYTES,
            head.chain(raw),
        ))),
    }
}

/// Decompresses `stored`, a whole file in memory, like [`decompress`] does a stream (the
/// same decoders, the same named faults); uncompressed content is returned as it is. Fails
/// with `FileTooLarge` when the content is more than `at_most` bytes decompressed.
pub async fn decompress_whole(
    stored: bytes::Bytes,
    at_most: usize,
) -> std::io::Result<bytes::Bytes> {
    let Some(format) = Compression::detect(&stored[..stored.len().min(HEAD_BYTES)]) else {
        return Ok(stored);
    };
    let mut content = Vec::with_capacity(stored.len().saturating_mul(8).min(at_most));
    let mut decoder = Named {
        inner: format.decoder(std::io::Cursor::new(stored)),
        format,
    }
    .take((at_most as u64).saturating_add(1));
    decoder.read_to_end(&mut content).await?;
    if content.len() > at_most {
        return Err(std::io::Error::new(
            std::io::ErrorKind::FileTooLarge,
            format!("more than {at_most} bytes decompressed"),
        ));
    }
    Ok(content.into())
}

/// A fault of the source under a decoder, marked so that [`Named`] tells it from the
/// decoder's own verdicts and hands it on as it was.
#[derive(Debug)]
struct SourceFault(std::io::Error);

impl fmt::Display for SourceFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SourceFault {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Marks the errors of the stored bytes' reader as [`SourceFault`]s.
struct SourceFaults(BoxRead);

impl AsyncRead for SourceFaults {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0)
            .poll_read(cx, buf)
            .map_err(|e| std::io::Error::new(e.kind(), SourceFault(e)))
    }
}

/// A decoder whose errors name the format.
struct Named {
    inner: BoxRead,
    format: Compression,
}

impl AsyncRead for Named {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let format = self.format;
        Pin::new(&mut self.inner)
            .poll_read(cx, buf)
            .map_err(|e| name_fault(format, e))
    }
}

/// A source fault as it was; a decoder's verdict on the bytes named after `format`, and
/// permanent: the same bytes decode the same way. An allocation that failed stays a
/// transient `OutOfMemory`; but liblzma's "no progress possible" (`LZMA_BUF_ERROR`, which
/// the xz codec reports as `OutOfMemory` too) is the input ending inside a block.
fn name_fault(format: Compression, error: std::io::Error) -> std::io::Error {
    use std::io::{Error, ErrorKind};
    if error.get_ref().is_some_and(|e| e.is::<SourceFault>()) {
        let kind = error.kind();
        return match error.into_inner().map(|e| e.downcast::<SourceFault>()) {
            Some(Ok(fault)) => fault.0,
            _ => Error::from(kind),
        };
    }
    let name = format.name();
    match (format, error.kind()) {
        (_, ErrorKind::UnexpectedEof) => Error::new(
            ErrorKind::UnexpectedEof,
            format!("{name} stream cut short ({error})"),
        ),
        (Compression::Xz, ErrorKind::OutOfMemory) => Error::new(
            ErrorKind::UnexpectedEof,
            format!(
                "{name} stream cut short (no progress possible: the input ends inside a block)"
            ),
        ),
        (_, ErrorKind::OutOfMemory) => Error::new(
            ErrorKind::OutOfMemory,
            format!("{name} decoder out of memory ({error})"),
        ),
        _ => Error::new(
            ErrorKind::InvalidData,
            format!("{name} stream corrupt ({error})"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_decide_the_format() {
        let cases: &[(&[u8], Option<Compression>)] = &[
            (&[0x1f, 0x8b, 0x08, 0x00], Some(Compression::Gzip)),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0x24], Some(Compression::Zstd)),
            (&[0x50, 0x2a, 0x4d, 0x18, 0x04], Some(Compression::Zstd)),
            (&[0x5f, 0x2a, 0x4d, 0x18], Some(Compression::Zstd)),
            (b"BZh91AY&SY", Some(Compression::Bzip2)),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Some(Compression::Xz)),
            (b"BZh", None),
            (b"BZhx", None),
            (&[0x60, 0x2a, 0x4d, 0x18], None),
            (&[0xfd, b'7', b'z', b'X', b'Z'], None),
            (b"[{\"a\":1}]", None),
            (b"{\"a\":1}\n", None),
            (b"", None),
        ];
        for (head, expected) in cases {
            assert_eq!(Compression::detect(head), *expected, "{head:?}");
        }
    }

    /// A fault of the source under a decoder (here a connection reset after a zstd frame's
    /// first bytes) comes out as it was: same kind, same inner error, not named after the
    /// format nor made permanent.
    #[tokio::test]
    async fn a_source_fault_under_a_decoder_passes_through_unchanged() {
        #[derive(Debug)]
        struct Network;
        impl fmt::Display for Network {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("connection reset by the test")
            }
        }
        impl std::error::Error for Network {}

        /// Its bytes, then a connection reset.
        struct Faulty(&'static [u8]);
        impl AsyncRead for Faulty {
            fn poll_read(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<std::io::Result<()>> {
                if self.0.is_empty() {
                    let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, Network);
                    return Poll::Ready(Err(reset));
                }
                let n = self.0.len().min(buf.remaining());
                buf.put_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Poll::Ready(Ok(()))
            }
        }

        let head: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x10, 0x81];
        let mut reader = decompress(Box::new(Faulty(head))).await.unwrap();
        let mut out = Vec::new();
        let error = reader.read_to_end(&mut out).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset);
        assert_eq!(error.to_string(), "connection reset by the test");
        assert!(
            error.get_ref().is_some_and(|e| e.is::<Network>()),
            "{error:?}"
        );
    }

    fn gzip(content: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(content).unwrap();
        encoder.finish().unwrap()
    }

    /// A whole file in memory decodes like a stream: every member of a concatenated gzip,
    /// uncompressed content as it is.
    #[tokio::test]
    async fn a_whole_file_decompresses_every_member() {
        let mut stored = gzip(b"[{\"a\":1},");
        stored.extend(gzip(b"{\"a\":2}]"));
        let content = decompress_whole(stored.into(), 1 << 20).await.unwrap();
        assert_eq!(&content[..], b"[{\"a\":1},{\"a\":2}]");
        let plain = bytes::Bytes::from_static(b"{\"a\":1}\n");
        assert_eq!(decompress_whole(plain.clone(), 4).await.unwrap(), plain);
    }

    /// A whole file's faults are the stream's: named after the format, permanent.
    #[tokio::test]
    async fn a_whole_file_cut_short_is_named_like_a_stream() {
        let stored = gzip(&b"{\"a\":1}\n".repeat(100));
        let error = decompress_whole(stored[..stored.len() / 2].to_vec().into(), 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
        assert!(
            error.to_string().starts_with("gzip stream cut short"),
            "{error}"
        );
    }

    /// What a whole file may take decompressed is bounded: a small file that inflates to
    /// more than that is refused (and read as a stream instead), never held whole.
    #[tokio::test]
    async fn a_whole_file_larger_than_allowed_decompressed_is_refused() {
        let stored = gzip(&vec![b' '; 1 << 20]);
        assert!(stored.len() < 16 << 10, "{} bytes stored", stored.len());
        let error = decompress_whole(stored.clone().into(), 64 << 10)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::FileTooLarge, "{error}");
        assert_eq!(
            decompress_whole(stored.into(), 1 << 20)
                .await
                .unwrap()
                .len(),
            1 << 20
        );
    }
}
