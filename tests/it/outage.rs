//! Database outages (issue 14 item 14): `run`, `run --follow` and `ingest-file` reconnect
//! with backoff and go on; past `--reconnect-secs` they give up with exit status 1. The
//! outage is a TCP proxy in front of PostgreSQL that can refuse connections and cut the
//! live ones, or `pg_terminate_backend` on the worker's sessions.

use std::time::Duration;

use sqlx::PgPool;

use crate::util::{self, PgProxy};

/// A local "bucket": `root/logs/2024/` with `files` generated files.
async fn local_bucket(files: usize, records: u64) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    util::generate(&root.path().join("logs").join("2024"), files, records).await;
    root
}

async fn exactly_once(pool: &PgPool, expected: i64) {
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (source_key, source_index)) FROM logs")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(
        (rows, distinct),
        (expected, expected),
        "every record exactly once"
    );
}

async fn finish(child: tokio::process::Child, within: Duration) -> util::Run {
    let output = tokio::time::timeout(within, child.wait_with_output())
        .await
        .expect("the command ends in time")
        .unwrap();
    util::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_database_outage_shorter_than_the_bound_is_ridden_out(pool: PgPool) {
    let root = local_bucket(3, 10_000).await;
    let proxy = PgProxy::start(&pool).await;
    let args = [
        "run",
        "--json",
        "--bucket",
        "logs",
        "--local-buckets",
        root.path().to_str().unwrap(),
        "--chunk-records",
        "500",
        "--max-records-per-sec",
        "10000",
        "--lease-secs",
        "2",
    ];
    let child = util::command(&pool, &args)
        .env("DATABASE_URL", proxy.url(&pool))
        .spawn()
        .unwrap();
    util::wait_until(&pool, util::COMMITTED, 3_000).await;
    proxy.down();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    proxy.up().await;
    let run = finish(child, Duration::from_secs(60)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("database connection lost"),
        "{}",
        run.stderr
    );
    assert_eq!(run.count("files_completed"), 3);
    let statuses: Vec<String> = sqlx::query_scalar("SELECT DISTINCT status FROM processed_files")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(statuses, vec!["COMPLETED"]);
    exactly_once(&pool, 30_000).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn follow_rides_out_an_outage_then_gives_up_past_reconnect_secs(pool: PgPool) {
    let root = local_bucket(1, 100).await;
    let proxy = PgProxy::start(&pool).await;
    let args = [
        "run",
        "--json",
        "--bucket",
        "logs",
        "--local-buckets",
        root.path().to_str().unwrap(),
        "--follow",
        "--interval",
        "0.2",
        "--reconnect-secs",
        "3",
    ];
    let child = util::command(&pool, &args)
        .env("DATABASE_URL", proxy.url(&pool))
        .spawn()
        .unwrap();
    let completed = "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'";
    util::wait_until(&pool, completed, 1).await;

    // A short outage: the follower goes on and takes a new file.
    proxy.down();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    proxy.up().await;
    util::generate(&root.path().join("logs").join("2025"), 1, 100).await;
    util::wait_until(&pool, completed, 2).await;

    // An outage past --reconnect-secs: exit 1, naming the cause.
    proxy.down();
    let started = std::time::Instant::now();
    let run = finish(child, Duration::from_secs(60)).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(3) && waited < Duration::from_secs(15),
        "gave up after {waited:?}"
    );
    assert!(run.stderr.contains("unreachable"), "{}", run.stderr);
    exactly_once(&pool, 200).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn ingest_file_goes_on_when_its_connections_are_killed(pool: PgPool) {
    let root = local_bucket(2, 15_000).await;
    let dir = root.path().join("logs");
    let args = [
        "ingest-file",
        "--json",
        "--chunk-records",
        "500",
        "--max-records-per-sec",
        "10000",
        dir.to_str().unwrap(),
    ];
    let child = util::command(&pool, &args).spawn().unwrap();
    util::wait_until(&pool, util::COMMITTED, 3_000).await;
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let run = finish(child, Duration::from_secs(60)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 2);
    exactly_once(&pool, 30_000).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn worker_sessions_end_transactions_idle_for_twice_the_lease(pool: PgPool) {
    let url = util::db_url(&pool);
    let worker = ingestor::config::connect_worker(Some(&url), 1, 60.0, 300.0)
        .await
        .unwrap();
    let shown: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
        .fetch_one(&worker)
        .await
        .unwrap();
    assert_eq!(shown, "2min");

    // A frozen worker's transaction does not hold its row lock forever.
    let short = ingestor::config::connect_worker(Some(&url), 1, 0.5, 300.0)
        .await
        .unwrap();
    let mut tx = short.begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let error = sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap_err();
    assert!(
        ingestor::jobs::is_connection_error(&error),
        "the session was ended: {error}"
    );
}
