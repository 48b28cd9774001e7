//! `ingestor run` against a real S3-protocol server: pagination, include globs, late
//! objects, several workers at once, takeovers after SIGKILL, fencing, retries with backoff,
//! injected S3 faults and database connection loss.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;

use crate::s3::{Fault, FaultProxy, S3Server, put};
use crate::util::{self, Layout};

/// A gzipped JSON array of `n` records, tagged with `file` and starting at `time`.
fn object(file: usize, n: usize, time: i64) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|i| json!({"level": 30, "time": time + i as i64, "msg": format!("file {file} record {i}"), "pid": file}))
        .collect();
    util::gzip(&util::json_array(&records))
}

/// `ingestor run --json --bucket B ARGS` against `endpoint`.
fn run_command(
    pool: &PgPool,
    endpoint: &str,
    bucket: &str,
    extra: &[&str],
) -> tokio::process::Command {
    let mut args = vec!["run", "--json", "--bucket", bucket];
    args.extend_from_slice(extra);
    let mut command = util::command(pool, &args);
    for (key, value) in S3Server::env(endpoint) {
        command.env(key, value);
    }
    command
}

/// `ingestor run --json --bucket B EXTRA...` against `endpoint`, to completion.
pub async fn run(pool: &PgPool, endpoint: &str, bucket: &str, extra: &[&str]) -> util::Run {
    run_env(pool, endpoint, bucket, extra, &[]).await
}

/// [`run`] with extra environment variables.
pub async fn run_env(
    pool: &PgPool,
    endpoint: &str,
    bucket: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> util::Run {
    let output = run_command(pool, endpoint, bucket, extra)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    util::Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn exactly_once(pool: &PgPool, expected: i64) {
    let (rows, distinct): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT (source_bucket, source_key, source_index)) FROM logs",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(
        (rows, distinct),
        (expected, expected),
        "every record exactly once"
    );
}

async fn statuses(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT status, count(*) FROM processed_files GROUP BY 1 ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_bucket_of_2600_objects_under_nested_prefixes(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("big").await;
    let files = 2_600;
    let uploads = futures::stream::iter(0..files).map(|i| {
        let store = store.clone();
        async move {
            let key = format!("logs/{}/{:02}/part-{i:05}.json.gz", 2024 + i % 2, i % 12);
            put(
                &store,
                &key,
                object(i, 2, 1_730_800_800_000 + i as i64 * 10),
            )
            .await;
        }
    });
    uploads.buffer_unordered(16).collect::<Vec<_>>().await;
    put(&store, "logs/readme.txt", b"not a log".to_vec()).await;
    put(&store, "logs/2024/01/data.csv.gz", util::gzip(b"a,b")).await;
    put(&store, "other/outside.json", object(9999, 1, 0)).await;

    let run = run(
        &pool,
        &s3.endpoint(),
        "big",
        &["--prefix", "logs", "--concurrency", "4"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), files as u64);
    assert_eq!(run.count("records_ingested"), 2 * files as u64);
    exactly_once(&pool, 2 * files as i64).await;
    assert_eq!(
        statuses(&pool).await,
        vec![("COMPLETED".to_string(), files as i64)],
        "ignored keys are not jobs"
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_late_object_with_old_records_is_ingested_by_the_next_run(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("late").await;
    put(
        &store,
        "2024/11/05/b.json.gz",
        object(1, 10, 1_730_800_800_000),
    )
    .await;
    put(
        &store,
        "2024/11/06/c.json.gz",
        object(2, 10, 1_730_887_200_000),
    )
    .await;
    let first = run(&pool, &s3.endpoint(), "late", &[]).await;
    assert_eq!(
        (first.code, first.count("files_completed")),
        (0, 2),
        "{}",
        first.stderr
    );

    // Uploaded later, older records, a key that sorts first.
    put(
        &store,
        "2024/01/01/a.json.gz",
        object(3, 7, 1_704_067_200_000),
    )
    .await;
    let second = run(&pool, &s3.endpoint(), "late", &[]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        (
            second.count("files_completed"),
            second.count("records_ingested")
        ),
        (1, 7)
    );
    exactly_once(&pool, 27).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn three_workers_at_once_ingest_every_record_once(pool: PgPool) {
    three_workers_at_once(pool, Layout::Plain).await;
}

/// The three workers also race to create the files' day partition.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn three_workers_at_once_ingest_every_record_once_in_day_partitions(pool: PgPool) {
    three_workers_at_once(pool, Layout::DayPartitions).await;
}

async fn three_workers_at_once(pool: PgPool, layout: Layout) {
    layout.apply(&pool).await;
    let s3 = S3Server::start().await;
    let store = s3.bucket("shared").await;
    let files = 60;
    for i in 0..files {
        put(
            &store,
            &format!("f/{i:03}.json.gz"),
            object(i, 400, 1_730_800_800_000 + i as i64 * 1000),
        )
        .await;
    }
    let args = ["--concurrency", "2", "--chunk-records", "100"];
    let workers: Vec<_> = (0..3)
        .map(|_| run_command(&pool, &s3.endpoint(), "shared", &args).output())
        .collect();
    let outputs = futures::future::join_all(workers).await;
    let mut completed = 0;
    for output in outputs {
        let output = output.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        completed += summary["files_completed"].as_u64().unwrap();
    }
    assert_eq!(
        completed, files as u64,
        "every file COMPLETED by exactly one worker"
    );
    exactly_once(&pool, files as i64 * 400).await;
    let attempts: i64 =
        util::count(&pool, "SELECT max(attempts)::bigint FROM processed_files").await;
    assert_eq!(attempts, 1, "no file was claimed twice");
    layout.check(&pool).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_killed_worker_is_taken_over_at_its_checkpoint(pool: PgPool) {
    killed_worker_taken_over(pool, Layout::Plain).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_killed_worker_is_taken_over_at_its_checkpoint_in_day_partitions(pool: PgPool) {
    killed_worker_taken_over(pool, Layout::DayPartitions).await;
}

async fn killed_worker_taken_over(pool: PgPool, layout: Layout) {
    layout.apply(&pool).await;
    let s3 = S3Server::start().await;
    let store = s3.bucket("kill").await;
    put(&store, "big.json.gz", object(1, 40_000, 1_730_800_800_000)).await;
    let args = [
        "--chunk-records",
        "500",
        "--batch-records",
        "250",
        "--lease-secs",
        "2",
    ];
    let mut worker = run_command(&pool, &s3.endpoint(), "kill", &args)
        .spawn()
        .unwrap();
    util::wait_until(&pool, util::COMMITTED, 2_000).await;
    worker.kill().await.unwrap();
    let checkpoint = util::count(&pool, "SELECT checkpoint FROM processed_files").await;
    // Before the lease expires, another worker leaves the file alone.
    let early = run(&pool, &s3.endpoint(), "kill", &args).await;
    assert_eq!(early.count("records_ingested"), 0, "{}", early.stderr);
    util::expire_leases(&pool).await;
    let late = run(&pool, &s3.endpoint(), "kill", &args).await;
    assert_eq!(late.code, 0, "{}", late.stderr);
    assert_eq!(
        late.count("records_ingested") as i64,
        40_000 - checkpoint,
        "resumed at the checkpoint"
    );
    exactly_once(&pool, 40_000).await;
    layout.check(&pool).await;
}

/// `(attempts, permanent, error)` of a job.
async fn failure(pool: &PgPool, key: &str) -> (i32, bool, String) {
    let (attempts, permanent, error): (i32, Option<bool>, Option<String>) = sqlx::query_as(
        "SELECT attempts, (metadata->>'permanent')::boolean, metadata->>'error' FROM processed_files WHERE s3_key = $1 AND status = 'FAILED'",
    )
    .bind(key)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("{key} is not FAILED: {e}"));
    (
        attempts,
        permanent.unwrap_or(false),
        error.unwrap_or_default(),
    )
}

/// A fault proxy that answers 503 to every request whose request line contains the text
/// in the returned switch (an S3 outage for those keys; None: no outage).
async fn outage_proxy(upstream: u16) -> (FaultProxy, Arc<Mutex<Option<String>>>) {
    let switch: Arc<Mutex<Option<String>>> = Arc::default();
    let outage = Arc::clone(&switch);
    let decide = move |head: &str| {
        let line = head.lines().next().unwrap_or_default();
        let down = outage
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|text| line.contains(text.as_str()));
        down.then_some(Fault::ServiceUnavailable)
    };
    (
        FaultProxy::start_with(upstream, Arc::new(decide)).await,
        switch,
    )
}

/// S3 requests fail at once instead of after object_store's own ten retries.
const NO_S3_RETRIES: [(&str, &str); 1] = [("INGESTOR_S3_RETRIES", "0")];

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_failing_object_is_retried_with_backoff_then_failed_until_jobs_retry(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("retry").await;
    put(&store, "a/bad.json.gz", object(1, 500, 1_730_800_800_000)).await;
    put(&store, "a/good.json.gz", object(2, 50, 1_730_800_900_000)).await;
    // S3 answers 503 to every request for a/bad.json.gz: a transient fault.
    let (proxy, unavailable) = outage_proxy(s3.port).await;
    *unavailable.lock().unwrap() = Some("a/bad.json.gz".into());

    // With the default backoff (30 s) the retry is not due soon: the pass ends at once.
    let started = std::time::Instant::now();
    let first = run_env(&pool, &proxy.endpoint(), "retry", &[], &NO_S3_RETRIES).await;
    assert_eq!(first.code, 3, "{}", first.stderr);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the pass did not sleep on a far-off retry ({:?})",
        started.elapsed()
    );
    assert_eq!(
        (first.count("files_completed"), first.count("files_failed")),
        (1, 1)
    );
    let (attempts, permanent, error) = failure(&pool, "a/bad.json.gz").await;
    assert_eq!((attempts, permanent), (1, false), "{error}");
    assert!(error.contains("503"), "{error}");
    assert!(error.contains("a/bad.json.gz"), "{error}");

    // Retries due within the pass are waited for, up to --max-attempts.
    sqlx::query(
        "UPDATE processed_files SET next_attempt_at = now() WHERE s3_key = 'a/bad.json.gz'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let args = ["--max-attempts", "3", "--retry-base-secs", "0.2"];
    let started = std::time::Instant::now();
    let run1 = run_env(&pool, &proxy.endpoint(), "retry", &args, &NO_S3_RETRIES).await;
    assert_eq!(run1.code, 3, "{}", run1.stderr);
    assert_eq!(run1.count("files_failed"), 1);
    // Attempt 3 waited for its backoff (0.2-0.4 s).
    assert!(started.elapsed() >= Duration::from_millis(200));
    let (attempts, permanent, _) = failure(&pool, "a/bad.json.gz").await;
    assert_eq!((attempts, permanent), (3, false), "tried up to the maximum");

    let stuck = run_env(&pool, &proxy.endpoint(), "retry", &args, &NO_S3_RETRIES).await;
    assert_eq!(
        stuck.count("files_failed"),
        0,
        "FAILED for good: not tried again"
    );

    let retry = util::run(&pool, &["jobs", "retry", "--bucket", "retry", "--failed"]).await;
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    *unavailable.lock().unwrap() = None;
    let fixed = run_env(&pool, &proxy.endpoint(), "retry", &args, &NO_S3_RETRIES).await;
    assert_eq!(
        (fixed.code, fixed.count("files_completed")),
        (0, 1),
        "{}",
        fixed.stderr
    );
    exactly_once(&pool, 550).await;
    let list = util::run(
        &pool,
        &["jobs", "list", "--bucket", "retry", "--status", "COMPLETED"],
    )
    .await;
    assert_eq!(list.stdout.lines().count(), 2, "{}", list.stdout);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_truncated_object_fails_in_one_attempt_until_jobs_retry(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("trunc").await;
    let mut truncated = object(1, 500, 1_730_800_800_000);
    truncated.truncate(truncated.len() / 2);
    put(&store, "a/bad.json.gz", truncated).await;
    put(&store, "a/good.json.gz", object(2, 50, 1_730_800_900_000)).await;
    // Backoffs short enough that the pass would wait for them: it must not retry at all.
    let args = ["--retry-base-secs", "0.1"];
    let run1 = run(&pool, &s3.endpoint(), "trunc", &args).await;
    assert_eq!(run1.code, 3, "{}", run1.stderr);
    assert_eq!(
        (run1.count("files_completed"), run1.count("files_failed")),
        (1, 1)
    );
    let (attempts, permanent, error) = failure(&pool, "a/bad.json.gz").await;
    assert_eq!(
        (attempts, permanent),
        (1, true),
        "corrupt data: FAILED in one attempt ({error})"
    );
    assert!(error.contains("byte"), "{error}");

    let again = run(&pool, &s3.endpoint(), "trunc", &args).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.count("files_failed"), 0, "not read again");
    assert_eq!(failure(&pool, "a/bad.json.gz").await.0, 1);
    let stats = util::run(&pool, &["jobs", "stats", "--json"]).await;
    assert!(stats.stdout.contains("a/bad.json.gz"), "{}", stats.stdout);

    // `jobs retry` takes it up again (here with the object fixed).
    put(&store, "a/bad.json.gz", object(1, 500, 1_730_800_800_000)).await;
    let retry = util::run(
        &pool,
        &["jobs", "retry", "--bucket", "trunc", "a/bad.json.gz"],
    )
    .await;
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    let fixed = run(&pool, &s3.endpoint(), "trunc", &args).await;
    assert_eq!(
        (fixed.code, fixed.count("files_completed")),
        (0, 1),
        "{}",
        fixed.stderr
    );
    exactly_once(&pool, 550).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn an_object_that_no_longer_exists_fails_in_one_attempt(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("gone").await;
    put(&store, "a/here.json.gz", object(1, 10, 1_730_800_800_000)).await;
    // Listed by an earlier pass, deleted since.
    let listed = [ingestor::jobs::Listed {
        key: "a/gone.json.gz".into(),
        size: 100,
        etag: None,
        last_modified: chrono::Utc::now(),
    }];
    ingestor::jobs::discover(&pool, "gone", &listed, true)
        .await
        .unwrap();
    let run1 = run(&pool, &s3.endpoint(), "gone", &["--retry-base-secs", "0.1"]).await;
    assert_eq!(run1.code, 3, "{}", run1.stderr);
    let (attempts, permanent, error) = failure(&pool, "a/gone.json.gz").await;
    assert_eq!((attempts, permanent), (1, true), "{error}");
    assert!(error.contains("object no longer exists"), "{error}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn injected_s3_faults_lose_and_duplicate_nothing(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("faulty").await;
    let files = 30;
    for i in 0..files {
        put(
            &store,
            &format!("x/{i:03}.json.gz"),
            object(i, 300, 1_730_800_800_000 + i as i64 * 1000),
        )
        .await;
    }
    let proxy = FaultProxy::start(
        s3.port,
        3,
        vec![Fault::ServiceUnavailable, Fault::Drop, Fault::CutResponse],
    )
    .await;
    let args = [
        "--retry-base-secs",
        "0.1",
        "--max-attempts",
        "20",
        "--chunk-records",
        "100",
    ];
    let mut total = 0;
    for _ in 0..5 {
        let run = run(&pool, &proxy.endpoint(), "faulty", &args).await;
        assert!(run.code == 0 || run.code == 3, "{}", run.stderr);
        total += run.count("records_ingested");
        if statuses(&pool).await == vec![("COMPLETED".to_string(), files as i64)] {
            break;
        }
    }
    assert!(
        proxy.injected.load(std::sync::atomic::Ordering::SeqCst) >= 8,
        "faults were injected"
    );
    assert_eq!(
        statuses(&pool).await,
        vec![("COMPLETED".to_string(), files as i64)]
    );
    assert_eq!(total, files as u64 * 300);
    exactly_once(&pool, files as i64 * 300).await;
}

/// Terminates every session of the test database but the caller's.
async fn kill_sessions(pool: &PgPool) -> u64 {
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    killed.into_iter().filter(|k| *k).count() as u64
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn database_connections_killed_mid_run_the_run_goes_on(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("pgkill").await;
    for i in 0..6 {
        put(
            &store,
            &format!("p/{i}.json.gz"),
            object(i, 20_000, 1_730_800_800_000 + i as i64 * 100_000),
        )
        .await;
    }
    let args = ["--chunk-records", "1000", "--max-records-per-sec", "40000"];
    let worker = run_command(&pool, &s3.endpoint(), "pgkill", &args)
        .spawn()
        .unwrap();
    util::wait_until(&pool, util::COMMITTED, 5_000).await;
    assert!(kill_sessions(&pool).await > 0);
    util::wait_until(&pool, util::COMMITTED, 40_000).await;
    assert!(kill_sessions(&pool).await > 0);
    let output = tokio::time::timeout(Duration::from_secs(120), worker.wait_with_output())
        .await
        .expect("the run finishes")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("reconnecting") || stderr.contains("database connection lost"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(summary["files_completed"], 6, "{summary}");
    assert_eq!(statuses(&pool).await, vec![("COMPLETED".to_string(), 6)]);
    exactly_once(&pool, 120_000).await;
}

/// Issue 14 item 14: `--follow` goes on when a listing fails (S3 down for LIST requests,
/// object_store's retries spent) and takes the objects once it works again.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn follow_goes_on_when_a_listing_fails(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("flaky").await;
    put(&store, "a/one.json.gz", object(1, 20, 1_730_800_800_000)).await;
    let (proxy, unavailable) = outage_proxy(s3.port).await;
    *unavailable.lock().unwrap() = Some("list-type".into());
    let mut child = run_command(
        &pool,
        &proxy.endpoint(),
        "flaky",
        &["--follow", "--interval", "0.2"],
    )
    .envs(NO_S3_RETRIES)
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still following after failed listings"
    );
    *unavailable.lock().unwrap() = None;
    let completed = "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'";
    util::wait_until(&pool, completed, 1).await;
    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("the pass failed"),
        "{}",
        stopped.stderr
    );
    assert_eq!(stopped.count("records_ingested"), 20);
    exactly_once(&pool, 20).await;
}

/// Issue 15 item 4: progress counts each file of a pass once, however many attempts it
/// takes (4 objects, one retried: never more than 4 files in a progress line).
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn progress_counts_files_not_attempts(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("progress").await;
    put(&store, "a/bad.json.gz", object(1, 50, 1_730_800_800_000)).await;
    for i in 2..5 {
        put(
            &store,
            &format!("a/good-{i}.json.gz"),
            object(i, 50, 1_730_800_900_000),
        )
        .await;
    }
    let (proxy, unavailable) = outage_proxy(s3.port).await;
    *unavailable.lock().unwrap() = Some("a/bad.json.gz".into());
    let args = [
        "--max-attempts",
        "4",
        "--retry-base-secs",
        "0.3",
        "--progress-interval",
        "0.1",
    ];
    let run = run_env(&pool, &proxy.endpoint(), "progress", &args, &NO_S3_RETRIES).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let totals: Vec<u64> = run
        .stderr
        .lines()
        .filter_map(|line| line.split("files_total=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(!totals.is_empty(), "progress lines: {}", run.stderr);
    assert!(totals.iter().all(|total| *total <= 4), "{totals:?}");
    let attempts: i32 =
        sqlx::query_scalar("SELECT attempts FROM processed_files WHERE s3_key = 'a/bad.json.gz'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(attempts, 4, "the file was tried four times in the pass");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn small_s3_objects_are_ingested_in_groups_each_exactly_once(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("smalls").await;
    for i in 0..40 {
        put(
            &store,
            &format!("host-{}/{i:02}.json.gz", i % 4),
            object(i, 25, 1_730_800_800_000 + i as i64 * 60_000),
        )
        .await;
    }
    let output = run_command(&pool, &s3.endpoint(), "smalls", &[])
        .env("RUST_LOG", "ingestor=debug")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("group committed"),
        "read from S3 in groups: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&output.stdout).contains("\"files_completed\":40"),
        "{stderr}"
    );
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (source_key, source_index)) FROM logs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (1_000, 1_000));
    let etags = util::count(
        &pool,
        "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED' AND etag IS NOT NULL AND checkpoint = 25",
    )
    .await;
    assert_eq!(etags, 40, "each object's version and checkpoint recorded");
}

/// Issue 18: small objects are read many at once whatever `--concurrency` (the COPY
/// streams): at concurrency 1, behind 50 ms of latency, the proxy sees far more GETs in
/// flight than the 16 one group used to read at once.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn small_s3_objects_are_read_many_at_once_whatever_the_concurrency(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("ahead").await;
    for i in 0..200 {
        put(
            &store,
            &format!("host-{}/{i:03}.json.gz", i % 5),
            object(i, 5, 1_730_800_800_000 + i as i64 * 60_000),
        )
        .await;
    }
    let proxy = FaultProxy::launch(ingestor_s3kit::Options {
        latency: std::time::Duration::from_millis(50),
        ..ingestor_s3kit::Options::new(s3.port)
    })
    .await
    .unwrap();
    let done = run(&pool, &proxy.endpoint(), "ahead", &["--concurrency", "1"]).await;
    assert_eq!(done.code, 0, "{}", done.stderr);
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 1_000);
    assert_eq!(
        proxy.counts.get(ingestor_s3kit::Kind::Get),
        200,
        "one GET per object"
    );
    let peak = proxy.counts.peak_in_flight();
    assert!(
        peak >= 40,
        "at most {peak} requests in flight at concurrency 1: small objects are not read ahead"
    );
}
