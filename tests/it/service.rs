//! Running it as a service (issue 22): `/healthz` and `/readyz` of a real `run --follow`
//! (readiness follows the database through a TCP proxy that goes down and comes back), keyset
//! paging of `jobs list` and batched `jobs retry --failed`, the Grafana dashboard against the
//! series `/metrics` serves, and the deployment examples against `--help`.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::Value;
use sqlx::PgPool;

use crate::util::{self, PgProxy};

/// The repository's root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP exchange: the status and the body, or None when nothing listens.
async fn http(port: u16, request_line: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("{request_line}\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    http(port, &format!("GET {path} HTTP/1.1")).await
}

/// Polls `path` until it answers `status`; its body. Fails after `within`.
async fn wait_for(port: u16, path: &str, status: u16, within: Duration) -> String {
    let started = Instant::now();
    let mut last;
    loop {
        match get(port, path).await {
            Some((got, body)) if got == status => return body,
            other => last = other,
        }
        assert!(
            started.elapsed() < within,
            "{path} did not answer {status} within {within:?}; last: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A local bucket `root/logs/` with `files` generated files of `records` records.
async fn local_bucket(files: usize, records: u64) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    util::generate(&root.path().join("logs").join("2024"), files, records).await;
    root
}

/// `run --follow` of bucket `logs` under `root`, serving on `port`, with `extra` flags.
fn follow_args(root: &Path, port: u16, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        "--json",
        "--bucket",
        "logs",
        "--local-buckets",
        root.to_str().unwrap(),
        "--follow",
        "--interval",
        "0.5",
        "--metrics-addr",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("127.0.0.1:{port}"));
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

const COMPLETED: &str = "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'";

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn readyz_follows_the_database_without_a_restart_and_unknown_paths_are_404(pool: PgPool) {
    let root = local_bucket(1, 200).await;
    let proxy = PgProxy::start(&pool).await;
    let port = free_port();
    let args = follow_args(root.path(), port, &["--reconnect-secs", "120"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = util::command(&pool, &args)
        .env("DATABASE_URL", proxy.url(&pool))
        .spawn()
        .unwrap();
    util::wait_until(&pool, COMPLETED, 1).await;

    // Running, the database answering: alive and ready; /metrics as before; other paths 404.
    assert_eq!(
        wait_for(port, "/readyz", 200, Duration::from_secs(30)).await,
        "ok\n"
    );
    assert_eq!(get(port, "/healthz").await, Some((200, "ok\n".into())));
    let (status, metrics) = get(port, "/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("# TYPE ingestor_files_total counter"),
        "{metrics}"
    );
    for path in ["/", "/metricsx", "/healthz/", "/ready", "/favicon.ico"] {
        let (status, body) = get(port, path).await.unwrap();
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = http(port, "POST /readyz HTTP/1.1").await.unwrap();
    assert_eq!(status, 405);

    // The database goes away: not ready, saying why in one line; still alive, still running.
    proxy.down();
    let reason = wait_for(port, "/readyz", 503, Duration::from_secs(15)).await;
    assert!(reason.starts_with("database: no answer"), "{reason}");
    assert_eq!(reason.lines().count(), 1, "{reason:?}");
    assert_eq!(get(port, "/healthz").await, Some((200, "ok\n".into())));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, reason) = get(port, "/readyz").await.unwrap();
    assert_eq!(status, 503, "still down: {reason}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the worker rides out the outage"
    );

    // It comes back: ready again, the same process, which goes on ingesting.
    proxy.up().await;
    assert_eq!(
        wait_for(port, "/readyz", 200, Duration::from_secs(30)).await,
        "ok\n"
    );
    assert!(child.try_wait().unwrap().is_none(), "no restart");
    util::generate(&root.path().join("staging"), 1, 100).await;
    std::fs::rename(
        root.path().join("staging"),
        root.path().join("logs").join("2025"),
    )
    .unwrap();
    util::wait_until(&pool, COMPLETED, 2).await;

    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(stopped.count("records_ingested"), 300);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn healthz_answers_503_while_the_process_is_stopping(pool: PgPool) {
    // One file whose first chunk takes ~5 s (10,000 records at 2,000/s): a SIGTERM waits
    // for that chunk, and the address answers meanwhile.
    let root = local_bucket(1, 20_000).await;
    let port = free_port();
    let args = follow_args(
        root.path(),
        port,
        &["--chunk-records", "10000", "--max-records-per-sec", "2000"],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = util::command(&pool, &args).spawn().unwrap();
    let processing = "SELECT count(*) FROM processed_files WHERE status = 'PROCESSING'";
    util::wait_until(&pool, processing, 1).await;
    assert_eq!(
        wait_for(port, "/healthz", 200, Duration::from_secs(30)).await,
        "ok\n"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = child.id().unwrap();
    util::sigterm(pid);
    let started = Instant::now();
    let mut saw = None;
    while started.elapsed() < Duration::from_secs(30) {
        match get(port, "/healthz").await {
            Some((503, body)) => {
                saw = Some(body);
                break;
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            None => break,
        }
    }
    assert_eq!(
        saw.as_deref(),
        Some("shutting down\n"),
        "/healthz never said 503 while stopping"
    );
    if let Some((status, body)) = get(port, "/readyz").await {
        assert_eq!((status, body.as_str()), (503, "shutting down\n"));
    }
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("stops after SIGTERM")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(143), "cut short: {stderr}");
}

/// Inserts `n` jobs of `bucket`: keys in an order unrelated to their insertion (md5), some
/// with spaces and capitals, statuses in turn.
async fn insert_jobs(pool: &PgPool, bucket: &str, n: i64) {
    sqlx::query(
        "INSERT INTO processed_files (bucket, s3_key, status)
         SELECT $1,
                CASE WHEN i % 7 = 0 THEN 'Logs/' ELSE 'logs/' END
                  || md5(i::text) || CASE WHEN i % 5 = 0 THEN ' copy' ELSE '' END || '.json.gz',
                (ARRAY['PENDING', 'COMPLETED', 'FAILED'])[1 + i % 3]
         FROM generate_series(1, $2) AS i",
    )
    .bind(bucket)
    .bind(n)
    .execute(pool)
    .await
    .unwrap();
}

/// One page of `jobs list --json ARGS`: the keys, and the key to continue from.
async fn json_page(pool: &PgPool, args: &[&str]) -> (Vec<String>, Option<String>) {
    let mut all = vec!["jobs", "list", "--json"];
    all.extend_from_slice(args);
    let run = util::run(pool, &all).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut keys = Vec::new();
    let mut next = None;
    for line in run.stdout.lines() {
        let value: Value = serde_json::from_str(line).unwrap();
        match value.get("s3_key") {
            Some(key) => keys.push(key.as_str().unwrap().to_string()),
            None => {
                assert!(next.is_none(), "one last line: {}", run.stdout);
                next = Some(value["next_after"].as_str().unwrap().to_string());
            }
        }
    }
    (keys, next)
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn paging_through_2500_jobs_by_100_yields_each_job_once(pool: PgPool) {
    insert_jobs(&pool, "b", 2_500).await;
    insert_jobs(&pool, "a", 30).await;
    insert_jobs(&pool, "c", 30).await;
    let expected: Vec<String> = sqlx::query_scalar(
        "SELECT s3_key FROM processed_files WHERE bucket = 'b' ORDER BY bucket, s3_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();

    let mut seen: Vec<String> = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = vec!["--bucket", "b", "--limit", "100"];
        if let Some(key) = &after {
            args.extend(["--after", key.as_str()]);
        }
        let (keys, next) = json_page(&pool, &args).await;
        pages += 1;
        assert!(keys.len() <= 100);
        if pages == 10 {
            // Workers change jobs meanwhile (status, update time), before and after the
            // cursor: paging by key still yields each job once.
            sqlx::query(
                "UPDATE processed_files SET status = 'PROCESSING', updated_at = now()
                 WHERE bucket = 'b' AND status = 'PENDING'",
            )
            .execute(&pool)
            .await
            .unwrap();
        }
        seen.extend(keys);
        match next {
            Some(key) => {
                assert_eq!(
                    Some(&key),
                    seen.last(),
                    "the next page starts after the last key"
                );
                after = Some(key);
            }
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    assert_eq!(pages, 25);
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "no job twice");
    assert_eq!(seen, expected, "every job of the bucket, in key order");

    // The text output says where to continue too, one status at a time.
    let failed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM processed_files WHERE bucket = 'b' AND status = 'FAILED'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut text_seen = 0;
    let mut after: Option<String> = None;
    loop {
        let mut args = vec![
            "jobs", "list", "--bucket", "b", "--status", "FAILED", "--limit", "300",
        ];
        if let Some(key) = &after {
            args.extend(["--after", key.as_str()]);
        }
        let run = util::run(&pool, &args).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
        after = None;
        for line in run.stdout.lines() {
            match line.strip_prefix("next: --after ") {
                Some(key) => after = Some(key.to_string()),
                None => {
                    assert!(line.starts_with("FAILED\tb\t"), "{line}");
                    text_seen += 1;
                }
            }
        }
        if after.is_none() {
            break;
        }
    }
    assert_eq!(text_seen, failed);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn jobs_list_filters_by_prefix_and_update_time(pool: PgPool) {
    insert_jobs(&pool, "b", 300).await;
    sqlx::query(
        "UPDATE processed_files SET updated_at = CASE
             WHEN s3_key LIKE 'Logs/%' THEN '2026-11-30T12:00:00Z'::timestamptz
             ELSE '2026-12-01T12:00:00Z'::timestamptz END",
    )
    .execute(&pool)
    .await
    .unwrap();
    let count = |sql: &'static str| util::count(&pool, sql);
    let capitals = count("SELECT count(*) FROM processed_files WHERE s3_key LIKE 'Logs/%'").await;
    let lower = 300 - capitals;

    let (keys, next) = json_page(&pool, &["--bucket", "b", "--prefix", "/Logs/"]).await;
    assert_eq!((keys.len() as i64, next), (capitals, None));
    assert!(keys.iter().all(|k| k.starts_with("Logs/")));

    let (keys, _) = json_page(&pool, &["--until", "2026-12-01"]).await;
    assert_eq!(keys.len() as i64, capitals, "--until is exclusive");
    let (keys, _) = json_page(&pool, &["--since", "2026-12-01T12:00:00Z"]).await;
    assert_eq!(keys.len() as i64, lower, "--since is inclusive");
    let (keys, _) = json_page(
        &pool,
        &[
            "--since",
            "2026-12-01T13:00:00+01:00",
            "--until",
            "2026-12-02",
        ],
    )
    .await;
    assert_eq!(keys.len() as i64, lower, "an offset is honoured");
    let (keys, _) = json_page(
        &pool,
        &[
            "--status",
            "FAILED",
            "--prefix",
            "logs/",
            "--since",
            "2026-12-01",
        ],
    )
    .await;
    let failed_lower = count(
        "SELECT count(*) FROM processed_files WHERE status = 'FAILED' AND s3_key LIKE 'logs/%'",
    )
    .await;
    assert_eq!(keys.len() as i64, failed_lower);

    // Without --bucket a full page says how to go on; --after needs --bucket.
    let (keys, next) = {
        let run = util::run(&pool, &["jobs", "list", "--json", "--limit", "10"]).await;
        let last: Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
        (run.stdout.lines().count(), last)
    };
    assert_eq!(
        (keys, next),
        (11, serde_json::json!({ "next_after": null }))
    );
    let text = util::run(&pool, &["jobs", "list", "--limit", "10"]).await;
    assert!(
        text.stdout.lines().last().unwrap().contains("add --bucket"),
        "{}",
        text.stdout
    );
    let refused = util::run(&pool, &["jobs", "list", "--after", "x"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("--bucket"), "{}", refused.stderr);
    let refused = util::run(&pool, &["jobs", "list", "--since", "yesterday"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(refused.stderr.contains("RFC 3339"), "{}", refused.stderr);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn jobs_retry_failed_puts_a_large_set_back_in_batches(pool: PgPool) {
    // 12,000 FAILED jobs of bucket b (some permanent, some with workers lost), and jobs
    // that must not move: another bucket's, and other statuses.
    sqlx::query(
        "INSERT INTO processed_files (bucket, s3_key, status, attempts, next_attempt_at, metadata)
         SELECT 'b', 'logs/' || md5(i::text), 'FAILED', 5, now() + interval '1 hour',
                jsonb_build_object('error', 'boom', 'permanent', i % 2 = 0, 'workersLost', 2)
         FROM generate_series(1, 12000) AS i",
    )
    .execute(&pool)
    .await
    .unwrap();
    insert_jobs(&pool, "other", 300).await;
    insert_jobs(&pool, "b", 90).await;
    let failed_b = util::count(
        &pool,
        "SELECT count(*) FROM processed_files WHERE bucket = 'b' AND status = 'FAILED'",
    )
    .await;
    let before_other: Vec<(String, String)> = sqlx::query_as(
        "SELECT s3_key, status FROM processed_files WHERE bucket = 'other' ORDER BY s3_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();

    let run = util::run_debug(&pool, &["jobs", "retry", "--failed", "--bucket", "b"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.trim(),
        format!("{failed_b} job(s) back to PENDING")
    );
    let batches = run.stderr.matches("jobs retry: batch done").count() as i64;
    assert_eq!(
        batches,
        failed_b / ingestor::jobs::RETRY_BATCH + 1,
        "one statement per batch of {}:\n{}",
        ingestor::jobs::RETRY_BATCH,
        run.stderr
    );

    let (left, pending, reset): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'FAILED'),
                count(*) FILTER (WHERE status = 'PENDING' AND s3_key NOT LIKE '%.json.gz'),
                count(*) FILTER (WHERE s3_key NOT LIKE '%.json.gz' AND attempts = 0
                                 AND next_attempt_at IS NULL AND NOT metadata ? 'permanent'
                                 AND NOT metadata ? 'workersLost' AND metadata ? 'error')
         FROM processed_files WHERE bucket = 'b'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((left, pending, reset), (0, 12_000, 12_000));
    let after_other: Vec<(String, String)> = sqlx::query_as(
        "SELECT s3_key, status FROM processed_files WHERE bucket = 'other' ORDER BY s3_key",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(after_other, before_other, "another bucket's jobs untouched");

    // --prefix narrows it (a string prefix of the key, a leading / ignored).
    let run = util::run(&pool, &["jobs", "retry", "--failed", "--prefix", "/Logs/"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let capitals = util::count(
        &pool,
        "SELECT count(*) FROM processed_files
         WHERE bucket = 'other' AND s3_key LIKE 'Logs/%' AND status = 'PENDING'",
    )
    .await;
    let others_failed = util::count(
        &pool,
        "SELECT count(*) FROM processed_files WHERE bucket = 'other' AND status = 'FAILED'",
    )
    .await;
    assert!(capitals > 0 && others_failed > 0);
    assert!(
        util::count(
            &pool,
            "SELECT count(*) FROM processed_files WHERE s3_key LIKE 'Logs/%' AND status = 'FAILED'",
        )
        .await
            == 0
    );
}

/// The metric names a PromQL expression uses (`ingestor_...`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(found) = expr[i..].find("ingestor_") {
        let start = i + found;
        let before_ok =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if before_ok {
            out.push(expr[start..end].to_string());
        }
        i = end;
    }
    out
}

/// Every string under a key named `expr` or `query` (panels, rows, variables).
fn queries(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query" | "definition", Value::String(text)) => {
                        out.push(text.clone())
                    }
                    _ => queries(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| queries(item, out)),
        _ => {}
    }
}

/// The series names a text exposition serves (`name` of `name{labels} value`).
fn served_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            line.split(['{', ' '])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn the_dashboard_queries_only_metrics_the_binary_serves(pool: PgPool) {
    let root = local_bucket(1, 100).await;
    let port = free_port();
    let args = follow_args(root.path(), port, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let child = util::command(&pool, &args).spawn().unwrap();
    util::wait_until(&pool, COMPLETED, 1).await;
    wait_for(port, "/healthz", 200, Duration::from_secs(30)).await;
    let (_, body) = get(port, "/metrics").await.unwrap();
    let served = served_names(&body);
    util::terminate(child).await;
    assert!(served.contains("ingestor_files_total"), "{body}");

    let path = root_path("deploy/grafana/ingestor.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    let mut texts = Vec::new();
    queries(&dashboard, &mut texts);
    let used: BTreeSet<String> = texts.iter().flat_map(|t| metric_names(t)).collect();
    let missing: Vec<&String> = used.iter().filter(|name| !served.contains(*name)).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries series /metrics does not serve: {missing:?}\nserved: {served:?}"
    );
    // What the dashboard is for: each of these is on it.
    for needed in [
        "ingestor_records_ingested_total",
        "ingestor_files_total",
        "ingestor_ingestion_lag_seconds_bucket",
        "ingestor_retries_total",
        "ingestor_lease_takeovers_total",
        "ingestor_chunk_commit_seconds_bucket",
        "ingestor_records_rejected_total",
    ] {
        assert!(used.contains(needed), "{needed} missing from the dashboard");
    }
    // Grafana's own checks: panel ids unique, every target with a query.
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: HashSet<i64> = panels.iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        assert!(
            targets
                .iter()
                .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty()))
        );
    }
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names(
            "histogram_quantile(0.9, sum by (le) (rate(ingestor_a_bucket{job=~\"$job\"}[5m]))) / ingestor_b_total"
        ),
        vec!["ingestor_a_bucket", "ingestor_b_total"]
    );
    assert!(metric_names("sum(rate(not_ingestor_x[1m]))").is_empty());
    assert_eq!(
        served_names("# HELP a x\na{l=\"1\"} 0\nb 1\n\n"),
        BTreeSet::from(["a".to_string(), "b".to_string()])
    );
}

fn root_path(relative: &str) -> PathBuf {
    root().join(relative)
}

/// `ingestor SUBCOMMAND --help`.
fn help(subcommand: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ingestor"))
        .args(subcommand)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout).unwrap()
}

/// Checks a command line given to the binary: it parses as `ingestor` would parse it, and
/// every `--flag` and `INGESTOR_*` variable is in its subcommand's `--help`. Returns the
/// value of `--concurrency` (3 when absent) and of `--metrics-addr`.
fn check_command(what: &str, args: &[String], env: &[String]) -> (u64, Option<String>) {
    let mut argv = vec!["ingestor".to_string()];
    argv.extend(args.iter().cloned());
    if let Err(e) = ingestor::cli::Cli::try_parse_from(&argv) {
        panic!("{what}: `{}` does not parse: {e}", argv.join(" "));
    }
    let subcommand = args.first().expect("a subcommand").as_str();
    let text = help(&[subcommand]);
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let flag = flag.split('=').next().unwrap();
        assert!(
            text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")),
            "{what}: {flag} is not in `ingestor {subcommand} --help`"
        );
    }
    for name in env.iter().filter(|n| n.starts_with("INGESTOR_")) {
        assert!(
            text.contains(&format!("[env: {name}=")),
            "{what}: {name} is not in `ingestor {subcommand} --help`"
        );
    }
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args[i + 1].clone())
    };
    let concurrency = value("--concurrency").map_or(3, |c| c.parse().unwrap());
    (concurrency, value("--metrics-addr"))
}

/// README's memory per `--concurrency` (the `--concurrency` row: "about N MB each"), in bytes.
fn readme_bytes_per_stream() -> u64 {
    let readme = std::fs::read_to_string(root_path("README.md")).unwrap();
    let row = readme
        .lines()
        .find(|line| line.starts_with("| `--concurrency` |"))
        .expect("README's --concurrency row");
    let figure = row
        .split("about ")
        .nth(1)
        .and_then(|rest| rest.split(" MB each").next())
        .unwrap_or_else(|| panic!("no `about N MB each` in {row}"));
    figure.parse::<u64>().unwrap() * 1_000_000
}

/// A Kubernetes quantity of memory (`384Mi`, `1G`) or a systemd size (`512M`: powers of
/// 1,024), in bytes.
fn memory_bytes(quantity: &str, binary_letters: bool) -> u64 {
    let units: [(&str, u64); 6] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("K", if binary_letters { 1 << 10 } else { 1_000 }),
        ("M", if binary_letters { 1 << 20 } else { 1_000_000 }),
        (
            "G",
            if binary_letters {
                1 << 30
            } else {
                1_000_000_000
            },
        ),
    ];
    for (suffix, factor) in units {
        if let Some(number) = quantity.strip_suffix(suffix) {
            return number.parse::<u64>().unwrap() * factor;
        }
    }
    quantity.parse().unwrap()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The YAML documents of a manifest, as JSON values.
fn yaml_documents(path: &Path) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|document| {
            Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{} is not well-formed YAML: {e}", path.display()))
        })
        .collect()
}

#[test]
fn deploy_files_pass_only_flags_the_binary_knows() {
    let per_stream = readme_bytes_per_stream();
    let mut kinds = Vec::new();
    for name in ["deployment.yaml", "backfill-job.yaml"] {
        let path = root_path(&format!("deploy/kubernetes/{name}"));
        for document in yaml_documents(&path) {
            let kind = document["kind"].as_str().expect("a kind").to_string();
            let pod = &document["spec"]["template"]["spec"];
            let containers = pod["containers"].as_array().expect("containers");
            for container in containers {
                let what = format!("{name}: {}", container["name"]);
                let args = strings(&container["args"]);
                let env: Vec<String> = container["env"]
                    .as_array()
                    .map(|vars| {
                        vars.iter()
                            .map(|v| v["name"].as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                let (concurrency, metrics_addr) = check_command(&what, &args, &env);
                assert_eq!(
                    args.contains(&"--follow".to_string()),
                    kind == "Deployment",
                    "{what}: workers follow, a backfill makes one pass"
                );

                // Probes: on the metrics address's port, on the paths it serves.
                let port: u64 = metrics_addr
                    .expect("--metrics-addr")
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let ports = container["ports"].as_array().expect("ports");
                let probes = ["startupProbe", "livenessProbe", "readinessProbe"];
                for probe in probes.iter().filter(|p| !container[**p].is_null()) {
                    let get = &container[*probe]["httpGet"];
                    let path = get["path"].as_str().unwrap();
                    let expected = if *probe == "readinessProbe" {
                        "/readyz"
                    } else {
                        "/healthz"
                    };
                    assert_eq!(path, expected, "{what}: {probe}");
                    let probe_port = match &get["port"] {
                        Value::String(name) => ports
                            .iter()
                            .find(|p| p["name"] == name.as_str())
                            .and_then(|p| p["containerPort"].as_u64())
                            .unwrap_or_else(|| panic!("{what}: no port named {name}")),
                        number => number.as_u64().unwrap(),
                    };
                    assert_eq!(probe_port, port, "{what}: {probe} on the metrics port");
                }
                assert!(!container["livenessProbe"].is_null(), "{what}: liveness");
                if kind == "Deployment" {
                    assert!(!container["readinessProbe"].is_null(), "{what}: readiness");
                }

                // Memory as the README says: about N MB per --concurrency.
                let resources = &container["resources"];
                let request =
                    memory_bytes(resources["requests"]["memory"].as_str().unwrap(), false);
                let limit = memory_bytes(resources["limits"]["memory"].as_str().unwrap(), false);
                let figure = concurrency * per_stream;
                assert!(
                    request >= figure && request <= figure * 3 / 2,
                    "{what}: a request of {request} bytes for {concurrency} x {per_stream}"
                );
                assert!(limit >= request, "{what}: the limit is above the request");
            }
            if !document["spec"]["podFailurePolicy"].is_null() {
                assert_eq!(
                    pod["restartPolicy"], "Never",
                    "{name}: podFailurePolicy needs it"
                );
            }
            kinds.push(kind);
        }
    }
    assert_eq!(kinds, ["Deployment", "Job"]);

    // The systemd unit: its ExecStart and environment file.
    let unit = std::fs::read_to_string(root_path("deploy/systemd/ingestor.service")).unwrap();
    let mut section = String::new();
    let mut settings = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            assert!(line.ends_with(']'), "ingestor.service: {line}");
            section = line.to_string();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("ingestor.service: not KEY=VALUE: {line}"));
        assert!(
            !section.is_empty(),
            "ingestor.service: {line} outside a section"
        );
        settings.push((section.clone(), key.to_string(), value.to_string()));
    }
    let setting = |key: &str| {
        settings
            .iter()
            .find(|(_, k, _)| k == key)
            .map(|(_, _, v)| v.clone())
            .unwrap_or_else(|| panic!("ingestor.service: no {key}"))
    };
    let exec = setting("ExecStart");
    let words: Vec<String> = exec.split_whitespace().map(str::to_string).collect();
    assert!(words[0].ends_with("/ingestor"), "{exec}");
    let env_file =
        std::fs::read_to_string(root_path("deploy/systemd/ingestor.env.example")).unwrap();
    let env: Vec<String> = env_file
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| l.split('=').next().unwrap().to_string())
        .collect();
    let (concurrency, _) = check_command("ingestor.service", &words[1..], &env);
    assert!(words.contains(&"--follow".to_string()));
    let max = memory_bytes(&setting("MemoryMax"), true);
    assert!(max >= concurrency * per_stream, "MemoryMax {max}");
    assert!(setting("SuccessExitStatus").contains("143"));
    assert_eq!(
        settings
            .iter()
            .map(|(s, _, _)| s.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["[Install]", "[Service]", "[Unit]"])
    );
}
