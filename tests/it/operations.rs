//! Operating it: metrics, rate limits, dry runs, secrets and escape codes in output,
//! `jobs stats`, SIGTERM in follow mode.

use sqlx::PgPool;

use crate::util;

/// A local "bucket": `root/logs/` with `files` generated files.
async fn local_bucket(files: usize, records: u64) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    util::generate(&root.path().join("logs").join("2024"), files, records).await;
    root
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("{name} missing in:\n{body}"))
        .parse()
        .unwrap()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn metrics_endpoint_serves_the_counters_and_sigterm_stops_cleanly(pool: PgPool) {
    let root = local_bucket(3, 500).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
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
        "--metrics-addr",
        &addr,
        "--chunk-records",
        "200",
    ];
    let child = util::command(&pool, &args).spawn().unwrap();
    let completed = "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'";
    util::wait_until(&pool, completed, 3).await;
    // A file's counters are added just after its COMPLETED transaction commits: wait for
    // the counters themselves (issue 15 item 13; under load the database was ahead).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let response = loop {
        let response = http_get(port, "/metrics").await;
        let counted = metric(&response, "ingestor_files_total{outcome=\"completed\"}") >= 3.0
            && metric(&response, "ingestor_ingestion_lag_count_total") >= 3.0;
        if counted || std::time::Instant::now() > deadline {
            break response;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(
        metric(&response, "ingestor_files_total{outcome=\"completed\"}"),
        3.0
    );
    assert_eq!(metric(&response, "ingestor_records_ingested_total"), 1500.0);
    assert_eq!(metric(&response, "ingestor_records_rejected_total"), 0.0);
    assert_eq!(
        metric(&response, "ingestor_copy_chunks_total"),
        9.0,
        "3 chunks of up to 200 per file"
    );
    assert!(metric(&response, "ingestor_read_bytes_total") > 0.0);
    assert!(metric(&response, "ingestor_copy_seconds_total") > 0.0);
    assert_eq!(metric(&response, "ingestor_ingestion_lag_count_total"), 3.0);
    // Issue 17 item 5: the histograms count what the counters count.
    assert_eq!(
        metric(&response, "ingestor_chunk_commit_seconds_count"),
        9.0
    );
    assert_eq!(
        metric(&response, "ingestor_file_duration_seconds_count"),
        3.0
    );
    assert_eq!(
        metric(&response, "ingestor_ingestion_lag_seconds_count"),
        3.0
    );

    // SIGTERM: a clean stop with the summary.
    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(stopped.count("records_ingested"), 1500);
}

/// Every name the README listed before the histograms came (dashboards depend on them).
const OLD_COUNTERS: [&str; 14] = [
    "ingestor_files_replaced_total",
    "ingestor_records_ingested_total",
    "ingestor_records_rejected_total",
    "ingestor_records_filtered_total",
    "ingestor_read_bytes_total",
    "ingestor_copy_chunks_total",
    "ingestor_copy_seconds_total",
    "ingestor_retries_total",
    "ingestor_lease_takeovers_total",
    "ingestor_parquet_files_total",
    "ingestor_parquet_bytes_total",
    "ingestor_ingestion_lag_seconds_total",
    "ingestor_ingestion_lag_count_total",
    "ingestor_keys_skipped_total",
];

const HISTOGRAMS: [&str; 3] = [
    "ingestor_chunk_commit_seconds",
    "ingestor_file_duration_seconds",
    "ingestor_ingestion_lag_seconds",
];

/// A histogram's buckets as served: (le, cumulative count), `+Inf` last.
fn buckets(body: &str, name: &str) -> Vec<(String, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    body.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (le, value) = rest.split_once("\"} ")?;
            Some((le.to_string(), value.parse().unwrap()))
        })
        .collect()
}

/// Issue 17 item 5: `/metrics` of a real run serves every series from the start (before
/// any file, at 0), keeps every earlier name and type, and adds three histograms whose
/// counts are the chunks and files the run committed.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn metrics_keep_every_name_and_add_histograms_of_what_was_committed(pool: PgPool) {
    let root = tempfile::tempdir().unwrap();
    let bucket = root.path().join("logs");
    std::fs::create_dir_all(&bucket).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
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
        "--metrics-addr",
        &addr,
        "--chunk-records",
        "100",
    ];
    let child = util::command(&pool, &args).spawn().unwrap();

    // Before any file: every series is there, at 0.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let empty = loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break http_get(port, "/metrics").await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "/metrics never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(empty.starts_with("HTTP/1.1 200"), "{empty}");
    for outcome in ["completed", "failed", "skipped", "lease_lost"] {
        let series = format!("ingestor_files_total{{outcome=\"{outcome}\"}}");
        assert_eq!(metric(&empty, &series), 0.0, "{series}");
    }
    assert!(
        empty.contains("# TYPE ingestor_files_total counter\n"),
        "{empty}"
    );
    for name in OLD_COUNTERS {
        assert!(
            empty.contains(&format!("# HELP {name} ")),
            "{name}:\n{empty}"
        );
        assert!(
            empty.contains(&format!("# TYPE {name} counter\n")),
            "{name}:\n{empty}"
        );
        assert_eq!(metric(&empty, name), 0.0, "{name}");
    }
    for name in HISTOGRAMS {
        assert!(
            empty.contains(&format!("# TYPE {name} histogram\n")),
            "{name}:\n{empty}"
        );
        assert_eq!(metric(&empty, &format!("{name}_count")), 0.0, "{name}");
    }

    // Two files of 250 records, in chunks of 100: 3 chunk transactions each.
    // Written aside and moved in at once: a pass never lists a file being written.
    util::generate(&root.path().join("staging"), 2, 250).await;
    std::fs::rename(root.path().join("staging"), bucket.join("2024")).unwrap();
    let completed = "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'";
    util::wait_until(&pool, completed, 2).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let body = loop {
        let body = http_get(port, "/metrics").await;
        let counted = metric(&body, "ingestor_files_total{outcome=\"completed\"}") >= 2.0
            && metric(&body, "ingestor_ingestion_lag_seconds_count") >= 2.0;
        if counted || std::time::Instant::now() > deadline {
            break body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    for name in OLD_COUNTERS {
        assert!(
            body.contains(&format!("# TYPE {name} counter\n")),
            "{name}:\n{body}"
        );
    }
    assert_eq!(
        metric(&body, "ingestor_files_total{outcome=\"completed\"}"),
        2.0
    );
    assert_eq!(metric(&body, "ingestor_records_ingested_total"), 500.0);
    assert_eq!(metric(&body, "ingestor_copy_chunks_total"), 6.0);
    let expected = [
        ("ingestor_chunk_commit_seconds", 6.0),
        ("ingestor_file_duration_seconds", 2.0),
        ("ingestor_ingestion_lag_seconds", 2.0),
    ];
    for (name, count) in expected {
        assert!(
            body.contains(&format!("# TYPE {name} histogram\n")),
            "{name}:\n{body}"
        );
        assert!(body.contains(&format!("# HELP {name} ")), "{name}:\n{body}");
        assert_eq!(metric(&body, &format!("{name}_count")), count, "{name}");
        let sum = metric(&body, &format!("{name}_sum"));
        assert!(sum >= 0.0, "{name}_sum {sum}");
        let buckets = buckets(&body, name);
        assert!(
            buckets.len() > 5,
            "{name}: explicit buckets, not a summary:\n{body}"
        );
        assert_eq!(
            buckets.last().unwrap(),
            &("+Inf".to_string(), count),
            "{name}"
        );
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: cumulative buckets {buckets:?}"
        );
    }
    // The chunk transactions' time is the same in the counter and in the histogram.
    let copy = metric(&body, "ingestor_copy_seconds_total");
    let chunks = metric(&body, "ingestor_chunk_commit_seconds_sum");
    assert!(
        copy > 0.0 && (copy - chunks).abs() < 1e-3,
        "{copy} vs {chunks}"
    );
    // So is the lag's: the old pair of counters beside the histogram.
    assert_eq!(metric(&body, "ingestor_ingestion_lag_count_total"), 2.0);
    let lag = metric(&body, "ingestor_ingestion_lag_seconds_total");
    let lag_sum = metric(&body, "ingestor_ingestion_lag_seconds_sum");
    assert!((lag - lag_sum).abs() < 1e-3, "{lag} vs {lag_sum}");

    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn the_records_rate_limit_holds_within_ten_percent(pool: PgPool) {
    let root = local_bucket(2, 3000).await;
    let limit = 2000.0;
    let run = util::ingest(
        &pool,
        root.path(),
        &[
            "--max-records-per-sec",
            "2000",
            "--chunk-records",
            "100",
            "--concurrency",
            "2",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Each chunk commits in its own transaction: the commit times give the achieved rate.
    let (rows, span): (i64, f64) = sqlx::query_as(
        "SELECT count(*), EXTRACT(EPOCH FROM max(created_at) - min(created_at))::float8 FROM logs",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(rows, 6000);
    let chunks = util::count(&pool, "SELECT count(DISTINCT created_at) FROM logs").await;
    assert!(chunks >= 50, "{chunks} chunk transactions");
    // Between the first and the last commit, all but one chunk's worth of records passed.
    let rate = (rows - 100) as f64 / span;
    assert!(
        (rate - limit).abs() / limit <= 0.10,
        "rate {rate:.0}/s against a limit of {limit}/s"
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn dry_run_lists_what_would_be_ingested_and_writes_nothing(pool: PgPool) {
    let root = local_bucket(4, 10).await;
    std::fs::write(root.path().join("logs/skip.txt"), "not a log").unwrap();
    let run = util::run(
        &pool,
        &[
            "run",
            "--dry-run",
            "--bucket",
            "logs",
            "--local-buckets",
            root.path().to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let listed: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("new\t"))
        .collect();
    assert_eq!(listed.len(), 4, "{}", run.stdout);
    assert!(run.stdout.contains("4 object(s)"), "{}", run.stdout);
    assert!(!run.stdout.contains("skip.txt"));
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM processed_files").await,
        0
    );
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 0);
}

/// The dry run asks the claims' own eligibility (`ingestor_claimable`): an expired lease is
/// taken over, a held lease and a retry that is not due are not.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn dry_run_lists_exactly_what_the_claims_take(pool: PgPool) {
    let root = local_bucket(5, 10).await;
    let args = [
        "run",
        "--bucket",
        "logs",
        "--local-buckets",
        root.path().to_str().unwrap(),
    ];
    let mut dry = args.to_vec();
    dry.push("--dry-run");
    // Register the five objects, then set four of them in the states under test.
    let listed = util::run(&pool, &dry).await;
    let keys: Vec<String> = listed
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("new\t"))
        .map(|l| l.split('\t').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(keys.len(), 5, "{}", listed.stdout);
    for key in &keys {
        sqlx::query(
            "INSERT INTO processed_files (bucket, s3_key, status) VALUES ('logs', $1, 'PENDING')",
        )
        .bind(key)
        .execute(&pool)
        .await
        .unwrap();
    }
    let states = [
        // A worker died: its lease expired a minute ago.
        "status = 'PROCESSING', attempts = 1, lease_expires_at = now() - interval '1 minute'",
        // A worker holds it.
        "status = 'PROCESSING', attempts = 1, lease_expires_at = now() + interval '1 hour'",
        // Its retry is due in an hour.
        "status = 'FAILED', attempts = 1, next_attempt_at = now() + interval '1 hour'",
        // Its retry is due.
        "status = 'FAILED', attempts = 1, next_attempt_at = now() - interval '1 second'",
    ];
    for (key, state) in keys.iter().zip(states) {
        let sql = format!("UPDATE processed_files SET {state} WHERE s3_key = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key)
            .execute(&pool)
            .await
            .unwrap();
    }
    let run = util::run(&pool, &dry).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let shown: Vec<(String, String)> = run
        .stdout
        .lines()
        .filter(|l| l.contains('\t'))
        .map(|l| {
            let mut cells = l.split('\t');
            let why = cells.next().unwrap().to_string();
            (cells.nth(1).unwrap().to_string(), why)
        })
        .collect();
    let expected = vec![
        (keys[0].clone(), "takeover".to_string()),
        (keys[3].clone(), "retry".to_string()),
        (keys[4].clone(), "pending".to_string()),
    ];
    let mut sorted = shown.clone();
    sorted.sort();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(sorted, expected_sorted, "{}", run.stdout);

    // The run takes exactly those.
    let mut real = args.to_vec();
    real.push("--json");
    let run = util::run(&pool, &real).await;
    assert_eq!(run.count("files_completed"), 3, "{}", run.stderr);
    let done: Vec<String> = sqlx::query_scalar(
        "SELECT s3_key FROM processed_files WHERE status = 'COMPLETED' ORDER BY s3_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut want: Vec<String> = expected.into_iter().map(|(key, _)| key).collect();
    want.sort();
    assert_eq!(done, want);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn secrets_and_escape_codes_never_reach_the_output(pool: PgPool) {
    let root = local_bucket(1, 50).await;
    let url = util::db_url(&pool).replacen(
        "postgres://postgres@",
        "postgres://postgres:pg-secret-1234@",
        1,
    );
    assert!(url.contains("pg-secret-1234"), "{url}");
    let output = util::command(
        &pool,
        &[
            "run",
            "--bucket",
            "logs",
            "--local-buckets",
            root.path().to_str().unwrap(),
            "--progress-interval",
            "0.1",
        ],
    )
    .env("DATABASE_URL", &url)
    .env("RUST_LOG", "debug")
    .env("AWS_SECRET_ACCESS_KEY", "aws-secret-5678")
    .env("AWS_ACCESS_KEY_ID", "AKIASECRET9")
    .output()
    .await
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let all = [output.stdout, output.stderr].concat();
    let text = String::from_utf8_lossy(&all);
    for secret in ["pg-secret-1234", "aws-secret-5678", "AKIASECRET9"] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(!all.contains(&0x1b), "escape codes off a terminal:\n{text}");
    assert!(text.contains("COMPLETED"), "one line per file:\n{text}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn jobs_stats_counts_by_status_with_oldest_pending_and_last_failure(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    util::write_file(dir.path(), "ok.json", b"[{\"a\":1}]");
    util::write_file(dir.path(), "bad.json", b"[{\"a\":1}");
    let run = util::ingest(&pool, dir.path(), &[]).await;
    assert_eq!(run.code, 3);
    let stats = util::run(&pool, &["jobs", "stats", "--json"]).await;
    assert_eq!(stats.code, 0, "{}", stats.stderr);
    let value = stats.summary();
    assert_eq!(
        value["counts"],
        serde_json::json!([["COMPLETED", 1], ["FAILED", 1]])
    );
    assert!(
        value["last_failure"][1]
            .as_str()
            .unwrap()
            .ends_with("bad.json")
    );
    assert!(
        value["last_failure"][3]
            .as_str()
            .unwrap()
            .contains("never closed")
    );
    assert!(value["oldest_pending"].is_null());
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn sigterm_mid_file_releases_the_file_and_a_restart_loses_nothing(pool: PgPool) {
    let root = local_bucket(1, 30_000).await;
    let bucket = root.path().to_str().unwrap();
    let args = [
        "run",
        "--json",
        "--bucket",
        "logs",
        "--local-buckets",
        bucket,
        "--chunk-records",
        "500",
        "--max-records-per-sec",
        "20000",
    ];
    let child = util::command(&pool, &args).spawn().unwrap();
    util::wait_until(&pool, util::COMMITTED, 2_000).await;
    let stopped = util::terminate(child).await;
    // The signal cut the pass short (issue 15 item 2): 143, not 0.
    assert_eq!(stopped.code, 143, "{}", stopped.stderr);
    let (status, checkpoint, lease, attempts): (String, i64, Option<uuid::Uuid>, i32) =
        sqlx::query_as("SELECT status, checkpoint, lease_token, attempts FROM processed_files")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "PENDING", "released for the next run");
    assert!(lease.is_none());
    assert_eq!(attempts, 0, "a release does not count as an attempt");
    assert!(checkpoint > 0 && checkpoint < 30_000, "{checkpoint}");
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM logs").await,
        checkpoint,
        "the checkpoint matches the rows"
    );

    // A restart right away (no lease to wait for) completes the file exactly.
    let rerun = util::run(&pool, &args[..6]).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    assert_eq!(rerun.count("records_ingested") as i64, 30_000 - checkpoint);
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT source_index) FROM logs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (30_000, 30_000));
}

/// Issue 14 item 12: a file whose worker dies on each attempt (kill -9 here, an OOM in
/// life) ends FAILED after --max-attempts instead of being taken over forever.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_that_kills_its_worker_ends_failed_after_max_attempts(pool: PgPool) {
    let root = local_bucket(1, 30_000).await;
    let bucket = root.path().to_str().unwrap();
    let args = [
        "run",
        "--json",
        "--bucket",
        "logs",
        "--local-buckets",
        bucket,
        "--max-attempts",
        "2",
        "--lease-secs",
        "1",
        "--chunk-records",
        "500",
    ];
    let slow = [&args[..], &["--max-records-per-sec", "10000"]].concat();
    let attempts = "SELECT COALESCE(max(attempts), 0)::bigint FROM processed_files";
    for attempt in 1..=2 {
        let mut worker = util::command(&pool, &slow).spawn().unwrap();
        util::wait_until(&pool, attempts, attempt).await;
        util::wait_until(&pool, util::COMMITTED, attempt * 1_000).await;
        worker.kill().await.unwrap();
        util::expire_leases(&pool).await;
    }
    let run = util::run(&pool, &args).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert_eq!(run.count("files_failed"), 1);
    assert_eq!(run.count("records_ingested"), 0, "not read a third time");
    let list = util::run(&pool, &["jobs", "list", "--status", "FAILED"]).await;
    assert!(
        list.stdout.contains("worker lost 2 times"),
        "{}",
        list.stdout
    );
    let stats = util::run(&pool, &["jobs", "stats", "--json"]).await;
    let value = stats.summary();
    assert_eq!(value["counts"], serde_json::json!([["FAILED", 1]]));
    assert!(
        value["last_failure"][3]
            .as_str()
            .unwrap()
            .contains("worker lost 2 times")
    );

    // `jobs retry` takes it up again, at its checkpoint.
    let retry = util::run(&pool, &["jobs", "retry", "--failed"]).await;
    assert_eq!(retry.code, 0, "{}", retry.stderr);
    let rerun = util::run(&pool, &args).await;
    assert_eq!(rerun.code, 0, "{}", rerun.stderr);
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT source_index) FROM logs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((rows, distinct), (30_000, 30_000));
}

/// Issue 14 item 13: `--prefix /2024/` lists and claims the same keys (`2024/...`).
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_prefix_with_a_leading_slash_takes_its_files(pool: PgPool) {
    let root = local_bucket(3, 10).await;
    util::generate(&root.path().join("logs").join("2023"), 2, 10).await;
    let bucket = root.path().to_str().unwrap();
    let run = util::run(
        &pool,
        &[
            "run",
            "--json",
            "--bucket",
            "logs",
            "--local-buckets",
            bucket,
            "--prefix",
            "/2024/",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 3);
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT s3_key, status FROM processed_files ORDER BY 1")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|(key, status)| key.starts_with("2024/") && status == "COMPLETED"),
        "{statuses:?}"
    );
    let stats = util::run(&pool, &["jobs", "stats", "--json", "--prefix", "/2024/"]).await;
    assert_eq!(
        stats.summary()["counts"],
        serde_json::json!([["COMPLETED", 3]])
    );
}
