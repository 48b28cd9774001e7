//! The operator surface (issue 15): signals and exit statuses, files held by another
//! worker, usage errors, secrets, control characters, closed pipes.

use std::process::Stdio;
use std::time::Duration;

use sqlx::PgPool;
use tokio::io::AsyncBufReadExt;

use crate::util;

/// Item 1: `ingest-file` stopped by SIGTERM finishes its chunk, releases its files, prints
/// its summary and exits 143; the re-run finishes every record exactly once.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn ingest_file_stops_cleanly_on_sigterm_and_the_rerun_finishes(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    util::generate(dir.path(), 3, 20_000).await;
    let path = dir.path().to_str().unwrap().to_string();
    let args = [
        "ingest-file",
        "--json",
        "--chunk-records",
        "1000",
        "--max-records-per-sec",
        "15000",
        path.as_str(),
    ];
    let child = util::command(&pool, &args).spawn().unwrap();
    util::wait_until(&pool, util::COMMITTED, 3_000).await;
    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 143, "{}", stopped.stderr);
    assert!(
        stopped.count("records_ingested") >= 3_000,
        "{}",
        stopped.stdout
    );
    assert!(stopped.stderr.contains("left undone"), "{}", stopped.stderr);
    let processing = util::count(
        &pool,
        "SELECT count(*) FROM processed_files WHERE status = 'PROCESSING'",
    )
    .await;
    assert_eq!(processing, 0, "files are released, not left PROCESSING");

    let rerun = [
        "ingest-file",
        "--json",
        "--chunk-records",
        "1000",
        path.as_str(),
    ];
    let rerun = util::run(&pool, &rerun).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (source_key, source_index)) FROM logs")
            .fetch_one(&pool)
            .await
            .unwrap();
    let rejected = util::count(&pool, "SELECT count(*) FROM rejected_records").await;
    assert_eq!((rows + rejected, distinct + rejected), (60_000, 60_000));
}

/// Item 2: a `run` pass cut short by SIGTERM exits 143 and says what was left.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_run_cut_short_by_sigterm_exits_143(pool: PgPool) {
    let root = tempfile::tempdir().unwrap();
    let bucket = root.path().join("logs");
    util::generate(&bucket, 4, 10_000).await;
    let root_arg = root.path().to_str().unwrap();
    let args = [
        "run",
        "--json",
        "--local-buckets",
        root_arg,
        "--bucket",
        "logs",
        "--concurrency",
        "1",
        "--chunk-records",
        "500",
        "--max-records-per-sec",
        "10000",
    ];
    let child = util::command(&pool, &args).spawn().unwrap();
    util::wait_until(&pool, util::COMMITTED, 1_000).await;
    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 143, "{}", stopped.stderr);
    assert!(stopped.stderr.contains("files_left"), "{}", stopped.stderr);
    let finished = util::run(&pool, &args[..10]).await;
    assert_eq!(finished.code, 0, "{}", finished.stderr);
}

/// Item 3: a file another worker holds is waited for by default and then ingested; with
/// `--no-wait` it is reported busy (exit 3).
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_held_by_another_worker_is_waited_for_or_reported_busy(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let path = util::write_file(
        dir.path(),
        "held.json",
        &util::json_array(&[serde_json::json!({"a": 1})]),
    );
    let key = util::key_of(&path);
    // Another worker's live lease, for two seconds.
    sqlx::query(
        "INSERT INTO processed_files (bucket, s3_key, status, attempts, lease_token, lease_expires_at)
         VALUES ('local', $1, 'PROCESSING', 1, gen_random_uuid(), now() + interval '2 seconds')",
    )
    .bind(&key)
    .execute(&pool)
    .await
    .unwrap();
    let busy = util::ingest(&pool, &path, &["--no-wait"]).await;
    assert_eq!(busy.code, 3, "{}", busy.stderr);
    assert_eq!(busy.count("files_busy"), 1);

    let waited = util::ingest(&pool, &path, &[]).await;
    assert_eq!(waited.code, 0, "{}", waited.stderr);
    assert_eq!(waited.count("files_completed"), 1);
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 1);
}

/// Items 7, 8, 9, 10: no migration notice at the default level; bad globs, durations and
/// rates are usage errors (2); `jobs retry KEY` needs `--bucket`; a password given as a
/// query parameter is never printed.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn usage_errors_notices_and_passwords(pool: PgPool) {
    let migrate = util::run(&pool, &["migrate"]).await;
    assert!(
        !migrate.stderr.contains("already exists"),
        "{}",
        migrate.stderr
    );

    for args in [
        &["run", "--bucket", "b", "--include", "["][..],
        &["ingest-file", "--lease-secs", "18446744073709551615", "x"],
        &["ingest-file", "--lease-secs", "1e10", "x"],
        &["ingest-file", "--progress-interval", "0", "x"],
        &["ingest-file", "--progress-interval", "0.01", "x"],
        &["ingest-file", "--max-records-per-sec", "0", "x"],
        &["jobs", "retry", "some/key.json"],
    ] {
        let run = util::run(&pool, args).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
    }

    let unreachable = util::command(&pool, &["migrate"])
        .env(
            "DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none?password=hunter2-secret&sslmode=disable",
        )
        .output()
        .await
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// Items 11 and 12: control characters of keys and errors are escaped in `jobs list` and
/// the logs; `jobs list | head -1` ends quietly.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn control_characters_are_escaped_and_a_closed_pipe_is_quiet(pool: PgPool) {
    sqlx::query(
        "INSERT INTO processed_files (bucket, s3_key, status, metadata)
         SELECT 'b', 'key-' || i || E'\\x1b]0;pwned\\x07', 'FAILED',
                jsonb_build_object('error', E'bad \\x1b[31m red')
         FROM generate_series(1, 20000) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    let list = util::run(&pool, &["jobs", "list", "--limit", "5"]).await;
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        !list.stdout.contains('\u{1b}') && !list.stdout.contains('\u{7}'),
        "{:?}",
        list.stdout
    );
    assert!(list.stdout.contains("\\u{1b}"), "{}", list.stdout);

    let mut child = util::command(&pool, &["jobs", "list", "--limit", "20000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    assert!(lines.next_line().await.unwrap().is_some());
    drop(lines);
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Item 6: missing AWS credentials are said so, not reported as an error of the
/// instance-metadata address.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn missing_aws_credentials_are_said_so(pool: PgPool) {
    let output = util::command(&pool, &["run", "--bucket", "b"])
        .env("AWS_ENDPOINT", "http://127.0.0.1:1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no AWS credentials"), "{stderr}");
}
