//! Issue 19 item 4: zstd, bzip2 and xz, detected from the content like gzip: single and
//! concatenated frames or streams read to the end, faults keeping every record decoded
//! before them, and the default include globs taking their suffixes.

use async_compression::tokio::bufread::{BzDecoder, XzDecoder, ZstdDecoder};
use async_compression::tokio::write::{BzEncoder, XzEncoder, ZstdEncoder};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::util;

#[derive(Debug, Clone, Copy)]
enum Format {
    Zstd,
    Bzip2,
    Xz,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Zstd => "zstd",
            Format::Bzip2 => "bzip2",
            Format::Xz => "xz",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Format::Zstd => "zst",
            Format::Bzip2 => "bz2",
            Format::Xz => "xz",
        }
    }

    /// `bytes` as one frame (zstd) or stream (bzip2, xz).
    async fn compress(self, bytes: &[u8]) -> Vec<u8> {
        async fn encode<W: tokio::io::AsyncWrite + Unpin>(mut encoder: W, bytes: &[u8]) -> W {
            encoder.write_all(bytes).await.unwrap();
            encoder.shutdown().await.unwrap();
            encoder
        }
        match self {
            Format::Zstd => encode(ZstdEncoder::new(Vec::new()), bytes)
                .await
                .into_inner(),
            Format::Bzip2 => encode(BzEncoder::new(Vec::new()), bytes).await.into_inner(),
            Format::Xz => encode(XzEncoder::new(Vec::new()), bytes).await.into_inner(),
        }
    }

    /// `parts`, each compressed on its own, one after another (as pzstd, pbzip2 or `cat`
    /// of several files write them); zstd gets a skippable frame first and between the
    /// frames, as pzstd writes them.
    async fn concatenated(self, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for part in parts {
            if let Format::Zstd = self {
                out.extend_from_slice(&skippable_frame(b"pzstd-like frame size"));
            }
            out.extend_from_slice(&self.compress(part).await);
        }
        out
    }

    /// What a multi-frame decoder of this format yields from `bytes` before its fault.
    async fn decoded_before_fault(self, bytes: &[u8]) -> Vec<u8> {
        async fn drain<R: AsyncRead + Unpin>(mut decoder: R) -> Vec<u8> {
            let mut out = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                match decoder.read(&mut buf).await {
                    Ok(0) | Err(_) => return out,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        }
        match self {
            Format::Zstd => {
                let mut d = ZstdDecoder::new(bytes);
                d.multiple_members(true);
                drain(d).await
            }
            Format::Bzip2 => {
                let mut d = BzDecoder::new(bytes);
                d.multiple_members(true);
                drain(d).await
            }
            Format::Xz => {
                let mut d = XzDecoder::new(bytes);
                d.multiple_members(true);
                drain(d).await
            }
        }
    }
}

const FORMATS: [Format; 3] = [Format::Zstd, Format::Bzip2, Format::Xz];

/// A zstd skippable frame holding `payload`.
fn skippable_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0x5a, 0x2a, 0x4d, 0x18];
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(payload);
    frame
}

fn records(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| json!({"i": i, "msg": format!("record {i} with some padding text")}))
        .collect()
}

fn ndjson(range: std::ops::Range<usize>) -> Vec<u8> {
    records(range)
        .iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Rows of the file named `name`, rows with a distinct source index, and rows whose
/// record's `i` is their source index.
async fn rows_of(pool: &PgPool, name: &str) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT source_index), \
                count(*) FILTER (WHERE (raw_data->>'i')::bigint = source_index) \
         FROM logs WHERE source_key LIKE '%/' || $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Status, error and `permanent` of the file named `name`.
async fn outcome_of(pool: &PgPool, name: &str) -> (String, String, Option<bool>) {
    let (status, error, permanent): (String, Option<String>, Option<bool>) = sqlx::query_as(
        "SELECT status, metadata->>'error', (metadata->>'permanent')::boolean \
         FROM processed_files WHERE s3_key LIKE '%/' || $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .unwrap();
    (status, error.unwrap_or_default(), permanent)
}

/// A JSON array in one frame or stream, and NDJSON in three concatenated ones (with zstd
/// skippable frames), are ingested whole: every record once, at its own index.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn single_and_concatenated_frames_are_ingested_each_record_once(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for format in FORMATS {
        let single = format!("single.json.{}", format.suffix());
        let bytes = format.compress(&util::json_array(&records(0..3_000))).await;
        util::write_file(dir.path(), &single, &bytes);
        files.push((single, 3_000));

        let multi = format!("multi.ndjson.{}", format.suffix());
        let parts = [ndjson(0..1_000), ndjson(1_000..1_001), ndjson(1_001..2_500)];
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let bytes = format.concatenated(&parts).await;
        util::write_file(dir.path(), &multi, &bytes);
        files.push((multi, 2_500));
    }
    let run = util::ingest(&pool, dir.path(), &["--chunk-records", "1000"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 6);
    assert_eq!(run.count("records_ingested"), 3 * (3_000 + 2_500));
    for (name, n) in files {
        assert_eq!(rows_of(&pool, &name).await, (n, n, n), "{name}");
        assert_eq!(outcome_of(&pool, &name).await.0, "COMPLETED", "{name}");
    }
}

/// A file cut short in its second frame or stream keeps every record decoded before the cut
/// (the first frame's and what the second had given), and ends FAILED, permanently, with a
/// cause naming the format and the byte offsets.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn cut_short_keeps_every_record_decoded_before_the_cut_and_fails(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for format in FORMATS {
        let name = format!("cut.ndjson.{}", format.suffix());
        let parts = [ndjson(0..2_000), ndjson(2_000..12_000)];
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let full = format.concatenated(&parts).await;
        let first = format.concatenated(&parts[..1]).await.len();
        // Past the first frame, well before the end of the second.
        let cut = &full[..first + (full.len() - first) * 2 / 3];
        let decoded = format.decoded_before_fault(cut).await;
        let lines = decoded.iter().filter(|b| **b == b'\n').count() as i64;
        assert!(
            (2_000..12_000).contains(&lines),
            "{name}: {lines} lines decoded before the cut"
        );
        util::write_file(dir.path(), &name, cut);
        expected.push((format, name, lines, decoded.len()));
    }
    let run = util::ingest(&pool, dir.path(), &["--chunk-records", "1000"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.count("files_failed"), 3);
    for (format, name, lines, decoded) in expected {
        let (kept, distinct, in_place) = rows_of(&pool, &name).await;
        // The decoded text may end with a complete record whose newline was cut off.
        assert!(
            kept == lines || kept == lines + 1,
            "{name}: {kept} records kept, {lines} complete lines decoded before the cut"
        );
        assert_eq!((distinct, in_place), (kept, kept), "{name}");
        let (status, error, permanent) = outcome_of(&pool, &name).await;
        assert_eq!(status, "FAILED", "{name}");
        assert_eq!(permanent, Some(true), "{name}: {error}");
        assert!(
            error.contains(&format!("{} stream cut short", format.name())),
            "{name}: {error}"
        );
        assert!(
            error.contains(&format!("cannot read past byte {decoded} ")),
            "{name}: the offset of the fault in the decompressed stream: {error}"
        );
    }
}

/// Bytes changed in the middle of the second frame or stream: the records of the first are
/// kept, and the file ends FAILED, permanently, with a cause naming the format.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn corrupt_frame_keeps_the_frames_before_it_and_fails_naming_the_format(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    for format in FORMATS {
        let parts = [ndjson(0..2_000), ndjson(2_000..7_000)];
        let parts: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let mut bytes = format.concatenated(&parts).await;
        let first = format.concatenated(&parts[..1]).await.len();
        let middle = first + (bytes.len() - first) / 2;
        for b in &mut bytes[middle..middle + 16] {
            *b ^= 0x5a;
        }
        let name = format!("corrupt.ndjson.{}", format.suffix());
        util::write_file(dir.path(), &name, &bytes);
    }
    let run = util::ingest(&pool, dir.path(), &["--chunk-records", "1000"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.count("files_failed"), 3);
    for format in FORMATS {
        let name = format!("corrupt.ndjson.{}", format.suffix());
        let (status, error, permanent) = outcome_of(&pool, &name).await;
        assert_eq!(status, "FAILED", "{name}");
        assert_eq!(permanent, Some(true), "{name}: {error}");
        assert!(
            error.contains(&format!("{} stream", format.name())),
            "{name}: {error}"
        );
        assert!(error.contains("cannot read past byte"), "{name}: {error}");
        let (kept, distinct, in_place) = rows_of(&pool, &name).await;
        assert!(
            (2_000..7_000).contains(&kept),
            "{name}: {kept} records kept, the first frame's 2,000 at least"
        );
        assert_eq!((distinct, in_place), (kept, kept), "{name}");
    }
}

/// `ingest-file DIR` takes `x.json.zst`, `x.ndjson.bz2` and `x.log.xz` with its default
/// globs (and still leaves out suffixes it does not know).
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn default_include_globs_take_zst_bz2_and_xz_files(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let taken = [
        ("x.json.zst", Format::Zstd, util::json_array(&records(0..7))),
        ("x.ndjson.bz2", Format::Bzip2, ndjson(0..11)),
        ("x.log.xz", Format::Xz, ndjson(0..13)),
    ];
    for (name, format, bytes) in &taken {
        util::write_file(dir.path(), name, &format.compress(bytes).await);
    }
    util::write_file(
        dir.path(),
        "x.json.lz4",
        &Format::Zstd.compress(&ndjson(0..5)).await,
    );
    let run = util::ingest(&pool, dir.path(), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 3);
    assert_eq!(run.count("records_ingested"), 7 + 11 + 13);
    let mut keys: Vec<String> = sqlx::query_scalar("SELECT s3_key FROM processed_files")
        .fetch_all(&pool)
        .await
        .unwrap();
    keys.sort();
    let names: Vec<&str> = keys.iter().map(|k| k.rsplit('/').next().unwrap()).collect();
    assert_eq!(names, vec!["x.json.zst", "x.log.xz", "x.ndjson.bz2"]);
}
