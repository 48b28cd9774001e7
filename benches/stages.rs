//! Per-stage throughput: inflate, frame, RAW decode, the whole decode stage (gunzip + frame +
//! RAW decode on one core), transform, COPY encode, Parquet write.
//! Deterministic generated data (`ingestor::sample`), throughput in bytes of JSON and in
//! records.
//!
//! `cargo bench --bench stages` (`-- parquet_write` for the Parquet sink alone)

use std::hint::black_box;
use std::io::Read;

use arrow::record_batch::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ingestor::decode::{Framer, Frames, RawBatcher, SourceName};
use ingestor::sample::{SampleConfig, write_sample};
use ingestor::sink::{CopyEncoder, PgType};
use ingestor::source::READ_BUFFER_BYTES;
use ingestor::transform::{Transform, TransformSql};

/// Records per measured input (~7.4 MB of JSON).
const RECORDS: u64 = 10_000;
/// Records per RAW batch: the pipeline's default (`--batch-records`).
const BATCH: usize = 4096;
/// Bytes handed to the framer at once, as the decode stage does.
const PUSH_BYTES: usize = 64 * 1024;

fn json() -> Vec<u8> {
    let config = SampleConfig {
        records: RECORDS,
        gzip: false,
        ..SampleConfig::default()
    };
    let mut out = Vec::new();
    write_sample(&config, &mut out).unwrap();
    out
}

fn gzipped() -> Vec<u8> {
    let config = SampleConfig {
        records: RECORDS,
        gzip: true,
        ..SampleConfig::default()
    };
    let mut out = Vec::new();
    write_sample(&config, &mut out).unwrap();
    out
}

fn source() -> SourceName {
    SourceName {
        bucket: "bench".into(),
        key: "logs/2024/11/05/part-0000.json.gz".into(),
    }
}

/// frame + RAW decode of a whole input, batch by batch.
fn decode(input: &[u8]) -> Vec<RecordBatch> {
    decode_pieces(input.chunks(PUSH_BYTES))
}

/// The decode stage as a file meets it: gunzip into a fresh buffer of the pipeline's read
/// size per read, frame in the decode stage's slices, RAW decode.
fn gunzip_and_decode(gz: &[u8]) -> Vec<RecordBatch> {
    let mut decoder = flate2::read::MultiGzDecoder::new(gz);
    decode_pieces(std::iter::from_fn(|| {
        let mut piece = Vec::with_capacity(READ_BUFFER_BYTES);
        (&mut decoder)
            .take(READ_BUFFER_BYTES as u64)
            .read_to_end(&mut piece)
            .unwrap();
        (!piece.is_empty()).then_some(piece)
    }))
}

/// Frames and converts as the decode stage does: batches of at most `BATCH` records, each
/// converted as soon as it is framed and then dropped from the frame buffer.
fn decode_pieces<P: AsRef<[u8]>>(pieces: impl Iterator<Item = P>) -> Vec<RecordBatch> {
    let mut framer = Framer::new().with_check(RawBatcher::check);
    let mut frames = Frames::new();
    let mut batcher = RawBatcher::new(source(), BATCH).unwrap();
    let mut rejects = Vec::new();
    let mut batches = Vec::new();
    let mut convert = |frames: &mut Frames, all: bool| {
        while frames.len() >= BATCH || (all && !frames.is_empty()) {
            let batch = batcher.convert_front(frames, BATCH, 0, &mut rejects);
            batches.extend(batch.unwrap());
        }
    };
    for piece in pieces {
        for slice in piece.as_ref().chunks(PUSH_BYTES) {
            framer.push(slice, &mut frames).unwrap();
            convert(&mut frames, false);
        }
    }
    framer.finish(&mut frames).unwrap();
    convert(&mut frames, true);
    batches
}

fn stages(c: &mut Criterion) {
    let json = json();
    let gz = gzipped();
    let mut group = c.benchmark_group("stages");
    group.sample_size(10);
    // Both figures for every stage: bytes of JSON and records.
    group.throughput(Throughput::ElementsAndBytes {
        elements: RECORDS,
        bytes: json.len() as u64,
    });

    group.bench_function("inflate", |b| {
        b.iter(|| {
            let mut decoder = flate2::read::MultiGzDecoder::new(&gz[..]);
            let mut out = Vec::with_capacity(json.len());
            decoder.read_to_end(&mut out).unwrap();
            black_box(out.len())
        })
    });
    group.bench_function("frame", |b| {
        b.iter(|| {
            let mut framer = Framer::new();
            let mut frames = Frames::new();
            let mut count = 0;
            for piece in json.chunks(64 * 1024) {
                framer.push(piece, &mut frames).unwrap();
                count += frames.len();
                frames.clear();
            }
            black_box(count)
        })
    });
    group.bench_function("frame+raw_decode", |b| {
        b.iter(|| black_box(decode(&json).len()))
    });
    group.bench_function("gunzip+frame+raw_decode", |b| {
        b.iter(|| black_box(gunzip_and_decode(&gz).len()))
    });

    let raw = decode(&json);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut transform = runtime
        .block_on(Transform::plan(&TransformSql::builtin(), BATCH))
        .unwrap();
    group.bench_function("transform", |b| {
        b.iter(|| black_box(runtime.block_on(transform.run(raw.clone())).unwrap().len()))
    });

    let out = runtime.block_on(transform.run(raw.clone())).unwrap();
    let schema = transform.output_schema();
    let types: Vec<(usize, PgType)> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (i, logs_type(f.name())))
        .collect();
    let encoder = CopyEncoder::new(types);
    group.bench_function("copy_encode", |b| {
        b.iter(|| {
            let mut buffer = Vec::with_capacity(json.len() * 2);
            encoder.begin(&mut buffer);
            for batch in &out {
                encoder.encode(batch, &mut buffer).unwrap();
            }
            encoder.end(&mut buffer);
            black_box(buffer.len())
        })
    });
    group.finish();

    parquet_write(c, &runtime, &mut transform);
}

/// Records written per measured Parquet file: enough for several row groups.
const PARQUET_RECORDS: u64 = 100_000;

/// The Parquet sink's writer stage (split by day, encode, ZSTD, write to the spool) at
/// several row group sizes and ZSTD levels; prints the bytes per record of each.
fn parquet_write(c: &mut Criterion, runtime: &tokio::runtime::Runtime, transform: &mut Transform) {
    use std::sync::Arc;

    use ingestor::sink::parquet::{DayWriters, Lake, LakeLocation, LakeOptions};

    let config = SampleConfig {
        records: PARQUET_RECORDS,
        gzip: false,
        ..SampleConfig::default()
    };
    let mut json = Vec::new();
    write_sample(&config, &mut json).unwrap();
    let out = runtime.block_on(transform.run(decode(&json))).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let mut group = c.benchmark_group("parquet_write");
    group.sample_size(10);
    group.throughput(Throughput::ElementsAndBytes {
        elements: PARQUET_RECORDS,
        bytes: json.len() as u64,
    });
    for (row_group_rows, zstd_level) in [(32_768, 3), (131_072, 1), (131_072, 3), (1 << 20, 3)] {
        let options = LakeOptions {
            row_group_rows,
            zstd_level,
            ..LakeOptions::default()
        };
        let location = LakeLocation::Local(dir.path().to_path_buf());
        let lake = Arc::new(Lake::new(location, options, transform.output_schema()).unwrap());
        let write = || {
            let mut writers = DayWriters::new(Arc::clone(&lake), "bench".into(), "bench");
            for batch in &out {
                writers.write(batch).unwrap();
            }
            writers.finish().unwrap()
        };
        let bytes: u64 = write().iter().map(|s| s.bytes).sum();
        eprintln!(
            "parquet rg={row_group_rows} zstd={zstd_level}: {:.0} bytes/record ({:.1}% of the JSON)",
            bytes as f64 / PARQUET_RECORDS as f64,
            100.0 * bytes as f64 / json.len() as f64
        );
        let name = format!("rg{row_group_rows}_zstd{zstd_level}");
        group.bench_function(name, |b| b.iter(|| black_box(write().len())));
    }
    group.finish();
}

/// The column types of the built-in `logs` table.
fn logs_type(column: &str) -> PgType {
    match column {
        "id" => PgType::Uuid,
        "timestamp" | "last_updated" => PgType::Timestamptz,
        "query" | "headers" | "params" | "raw_data" => PgType::Jsonb,
        "auth_user_id" | "source_index" => PgType::Int8,
        "pid" | "remote_port" | "document_count" => PgType::Int4,
        "processing_time_ms" => PgType::Float8,
        "cache_hit" => PgType::Bool,
        _ => PgType::Text,
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
