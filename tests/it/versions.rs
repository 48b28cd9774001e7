//! Each attempt reads one version of an object: objects replaced after a crash or after
//! they were COMPLETED never mix two versions' records (issue 14 item 2).

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::s3::{S3Server, put};
use crate::util;

/// NDJSON of `n` records whose messages name `version`.
fn version(version: &str, n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"i": i, "message": format!("{version} record {i}")})
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// Rows of `key_like` by version prefix of their message, and whether all are distinct.
async fn rows_by_version(pool: &PgPool, key_like: &str) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT split_part(message, ' ', 1), count(DISTINCT source_index) FROM logs
         WHERE source_key LIKE $1 GROUP BY 1 ORDER BY 1",
    )
    .bind(key_like)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Same length, new content: replace a file in place with a new modification time.
fn replace(path: &Path, bytes: &[u8]) {
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(path, bytes).unwrap();
}

/// A worker killed at a checkpoint, the file replaced, the re-run: the new version only,
/// never the old version's first records followed by the new one's tail.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_replaced_after_a_crash_starts_over_instead_of_splicing(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let path = util::write_file(dir.path(), "app.ndjson", &version("v1", 30_000));
    let file = path.to_str().unwrap().to_string();
    let args = [
        "ingest-file",
        "--json",
        "--chunk-records",
        "500",
        "--batch-records",
        "250",
        "--lease-secs",
        "1",
        "--max-records-per-sec",
        "20000",
        &file,
    ];
    let mut child = util::command(&pool, &args).spawn().unwrap();
    util::wait_until(&pool, util::COMMITTED, 3_000).await;
    child.kill().await.unwrap();
    let committed = util::count(&pool, "SELECT count(*) FROM logs").await;
    assert!((3_000..30_000).contains(&committed), "{committed}");

    replace(&path, &version("v2", 20_000));
    util::expire_leases(&pool).await;
    // The same command without the rate limit.
    let rerun: Vec<&str> = args[..args.len() - 3]
        .iter()
        .copied()
        .chain([file.as_str()])
        .collect();
    let run = util::run(&pool, &rerun).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 1);
    assert_eq!(
        rows_by_version(&pool, "%app.ndjson").await,
        vec![("v2".to_string(), 20_000)]
    );
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM logs").await,
        20_000
    );
}

/// `run` over a local bucket: an object replaced after it was COMPLETED is ingested again
/// as its new version (`files_replaced`), its old rows and rejects gone; `--on-change
/// ignore` keeps the old rows.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn run_reingests_an_object_replaced_after_it_was_completed(pool: PgPool) {
    let root = tempfile::tempdir().unwrap();
    let bucket = root.path().join("logs");
    std::fs::create_dir(&bucket).unwrap();
    let mut v1 = version("v1", 100);
    v1.extend_from_slice(b"not json\n");
    let a = util::write_file(&bucket, "a.ndjson", &v1);
    util::write_file(&bucket, "b.ndjson", &version("b", 50));
    let root_arg = root.path().to_str().unwrap();
    let run = |extra: &'static [&'static str]| {
        let pool = pool.clone();
        let root = root_arg.to_string();
        async move {
            let mut args = vec![
                "run",
                "--json",
                "--local-buckets",
                &root,
                "--bucket",
                "logs",
            ];
            args.extend_from_slice(extra);
            util::run(&pool, &args).await
        }
    };
    let first = run(&[]).await;
    assert_eq!(
        (first.code, first.count("files_completed")),
        (0, 2),
        "{}",
        first.stderr
    );
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM rejected_records").await,
        1
    );

    replace(&a, &version("v2", 80));
    let second = run(&[]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        (
            second.count("files_completed"),
            second.count("files_replaced")
        ),
        (1, 1)
    );
    assert_eq!(
        rows_by_version(&pool, "%a.ndjson").await,
        vec![("v2".to_string(), 80)]
    );
    assert_eq!(
        rows_by_version(&pool, "%b.ndjson").await,
        vec![("b".to_string(), 50)]
    );
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM rejected_records").await,
        0
    );
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 130);

    let unchanged = run(&[]).await;
    assert_eq!(
        (
            unchanged.count("files_completed"),
            unchanged.count("files_replaced")
        ),
        (0, 0)
    );

    replace(&a, &version("v3", 60));
    let ignored = run(&["--on-change", "ignore"]).await;
    assert_eq!(ignored.code, 0, "{}", ignored.stderr);
    assert_eq!(
        (
            ignored.count("files_completed"),
            ignored.count("files_replaced")
        ),
        (0, 0)
    );
    assert_eq!(
        rows_by_version(&pool, "%a.ndjson").await,
        vec![("v2".to_string(), 80)]
    );
}

/// The same on S3: an object overwritten (new ETag) after it was COMPLETED is ingested
/// again as its new version.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn an_s3_object_overwritten_after_completion_is_ingested_again(pool: PgPool) {
    let server = S3Server::start().await;
    let store = server.bucket("versions").await;
    put(&store, "logs/a.ndjson", version("v1", 100)).await;
    let endpoint = server.endpoint();
    let first = crate::run::run(&pool, &endpoint, "versions", &[]).await;
    assert_eq!(
        (first.code, first.count("files_completed")),
        (0, 1),
        "{}",
        first.stderr
    );

    put(&store, "logs/a.ndjson", version("v2", 70)).await;
    let second = crate::run::run(&pool, &endpoint, "versions", &[]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.count("files_replaced"), 1);
    assert_eq!(
        rows_by_version(&pool, "%a.ndjson").await,
        vec![("v2".to_string(), 70)]
    );
}

/// Issue 14 item 9: a job remembers the destinations it was written to; a run to another
/// destination refuses to start (naming the objects and the `--force` that writes them)
/// instead of reporting 0 new objects, and `--force` writes them, once.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn switching_the_destination_never_silently_ingests_nothing(pool: PgPool) {
    let root = tempfile::tempdir().unwrap();
    let lake = tempfile::tempdir().unwrap();
    let bucket = root.path().join("logs");
    std::fs::create_dir(&bucket).unwrap();
    let a = util::write_file(&bucket, "a.ndjson", &version("a", 10));
    util::write_file(&bucket, "b.ndjson", &version("b", 5));
    let root_arg = root.path().to_str().unwrap().to_string();
    let sink = format!("parquet={}", lake.path().display());
    let run = |extra: Vec<&str>| {
        let pool = pool.clone();
        let mut args = vec![
            "run",
            "--json",
            "--local-buckets",
            &root_arg,
            "--bucket",
            "logs",
        ];
        args.extend(extra);
        let args: Vec<String> = args.into_iter().map(str::to_string).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            util::run(&pool, &args).await
        }
    };
    let to_lake = run(vec!["--sink", &sink]).await;
    assert_eq!(
        (to_lake.code, to_lake.count("files_completed")),
        (0, 2),
        "{}",
        to_lake.stderr
    );
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 0);

    let refused = run(vec![]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stderr.contains("2 object(s)"), "{}", refused.stderr);
    assert!(refused.stderr.contains("a.ndjson"), "{}", refused.stderr);
    assert!(refused.stderr.contains("run --force"), "{}", refused.stderr);

    let forced = run(vec!["--force"]).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(
        (
            forced.count("files_completed"),
            forced.count("records_ingested")
        ),
        (2, 15)
    );
    let again = run(vec![]).await;
    assert_eq!(
        (again.code, again.count("files_completed")),
        (0, 0),
        "{}",
        again.stderr
    );
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 15);

    // ingest-file into another table: refused, then written with --force.
    sqlx::query("CREATE TABLE other (LIKE logs INCLUDING ALL)")
        .execute(&pool)
        .await
        .unwrap();
    let first = util::ingest(&pool, &a, &[]).await;
    assert_eq!(first.count("files_completed"), 1, "{}", first.stderr);
    let other = util::ingest(&pool, &a, &["--table", "other"]).await;
    assert_eq!(other.code, 1, "{}", other.stderr);
    assert!(
        other.stderr.contains("ingest-file --force"),
        "{}",
        other.stderr
    );
    let other = util::ingest(&pool, &a, &["--table", "other", "--force"]).await;
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert_eq!(util::count(&pool, "SELECT count(*) FROM other").await, 10);
}

/// Issue 14 item 15 with item 2: an object that FAILED for good (truncated) is tried again
/// once its version changes, without `jobs retry`.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_permanently_failed_object_is_tried_again_when_it_changes(pool: PgPool) {
    let root = tempfile::tempdir().unwrap();
    let bucket = root.path().join("logs");
    std::fs::create_dir(&bucket).unwrap();
    let full = util::gzip(&version("v1", 2_000));
    let path = util::write_file(&bucket, "a.ndjson.gz", &full[..full.len() / 2]);
    let root_arg = root.path().to_str().unwrap();
    let args = [
        "run",
        "--json",
        "--local-buckets",
        root_arg,
        "--bucket",
        "logs",
    ];
    let failed = util::run(&pool, &args).await;
    assert_eq!(
        (failed.code, failed.count("files_failed")),
        (3, 1),
        "{}",
        failed.stderr
    );
    let again = util::run(&pool, &args).await;
    assert_eq!(
        (again.code, again.count("files_failed")),
        (0, 0),
        "not retried as is"
    );

    replace(&path, &util::gzip(&version("v2", 300)));
    let fixed = util::run(&pool, &args).await;
    assert_eq!(
        (fixed.code, fixed.count("files_completed")),
        (0, 1),
        "{}",
        fixed.stderr
    );
    assert_eq!(
        rows_by_version(&pool, "%a.ndjson.gz").await,
        vec![("v2".to_string(), 300)]
    );
}
