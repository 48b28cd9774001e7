//! The Parquet sink (`--sink parquet=URL`) and Parquet input: day partitions across
//! midnight, both sinks at once, a killed run, `--force`, a lake on the S3-protocol
//! server, and the round trip lake -> PostgreSQL against the direct path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::s3::{S3Server, put};
use crate::util;

/// 2024-11-05T00:00:00Z in epoch milliseconds.
const MIDNIGHT_MS: i64 = 1_730_764_800_000;

/// `n` pino records, one per second, starting `before` seconds before midnight.
fn records_around_midnight(n: usize, before: i64) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "level": 30,
                "time": MIDNIGHT_MS + (i as i64 - before) * 1000,
                "msg": format!("record {i}"),
                "req": {"method": "GET", "url": format!("/items/{i}"), "query": {"page": i}},
            })
        })
        .collect()
}

/// Every file under `root`, relative, sorted.
pub fn files_under(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    if root.exists() {
        walk(root, root, &mut out);
    }
    out.sort();
    out
}

/// The `.parquet` files of a local lake (relative paths).
pub fn parquet_files(root: &Path) -> Vec<String> {
    files_under(root)
        .into_iter()
        .filter(|f| f.ends_with(".parquet"))
        .collect()
}

fn read_parquet(bytes: bytes::Bytes) -> Vec<RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(bytes)
        .unwrap()
        .build()
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The batches of each Parquet file of a local lake.
pub fn read_lake(root: &Path) -> BTreeMap<String, Vec<RecordBatch>> {
    parquet_files(root)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(root.join(&f)).unwrap();
            (f, read_parquet(bytes.into()))
        })
        .collect()
}

fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

/// The UTC days of the `timestamp` column.
fn days(batches: &[RecordBatch]) -> Vec<String> {
    let mut days: Vec<String> = batches
        .iter()
        .flat_map(|b| {
            let column = b.column_by_name("timestamp").unwrap();
            let micros =
                arrow::compute::cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                    .unwrap();
            let micros = micros.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
            (0..micros.len())
                .map(|i| {
                    chrono::DateTime::from_timestamp_micros(micros.value(i))
                        .unwrap()
                        .format("%Y-%m-%d")
                        .to_string()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    days.dedup();
    days
}

/// The `parquet` entry of a job's metadata.
async fn lake_metadata(pool: &PgPool) -> Value {
    sqlx::query_scalar("SELECT metadata->'parquet' FROM processed_files")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn parquet_files_are_partitioned_by_day_across_midnight(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let records = records_around_midnight(100, 40);
    let path = util::write_file(
        dir.path(),
        "app-1.json.gz",
        &util::gzip(&util::json_array(&records)),
    );
    let sink = format!("parquet={}", lake.display());
    let run = util::ingest(&pool, &path, &["--sink", &sink]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_ingested"), 100);

    let files = read_lake(&lake);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("date=2024-11-04/app-1-"), "{names:?}");
    assert!(names[1].starts_with("date=2024-11-05/app-1-"), "{names:?}");
    let before = &files[names[0]];
    let after = &files[names[1]];
    assert_eq!((rows(before), rows(after)), (40, 60));
    assert_eq!(days(before), ["2024-11-04"]);
    assert_eq!(days(after), ["2024-11-05"]);

    // ZSTD, and the footer names the source object.
    for name in &names {
        let bytes = bytes::Bytes::from(std::fs::read(lake.join(name)).unwrap());
        let reader = parquet::file::serialized_reader::SerializedFileReader::new(bytes).unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader);
        for group in metadata.row_groups() {
            for column in group.columns() {
                assert!(
                    matches!(column.compression(), parquet::basic::Compression::ZSTD(_)),
                    "{name}: {:?}",
                    column.compression()
                );
            }
        }
        let source = metadata.file_metadata().key_value_metadata().unwrap();
        assert!(
            source.iter().any(|kv| kv.key == "ingestor.source"
                && kv.value.as_deref() == Some(path.to_str().unwrap()))
        );
    }

    // The transform's output schema, JSON columns as strings; nothing went to `logs`.
    let schema = before[0].schema();
    assert!(schema.field_with_name("raw_data").is_ok());
    assert!(matches!(
        schema.field_with_name("query").unwrap().data_type(),
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
    ));
    let query = after[0].column_by_name("query").unwrap();
    let query = arrow::compute::cast(query, &DataType::Utf8).unwrap();
    assert_eq!(query.as_string::<i32>().value(0), r#"{"page":40}"#);
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 0);

    // The job records what it published, and the spool is empty.
    let metadata = lake_metadata(&pool).await;
    assert_eq!(metadata["rows"], 100);
    let recorded: Vec<&str> = metadata["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(recorded, names);
    assert_eq!(
        files_under(&lake.join("_ingestor_tmp")),
        Vec::<String>::new()
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn both_sinks_get_the_same_rows(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    util::generate(&dir.path().join("in"), 3, 2_000).await;
    let sink = format!("postgres,parquet={}", lake.display());
    let run = util::ingest(&pool, &dir.path().join("in"), &["--sink", &sink]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let in_table = util::count(&pool, "SELECT count(*) FROM logs").await;
    let in_lake: usize = read_lake(&lake).values().map(|b| rows(b)).sum();
    assert_eq!(in_table as usize, in_lake);
    assert_eq!(run.count("records_ingested") as usize, in_lake);
    assert!(in_lake > 5_000, "{in_lake}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_killed_run_leaves_no_partial_file_and_the_rerun_completes(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    util::generate(&dir.path().join("in"), 1, 40_000).await;
    let input = dir.path().join("in").to_str().unwrap().to_string();
    let sink = format!("postgres,parquet={}", lake.display());
    let slow = [
        "ingest-file",
        "--json",
        "--sink",
        &sink,
        "--batch-records",
        "500",
        "--max-records-per-sec",
        "10000",
        "--lease-secs",
        "1",
        &input,
    ];
    let mut child = util::command(&pool, &slow).spawn().unwrap();
    // Killed while the file is being written: rows are streaming into its open COPY and
    // its Parquet file into the spool.
    let spool = lake.join("_ingestor_tmp");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while files_under(&spool).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no spool file");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    child.kill().await.unwrap(); // SIGKILL
    assert_eq!(
        parquet_files(&lake),
        Vec::<String>::new(),
        "no visible file"
    );
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 0);
    assert!(
        !files_under(&spool).is_empty(),
        "the spool file of the killed run"
    );

    util::expire_leases(&pool).await;
    let path = input.as_str();
    let run = util::run(&pool, &["ingest-file", "--json", "--sink", &sink, path]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let in_table = util::count(&pool, "SELECT count(*) FROM logs").await;
    let rejected = util::count(&pool, "SELECT count(*) FROM rejected_records").await;
    assert_eq!(in_table + rejected, 40_000);
    let in_lake: usize = read_lake(&lake).values().map(|b| rows(b)).sum();
    assert_eq!(in_lake as i64, in_table);
    assert_eq!(files_under(&spool), Vec::<String>::new(), "spool cleaned");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_left_at_a_checkpoint_starts_over_when_a_lake_is_added(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    util::generate(&dir.path().join("in"), 1, 20_000).await;
    let input = dir.path().join("in").to_str().unwrap().to_string();
    let first = [
        "ingest-file",
        "--chunk-records",
        "500",
        "--batch-records",
        "250",
        "--lease-secs",
        "1",
        &input,
    ];
    let mut child = util::command(&pool, &first).spawn().unwrap();
    util::wait_until(&pool, util::COMMITTED, 2_000).await;
    child.kill().await.unwrap();
    let at_kill = util::count(&pool, util::COMMITTED).await;
    assert!(at_kill < 20_000, "killed mid-file");

    util::expire_leases(&pool).await;
    let sink = format!("postgres,parquet={}", lake.display());
    let run = util::run(&pool, &["ingest-file", "--json", "--sink", &sink, &input]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let (in_table, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT source_index) FROM logs")
            .fetch_one(&pool)
            .await
            .unwrap();
    let rejected = util::count(&pool, "SELECT count(*) FROM rejected_records").await;
    assert_eq!(
        (in_table + rejected, distinct),
        (20_000, in_table),
        "no duplicates"
    );
    let in_lake: usize = read_lake(&lake).values().map(|b| rows(b)).sum();
    assert_eq!(in_lake as i64, in_table, "the lake has the whole file");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn force_replaces_the_objects_parquet_output(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let sink = format!("parquet={}", lake.display());
    let name = "app.json";
    let path = util::write_file(
        dir.path(),
        name,
        &util::json_array(&records_around_midnight(10, 5)),
    );
    let run = util::ingest(&pool, &path, &["--sink", &sink]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let first = parquet_files(&lake);
    assert_eq!(first.len(), 2);

    // The object changes: all its records are now after midnight.
    util::write_file(
        dir.path(),
        name,
        &util::json_array(&records_around_midnight(7, 0)),
    );
    let skipped = util::ingest(&pool, &path, &["--sink", &sink]).await;
    assert_eq!(skipped.count("files_skipped"), 1);
    let forced = util::ingest(&pool, &path, &["--sink", &sink, "--force"]).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    let files = read_lake(&lake);
    let names: Vec<&String> = files.keys().collect();
    assert_eq!(names, [&first[1]], "the day it no longer has is removed");
    assert_eq!(rows(&files[&first[1]]), 7);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_lake_on_the_s3_protocol_server(pool: PgPool) {
    let server = S3Server::start().await;
    let logs = server.bucket("logs").await;
    let lake = server.bucket("lake").await;
    for i in 0..3 {
        let records = records_around_midnight(50, 10 * i);
        put(
            &logs,
            &format!("2024/11/0{i}/app.json.gz"),
            util::gzip(&util::json_array(&records)),
        )
        .await;
    }
    let sinks = ["--sink", "postgres", "--sink", "parquet=s3://lake/history/"];
    let written = crate::run::run(&pool, &server.endpoint(), "logs", &sinks).await;
    assert_eq!(written.code, 0, "{}", written.stderr);

    let listed: Vec<_> = lake
        .list(Some(&object_store::path::Path::from("history")))
        .try_collect()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed.iter().map(|m| m.location.to_string()).collect();
    keys.sort();
    // Object 0 is all after midnight; objects 1 and 2 span it.
    assert_eq!(keys.len(), 5, "{keys:?}");
    assert!(
        keys.iter()
            .all(|k| k.starts_with("history/date=2024-11-0") && k.ends_with(".parquet"))
    );
    let mut total = 0;
    for key in &keys {
        let bytes = lake
            .get(&object_store::path::Path::from(key.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let batches = read_parquet(bytes);
        let day = key.split('/').nth(1).unwrap().trim_start_matches("date=");
        assert_eq!(days(&batches), [day]);
        total += rows(&batches);
    }
    assert_eq!(total, 150);
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 150);

    // The lake read back from the S3-protocol server (range and suffix requests).
    sqlx::query("CREATE TABLE relogs (LIKE logs INCLUDING ALL)")
        .execute(&pool)
        .await
        .unwrap();
    let lake_args = [
        "--prefix",
        "history/",
        "--include",
        "*.parquet",
        "--table",
        "relogs",
    ];
    let read = crate::run::run(&pool, &server.endpoint(), "lake", &lake_args).await;
    assert_eq!(read.code, 0, "{}", read.stderr);
    assert_eq!(read.count("records_ingested"), 150);
    let same = util::count(
        &pool,
        "SELECT count(*) FROM logs JOIN relogs USING (raw_data, \"timestamp\", message)",
    )
    .await;
    assert_eq!(same, 150);
    assert_eq!(util::count(&pool, "SELECT count(*) FROM relogs").await, 150);
}

/// Columns compared between the direct path and the round trip: all but the ones that
/// name where a row was read from (the lake's files, in the round trip).
const SAME_COLUMNS: &str = "\"timestamp\", level, method, url, query, headers, params, context, \
    message, hostname, auth_user_id, pid, remote_address, remote_port, processing_time_ms, \
    cache_hit, document_count, last_updated, raw_data, request_id";

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_lake_reingested_gives_the_rows_of_the_direct_path(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let input = dir.path().join("in");
    util::generate(&input, 2, 3_000).await;
    let sink = format!("postgres,parquet={}", lake.display());
    let direct = util::ingest(&pool, &input, &["--sink", &sink]).await;
    assert_eq!(direct.code, 0, "{}", direct.stderr);

    sqlx::query("CREATE TABLE relogs (LIKE logs INCLUDING ALL)")
        .execute(&pool)
        .await
        .unwrap();
    let again = util::ingest(&pool, &lake, &["--table", "relogs"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.count("records_rejected"), 0);

    let compare = |a: &str, b: &str| {
        format!(
            "SELECT count(*) FROM (SELECT {SAME_COLUMNS} FROM {a} EXCEPT ALL SELECT {SAME_COLUMNS} FROM {b}) d"
        )
    };
    for (a, b) in [("logs", "relogs"), ("relogs", "logs")] {
        let differ: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(compare(a, b)))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(differ, 0, "rows of {a} missing from {b}");
    }
    let (direct_rows, lake_rows): (i64, i64) =
        sqlx::query_as("SELECT (SELECT count(*) FROM logs), (SELECT count(*) FROM relogs)")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(direct_rows, lake_rows);
    assert!(lake_rows > 5_000);
    // Lineage: each row names the lake file and row it came from.
    let from_lake = util::count(
        &pool,
        "SELECT count(*) FROM relogs WHERE source_key LIKE '%/date=%.parquet'",
    )
    .await;
    assert_eq!(from_lake, lake_rows);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn preview_reads_a_parquet_file(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let path = util::write_file(
        dir.path(),
        "app.json",
        &util::json_array(&records_around_midnight(5, 0)),
    );
    let sink = format!("parquet={}", lake.display());
    assert_eq!(util::ingest(&pool, &path, &["--sink", &sink]).await.code, 0);
    let file: PathBuf = lake.join(&parquet_files(&lake)[0]);
    let shown = util::run(&pool, &["preview", "--limit", "3", file.to_str().unwrap()]).await;
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    assert!(shown.stdout.contains("/items/2"), "{}", shown.stdout);
    assert!(!shown.stdout.contains("/items/3"), "{}", shown.stdout);

    // A Parquet file without the original records is refused with the reason.
    let other = dir.path().join("other.parquet");
    let batch = RecordBatch::try_from_iter([(
        "x",
        std::sync::Arc::new(arrow::array::Int64Array::from(vec![1])) as _,
    )])
    .unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&other).unwrap(),
        batch.schema(),
        None,
    )
    .unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let refused = util::ingest(&pool, &other, &[]).await;
    assert_eq!(refused.code, 3, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("raw_data") && refused.stderr.contains("other.parquet"),
        "{}",
        refused.stderr
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_transform_without_a_timestamp_cannot_feed_the_lake(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(dir.path(), "t.sql", b"SELECT msg, level FROM raw_logs");
    let path = util::write_file(
        dir.path(),
        "app.json",
        &util::json_array(&records_around_midnight(3, 0)),
    );
    let sink = format!("parquet={}", dir.path().join("lake").display());
    let transform = sql.to_str().unwrap();
    let refused = util::ingest(&pool, &path, &["--sink", &sink, "--transform", transform]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused
            .stderr
            .contains("partitioned by the day of column `timestamp`"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM processed_files").await,
        0
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn bad_records_in_a_parquet_input_are_rejected_one_by_one(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("broken.parquet");
    // The second value would swallow the records after it if it were spliced in as is.
    let raw = arrow::array::StringArray::from(vec![
        Some(r#"{"time":1730764800000,"msg":"first"}"#),
        Some(r#"{"msg":"unclosed"#),
        None,
        Some(r#"{"time":1730764800001,"msg":"last"}"#),
    ]);
    let batch = RecordBatch::try_from_iter([("raw_data", std::sync::Arc::new(raw) as _)]).unwrap();
    let file = std::fs::File::create(&input).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();

    let run = util::ingest(&pool, &input, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("records_ingested"), run.count("records_rejected")),
        (2, 2)
    );
    let messages: Vec<String> =
        sqlx::query_scalar("SELECT message FROM logs ORDER BY source_index")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(messages, ["first", "last"]);
    let rejected: Vec<(i64, String)> =
        sqlx::query_as("SELECT source_index, raw FROM rejected_records ORDER BY source_index")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].0, 1);
    assert!(rejected[0].1.contains("unclosed"), "{:?}", rejected[0]);
    assert_eq!(rejected[1], (2, "null".to_string()));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn the_byte_rate_limit_holds_for_parquet_input(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    util::generate(&dir.path().join("in"), 1, 12_000).await;
    let sink = format!("parquet={}", lake.display());
    let written = util::ingest(&pool, &dir.path().join("in"), &["--sink", &sink]).await;
    assert_eq!(written.code, 0, "{}", written.stderr);

    // The records' JSON read back from the lake counts against --max-bytes-per-sec.
    let limit = 2_000_000_u64;
    let started = std::time::Instant::now();
    let limited = util::ingest(&pool, &lake, &["--max-bytes-per-sec", &limit.to_string()]).await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(limited.code, 0, "{}", limited.stderr);
    assert_eq!(limited.count("records_ingested"), 12_000);
    let raw: i64 = util::count(
        &pool,
        "SELECT sum(octet_length(raw_data::text))::bigint FROM logs",
    )
    .await;
    // Everything but the first batch (4,096 of 12,000 records) waits for its slot. jsonb's
    // text adds spaces, so `raw` overstates the JSON read by ~15%: allow 30% below. Without
    // the limit this takes a fifth of the bound.
    let expected = raw as f64 * (1.0 - 4096.0 / 12_000.0) / limit as f64;
    assert!(
        elapsed >= expected * 0.7,
        "{elapsed:.2} s for {raw} bytes at {limit} B/s (at least {expected:.2} s expected)"
    );
}

/// `ingestor ARGS` with at most `fds` open descriptors (`ulimit -n`), to completion.
async fn run_with_fd_limit(pool: &PgPool, fds: u32, args: &[&str]) -> util::Run {
    let output = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {fds} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_ingestor"))
        .args(args)
        .env("DATABASE_URL", util::db_url(pool))
        .env("RUST_LOG", "info")
        .env_remove("INGESTOR_TRANSFORM")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    util::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The `message` column of every file of a local lake, sorted.
fn messages(lake: &BTreeMap<String, Vec<RecordBatch>>) -> Vec<String> {
    let mut out: Vec<String> = lake
        .values()
        .flatten()
        .flat_map(|batch| {
            let column = batch.column_by_name("message").unwrap();
            let column = arrow::compute::cast(column, &DataType::Utf8).unwrap();
            column
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_spanning_three_years_of_days_completes_with_few_descriptors(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    const DAY_MS: i64 = 86_400_000;
    const DAYS: i64 = 1_100;
    let start = MIDNIGHT_MS - DAYS * DAY_MS;
    let record = |time: i64, msg: String| json!({"level": 30, "time": time, "msg": msg});
    // One record per day over three years, then the first day again: its writer was closed
    // long before (at most 32 are open), so that record starts a second part of the day.
    let mut records: Vec<Value> = (0..DAYS)
        .map(|d| record(start + d * DAY_MS + 3_600_000, format!("day {d:04}")))
        .collect();
    let mut expected: Vec<String> = (0..DAYS).map(|d| format!("day {d:04}")).collect();
    records.push(record(start + 7_200_000, "day 0000 again".into()));
    let path = util::write_file(dir.path(), "years.json", &util::json_array(&records));
    assert!(std::fs::metadata(&path).unwrap().len() < 100_000);
    let sink = format!("parquet={}", lake.display());
    let input = path.to_str().unwrap();
    let args = [
        "ingest-file",
        "--json",
        "--batch-records",
        "100",
        "--sink",
        &sink,
    ];
    let run = run_with_fd_limit(&pool, 256, &[&args[..], &[input]].concat()).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_ingested"), DAYS as u64 + 1);

    let files = read_lake(&lake);
    assert_eq!(files.len(), DAYS as usize + 1);
    let first_day: Vec<&String> = files
        .keys()
        .filter(|f| f.starts_with("date=2021-11-01/"))
        .collect();
    assert_eq!(first_day.len(), 2, "{first_day:?}");
    assert!(first_day[0].ends_with("-1.parquet"), "{first_day:?}");
    assert_eq!(
        files[first_day[0]]
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        1
    );
    expected.push("day 0000 again".into());
    expected.sort();
    assert_eq!(messages(&files), expected, "every record once");
    let recorded = lake_metadata(&pool).await["files"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(recorded, DAYS as usize + 1);

    // Without the last record the second part of the first day is no longer produced:
    // --force removes it.
    records.pop();
    expected.retain(|m| m != "day 0000 again");
    util::write_file(dir.path(), "years.json", &util::json_array(&records));
    let forced = [&args[..], &["--force", input]].concat();
    let run = run_with_fd_limit(&pool, 256, &forced).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let files = read_lake(&lake);
    assert_eq!(files.len(), DAYS as usize);
    assert!(files.keys().all(|f| !f.ends_with("-1.parquet")));
    assert_eq!(messages(&files), expected);
}

/// A Parquet-only sink writes no row to PostgreSQL until the file's end: reading a file for
/// longer than the idle-transaction timeout (twice the lease) must not cost the file its
/// transaction.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_read_longer_than_the_idle_timeout_reaches_the_lake(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let sink = format!("parquet={}", lake.display());
    let path = util::write_file(
        dir.path(),
        "slow.json",
        &util::json_array(&records_around_midnight(8_000, 4_000)),
    );
    // 8,000 records at 2,000 a second: four seconds, twice the two-second idle timeout.
    let pace = ["--lease-secs", "1", "--max-records-per-sec", "2000"];
    let mut args = vec!["--sink", sink.as_str()];
    args.extend(pace);
    let run = util::ingest(&pool, &path, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 1);
    let in_lake: usize = read_lake(&lake).values().map(|b| rows(b)).sum();
    assert_eq!(in_lake, 8_000);
}
