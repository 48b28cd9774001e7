//! Bad input: rejected records, files that cannot be read to their end, and the other files
//! going on.

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::util;

fn records(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"i": i, "msg": format!("record {i} with some padding text")}))
        .collect()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn rejected_elements_are_kept_and_the_rest_ingested(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let array = b"[{\"a\":1}, 42, \"text\", {\"b\": }, null, [1,2], {\"c\":3}]";
    let ndjson = b"{\"a\":1}\nnot json at all\n{\"b\":2\n{\"c\":3}\n";
    util::write_file(dir.path(), "array.json", array);
    util::write_file(dir.path(), "lines.ndjson.gz", &util::gzip(ndjson));
    let run = util::ingest(&pool, dir.path(), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_ingested"), 4);
    assert_eq!(run.count("records_rejected"), 7);
    assert_eq!(run.count("files_completed"), 2);
    let rejected: Vec<(String, i64, String, String)> = sqlx::query_as(
        "SELECT s3_key, source_index, raw, error FROM rejected_records ORDER BY s3_key, source_index",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let summary: Vec<(i64, &str)> = rejected.iter().map(|r| (r.1, r.2.as_str())).collect();
    assert_eq!(
        summary,
        vec![
            (1, "42"),
            (2, "\"text\""),
            (3, "{\"b\": }"),
            (4, "null"),
            (5, "[1,2]"),
            (1, "not json at all"),
            (2, "{\"b\":2"),
        ]
    );
    assert!(
        rejected[0].3.contains("not a JSON object"),
        "{}",
        rejected[0].3
    );
    assert!(rejected[2].3.contains("invalid JSON"), "{}", rejected[2].3);
    let ingested: Vec<i64> = sqlx::query_scalar(
        "SELECT source_index FROM logs WHERE source_key LIKE '%array.json' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(ingested, vec![0, 6]);
}

async fn metadata_error(pool: &PgPool, key: &str) -> (String, String) {
    let (status, error): (String, Option<String>) =
        sqlx::query_as("SELECT status, metadata->>'error' FROM processed_files WHERE s3_key = $1")
            .bind(key)
            .fetch_one(pool)
            .await
            .unwrap();
    (status, error.unwrap_or_default())
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn truncated_gzip_fails_with_offset_keeps_records_and_retry_never_duplicates(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let full = util::gzip(&util::json_array(&records(20_000)));
    let truncated = util::write_file(dir.path(), "truncated.json.gz", &full[..full.len() * 2 / 3]);
    let good = util::write_file(dir.path(), "good.json", &util::json_array(&records(10)));

    let run = util::ingest(&pool, dir.path(), &["--chunk-records", "1000"]).await;
    assert_eq!(
        run.code, 3,
        "exit status 3 when a file FAILED:\n{}",
        run.stderr
    );
    assert_eq!(run.count("files_failed"), 1);
    assert_eq!(run.count("files_completed"), 1);
    let (status, error) = metadata_error(&pool, &util::key_of(&truncated)).await;
    assert_eq!(status, "FAILED");
    assert!(
        error.contains("byte"),
        "the cause names the offset: {error}"
    );
    let kept = util::count(
        &pool,
        "SELECT count(*) FROM logs WHERE source_key LIKE '%truncated.json.gz'",
    )
    .await;
    assert!(kept > 1000, "records before the fault are kept ({kept})");
    assert_eq!(
        metadata_error(&pool, &util::key_of(&good)).await.0,
        "COMPLETED"
    );

    let again = util::ingest(&pool, &truncated, &["--chunk-records", "1000"]).await;
    assert_eq!(again.code, 3);
    let after = util::count(
        &pool,
        "SELECT count(*) FROM logs WHERE source_key LIKE '%truncated.json.gz'",
    )
    .await;
    let distinct = util::count(
        &pool,
        "SELECT count(DISTINCT source_index) FROM logs WHERE source_key LIKE '%truncated.json.gz'",
    )
    .await;
    assert_eq!((after, distinct), (kept, kept), "a retry never duplicates");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn unclosed_array_fails_with_offset(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = util::json_array(&records(5));
    let cut = bytes.iter().rposition(|b| *b == b']').unwrap();
    bytes.truncate(cut);
    let path = util::write_file(dir.path(), "unclosed.json", &bytes);
    let run = util::ingest(&pool, &path, &[]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let (status, error) = metadata_error(&pool, &util::key_of(&path)).await;
    assert_eq!(status, "FAILED");
    assert!(
        error.contains(&format!("at byte {}", bytes.len())),
        "{error}"
    );
    assert!(error.contains("never closed"), "{error}");
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 5);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn corrupt_gzip_fails_naming_the_cause(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = util::gzip(&util::json_array(&records(100)));
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5a;
    }
    let path = util::write_file(dir.path(), "corrupt.json.gz", &bytes);
    let run = util::ingest(&pool, &path, &[]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let (status, error) = metadata_error(&pool, &util::key_of(&path)).await;
    assert_eq!(status, "FAILED");
    assert!(error.contains("byte"), "{error}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn empty_and_whitespace_files_complete_with_no_records(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    util::write_file(dir.path(), "empty.json", b"");
    util::write_file(dir.path(), "blank.ndjson", b" \n\t\n");
    util::write_file(
        dir.path(),
        "empty-array.json.gz",
        &util::gzip(b"\xef\xbb\xbf[ ]"),
    );
    let run = util::ingest(&pool, dir.path(), &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 3);
    assert_eq!(run.count("records_ingested"), 0);
}

/// Valid JSON that `jsonb` cannot store (a number beyond `numeric`, a `\u0000`) is rejected
/// record by record; it must not fail the chunk and with it the file.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn values_jsonb_cannot_store_are_rejected_not_fatal(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let bytes = br#"[{"a":1}, {"n":1e131072}, {"m":"x\u0000y"}, {"b":2}]"#;
    let path = util::write_file(dir.path(), "numeric.json", bytes);
    let run = util::ingest(&pool, &path, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("records_ingested"), run.count("records_rejected")),
        (2, 2)
    );
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT error FROM rejected_records ORDER BY source_index")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(errors[0].contains("numeric"), "{}", errors[0]);
    assert!(errors[1].contains("\\u0000"), "{}", errors[1]);
}

/// NDJSON lines a gzip decoder yields from `bytes` before its fault: the complete records
/// `zcat` would show.
fn lines_before_fault(bytes: &[u8]) -> usize {
    use std::io::Read;
    let mut decoder = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match decoder.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out.iter().filter(|b| **b == b'\n').count()
}

fn ndjson(n: usize) -> Vec<u8> {
    records(n)
        .iter()
        .map(|r| format!("{r}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Issue 14 item 3: a gzip cut short keeps every complete record decoded before the fault,
/// for a small file (all of it in the first read) and a large one.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn truncated_gzip_keeps_every_record_decoded_before_the_fault(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for (name, n) in [("small.ndjson.gz", 40), ("large.ndjson.gz", 10_000)] {
        let full = util::gzip(&ndjson(n));
        let cut = &full[..full.len() / 2];
        let lines = lines_before_fault(cut);
        assert!(
            lines > 0 && lines < n,
            "{name}: {lines} lines before the cut"
        );
        util::write_file(dir.path(), name, cut);
        expected.push((name, lines as i64));
    }
    let run = util::ingest(&pool, dir.path(), &[]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.count("files_failed"), 2);
    for (name, lines) in expected {
        let (kept, distinct): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(DISTINCT source_index) FROM logs WHERE source_key LIKE '%/' || $1",
        )
        .bind(name)
        .fetch_one(&pool)
        .await
        .unwrap();
        // The decoded text may end with a complete record whose newline was cut off.
        assert!(
            kept == lines || kept == lines + 1,
            "{name}: {kept} records kept, {lines} complete lines decoded before the fault"
        );
        assert_eq!(distinct, kept);
    }
}

/// Issue 14 item 3: a gzip whose CRC is wrong keeps every record (all were decoded), and
/// ends FAILED naming the cause.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn gzip_with_a_bad_crc_keeps_every_record_and_fails(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = util::gzip(&util::json_array(&records(23)));
    let crc = bytes.len() - 8;
    bytes[crc] ^= 0xff;
    let path = util::write_file(dir.path(), "crc.json.gz", &bytes);
    let run = util::ingest(&pool, &path, &[]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let (status, error) = metadata_error(&pool, &util::key_of(&path)).await;
    assert_eq!(status, "FAILED");
    assert!(!error.is_empty(), "the cause is stored");
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 23);
}

/// Issue 14 item 8: rows the database refuses (a CHECK constraint, a trigger) go to
/// `rejected_records` with the database's message and their source index; the file goes
/// on and completes, every other record once.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn rows_the_database_refuses_are_rejected_and_the_file_goes_on(pool: PgPool) {
    sqlx::raw_sql(
        "ALTER TABLE logs ADD CONSTRAINT no_forbidden CHECK (message IS DISTINCT FROM 'forbidden');
         CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.message = 'poison' THEN RAISE EXCEPTION 'poison is not allowed here'; END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON logs
             FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let bad = [
        (0, "forbidden"),
        (2089, "forbidden"),
        (2090, "poison"),
        (4999, "poison"),
    ];
    let records: Vec<Value> = (0..5000)
        .map(|i| {
            let message = bad
                .iter()
                .find(|(at, _)| *at == i)
                .map_or_else(|| format!("record {i}"), |(_, m)| m.to_string());
            json!({"i": i, "message": message})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = util::write_file(dir.path(), "refused.json", &util::json_array(&records));
    let run = util::ingest(&pool, &path, &["--chunk-records", "1000"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("records_ingested"), run.count("records_rejected")),
        (4996, 4)
    );
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT source_index) FROM logs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (4996, 4996));
    let rejected: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT source_index, raw, error FROM rejected_records ORDER BY source_index",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let indices: Vec<i64> = rejected.iter().map(|r| r.0).collect();
    assert_eq!(indices, vec![0, 2089, 2090, 4999]);
    assert!(rejected[1].1.contains("forbidden"), "{}", rejected[1].1);
    assert!(rejected[1].2.contains("no_forbidden"), "{}", rejected[1].2);
    assert!(
        rejected[2].2.contains("poison is not allowed"),
        "{}",
        rejected[2].2
    );
    assert!(
        rejected.iter().all(|r| !r.2.contains("line")),
        "never PostgreSQL's own line numbers: {rejected:?}"
    );
    let (status, checkpoint): (String, i64) =
        sqlx::query_as("SELECT status, checkpoint FROM processed_files")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), checkpoint), ("COMPLETED", 5000));
}
