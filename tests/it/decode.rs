//! The read path (decompress -> frame -> Arrow) gives identical output however the input is
//! split into reads: plain, gzip and multi-member gzip, arrays and NDJSON, with multi-byte
//! UTF-8 characters and escapes split across reads.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::compute::concat_batches;
use ingestor::decode::{Framer, Frames, RawBatcher, SourceName, raw_schema};
use ingestor::sample::{SampleConfig, SampleLayout, write_sample};
use ingestor::source::decompress;
use sqlx::PgPool;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use crate::util;

/// Serves `data` in reads whose sizes come from `sizes` (cycled).
struct SplitReader {
    data: Vec<u8>,
    at: usize,
    sizes: Vec<usize>,
    turn: usize,
}

impl AsyncRead for SplitReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let size = self.sizes[self.turn % self.sizes.len()];
        self.turn += 1;
        let end = (self.at + size)
            .min(self.data.len())
            .min(self.at + buf.remaining());
        let at = self.at;
        buf.put_slice(&self.data[at..end]);
        self.at = end;
        Poll::Ready(Ok(()))
    }
}

/// Decodes `data` read in pieces of `sizes`, pushing each read to the framer as it comes.
async fn decode(data: &[u8], sizes: Vec<usize>) -> String {
    let reader = SplitReader {
        data: data.to_vec(),
        at: 0,
        sizes,
        turn: 0,
    };
    let mut input = decompress(Box::new(reader)).await.unwrap();
    let source = SourceName {
        bucket: "b".into(),
        key: "k".into(),
    };
    let mut batcher = RawBatcher::new(source, 64).unwrap();
    let mut framer = Framer::new();
    let mut frames = Frames::new();
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    let mut buffer = vec![0u8; 8192];
    loop {
        let n = input.read(&mut buffer).await.unwrap();
        if n == 0 {
            break;
        }
        framer.push(&buffer[..n], &mut frames).unwrap();
        if frames.len() >= 50 {
            batches.extend(batcher.convert(&frames, 0, &mut rejects).unwrap());
            frames.clear();
        }
    }
    framer.finish(&mut frames).unwrap();
    batches.extend(batcher.convert(&frames, 0, &mut rejects).unwrap());
    let all = concat_batches(&raw_schema(), &batches).unwrap();
    let table = arrow::util::pretty::pretty_format_batches(&[all])
        .unwrap()
        .to_string();
    format!("{table}\n{rejects:?}")
}

fn xorshift_sizes(seed: u64) -> Vec<usize> {
    let mut x = seed;
    (0..997)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 600) as usize + 1
        })
        .collect()
}

fn sample(layout: SampleLayout, records: u64) -> Vec<u8> {
    let config = SampleConfig {
        records,
        layout,
        gzip: false,
        seed: 7,
        ..SampleConfig::default()
    };
    let mut out = Vec::new();
    write_sample(&config, &mut out).unwrap();
    out
}

async fn assert_split_invariant(name: &str, data: &[u8]) {
    let reference = decode(data, vec![usize::MAX / 2]).await;
    for sizes in [
        vec![1],
        vec![2],
        vec![3],
        vec![7],
        xorshift_sizes(1),
        xorshift_sizes(2),
    ] {
        let label = format!("{name} at reads of {:?}", &sizes[..sizes.len().min(3)]);
        assert_eq!(decode(data, sizes).await, reference, "{label}");
    }
}

#[tokio::test]
async fn identical_output_at_every_split() {
    let extra =
        "[{\"m\":\"é日本😀\\\"q\\\\\"}, 5, {\"n\":{\"deep\":[1,{\"x\":\"}]\"}]}},\n{\"bad\": }]";
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("array", sample(SampleLayout::Array, 120)),
        ("ndjson", sample(SampleLayout::Ndjson, 120)),
        ("utf8 and rejects", extra.as_bytes().to_vec()),
        (
            "ndjson with bad lines",
            b"{\"a\":1}\nnot json\n{\"b\":\n{\"c\":\"\xc3\xa9\"}\n".to_vec(),
        ),
    ];
    for (name, plain) in inputs {
        assert_split_invariant(name, &plain).await;
        assert_split_invariant(&format!("{name} gzip"), &util::gzip(&plain)).await;
        let cut = plain.len() / 3;
        let multi = [
            util::gzip(&plain[..cut]),
            util::gzip(&plain[cut..2 * cut]),
            util::gzip(&plain[2 * cut..]),
        ]
        .concat();
        assert_split_invariant(&format!("{name} multi-member gzip"), &multi).await;
        let reference = decode(&plain, vec![1 << 20]).await;
        assert_eq!(
            decode(&multi, vec![1 << 20]).await,
            reference,
            "{name}: every gzip member is read"
        );
    }
}

/// A gzip file of `before`, 70 MiB of `x`, then `after`: the `x`s are 70 gzip members of
/// one MiB each, compressed once (multi-member gzip is read to its end).
fn seventy_mib_between(before: &str, after: &str) -> Vec<u8> {
    let member = util::gzip(&[b'x'; 1 << 20]);
    let mut file = util::gzip(before.as_bytes());
    for _ in 0..70 {
        file.extend_from_slice(&member);
    }
    file.extend(util::gzip(after.as_bytes()));
    file
}

/// `n` with thousands separators.
fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|group| std::str::from_utf8(group).unwrap())
        .collect();
    groups.join(",")
}

/// Issue 14 item 7: a record over the 64 MiB limit is rejected alone, in NDJSON and in an
/// array (where brackets and quotes in its strings must not end it early); the record after
/// it is ingested, and `rejected_records` keeps its first MiB and a cause with its size.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_record_over_64_mib_is_rejected_alone(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    // (file, text before the big record, the big record's text before and after its
    // 70 MiB of `x`, text after it)
    let files = [
        (
            "big.json.gz",
            "[{\"i\":0},\n",
            r#"{"i":1,"pad":["]}\"[",{"deep":""#,
            r#""}]}"#,
            ",{\"i\":2,\"msg\":\"after\"}]\n",
        ),
        (
            "big.ndjson.gz",
            "{\"i\":0,\"msg\":\"before\"}\n",
            r#"{"i":1,"pad":""#,
            r#""}"#,
            "\n{\"i\":2,\"msg\":\"after\"}\n",
        ),
    ];
    for (name, before, head, tail, after) in files {
        let file = seventy_mib_between(&format!("{before}{head}"), &format!("{tail}{after}"));
        util::write_file(dir.path(), name, &file);
    }
    let run = util::ingest(&pool, dir.path(), &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.count("files_completed"), 2);
    assert_eq!(run.count("records_ingested"), 4);
    assert_eq!(run.count("records_rejected"), 2);
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT source_key, source_index FROM logs ORDER BY source_key, source_index",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let rows: Vec<(&str, i64)> = rows
        .iter()
        .map(|(key, index)| (key.rsplit('/').next().unwrap(), *index))
        .collect();
    assert_eq!(
        rows,
        [
            ("big.json.gz", 0),
            ("big.json.gz", 2),
            ("big.ndjson.gz", 0),
            ("big.ndjson.gz", 2)
        ]
    );
    let rejected: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT s3_key, source_index, raw, error FROM rejected_records ORDER BY s3_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rejected.len(), 2);
    for ((key, index, raw, error), (name, _, head, tail, _)) in rejected.iter().zip(files) {
        assert!(key.ends_with(name), "{key}");
        assert_eq!(*index, 1, "{name}");
        assert_eq!(raw.len(), 1 << 20, "{name}: raw keeps the first MiB");
        assert!(raw.starts_with(head) && raw.ends_with("xxx"), "{name}");
        let size = head.len() + 70 * (1 << 20) + tail.len();
        assert_eq!(
            error,
            &format!(
                "record of {} bytes exceeds the limit of 64 MiB; raw holds its first 1 MiB",
                grouped(size)
            ),
            "{name}"
        );
    }
}
