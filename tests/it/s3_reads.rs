//! Reading objects from the S3-protocol server when reads break: request timeouts shorter
//! than the read (`--s3-timeout-secs`), bodies cut short by the network (the fault proxy),
//! a store without etags, and an object replaced while it is being read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use sqlx::PgPool;

use crate::s3::{Fault, FaultProxy, S3Server, put};
use crate::util;

/// The key of the large object of these tests.
const KEY: &str = "big/app.ndjson";

/// Plain NDJSON of `n` records of about 250 bytes (no gzip: bytes read are the JSON).
fn ndjson(n: usize, tag: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 260);
    for i in 0..n {
        let record = json!({
            "level": 30,
            "time": 1_730_800_800_000_i64 + i as i64,
            "msg": format!("{tag} record {i}"),
            "req": {"method": "GET", "url": format!("/items/{i}?page={}", i % 7)},
            "padding": "x".repeat(150),
        });
        out.extend_from_slice(record.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// The one job's status, attempts and error.
async fn job(pool: &PgPool) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, metadata->>'error' FROM processed_files")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Every record once: rows, distinct indexes.
async fn rows(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT source_index) FROM logs")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn resumes(run: &util::Run) -> usize {
    run.stderr.matches("resuming the read").count()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_read_that_outlives_many_request_timeouts_completes_in_one_attempt(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("slow").await;
    let n = 24_000;
    let body = ndjson(n, "slow");
    assert!(body.len() > 6_000_000, "{}", body.len());
    put(&store, KEY, body).await;
    // ~6 MB at 250 kB/s: 25 s of reading with 1 s per request, so ~20 requests time out
    // (each delivers 250-500 kB). object_store alone resumes a body 10 times, then gives up
    // (at ~4 MB here); the resumable read starts it over with a fresh budget.
    let args = [
        "--s3-timeout-secs",
        "1",
        "--max-bytes-per-sec",
        "250000",
        "--max-attempts",
        "1",
    ];
    let run = crate::run::run(&pool, &s3.endpoint(), "slow", &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(job(&pool).await, ("COMPLETED".into(), 1, None));
    assert_eq!(rows(&pool).await, (n as i64, n as i64));
    let timeouts = run
        .stderr
        .matches("error while reading response body")
        .count();
    assert!(
        resumes(&run) >= 1 && timeouts + resumes(&run) >= 12,
        "{}",
        run.stderr
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_body_cut_short_again_and_again_is_resumed_in_one_attempt(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("cut").await;
    let n = 16_000;
    put(&store, KEY, ndjson(n, "cut")).await;
    // Every GET of the object is cut after 256 kB of body: 16 cuts for 4 MB.
    let decide = |head: &str| {
        head.starts_with(&format!("GET /cut/{KEY}"))
            .then_some(Fault::CutAfter(256 * 1024))
    };
    let proxy = FaultProxy::start_with(s3.port, Arc::new(decide)).await;
    let run = crate::run::run(&pool, &proxy.endpoint(), "cut", &["--max-attempts", "1"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(job(&pool).await, ("COMPLETED".into(), 1, None));
    assert_eq!(rows(&pool).await, (n as i64, n as i64));
    assert!(proxy.injected.load(Ordering::SeqCst) >= 15);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_body_cut_short_once_by_a_store_without_etags_is_resumed(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("noetag").await;
    let n = 4_000;
    put(&store, KEY, ndjson(n, "noetag")).await;
    // No GET of the object has an ETag; the first is cut after 100 kB of body.
    let gets = AtomicUsize::new(0);
    let decide = move |head: &str| {
        if !head.starts_with(&format!("GET /noetag/{KEY}")) {
            return None;
        }
        let first = gets.fetch_add(1, Ordering::SeqCst) == 0;
        Some(Fault::NoEtag(first.then_some(100_000)))
    };
    let proxy = FaultProxy::start_with(s3.port, Arc::new(decide)).await;
    let args = ["--max-attempts", "1"];
    let run = crate::run::run(&pool, &proxy.endpoint(), "noetag", &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(job(&pool).await, ("COMPLETED".into(), 1, None));
    assert_eq!(rows(&pool).await, (n as i64, n as i64));
    assert_eq!(resumes(&run), 1, "{}", run.stderr);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn an_object_replaced_while_being_read_is_an_error_that_says_so(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("changing").await;
    put(&store, KEY, ndjson(16_000, "first")).await;
    // Every GET is cut after 200 kB: the read resumes until the object is replaced.
    let gets = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&gets);
    let decide = move |head: &str| {
        if !head.starts_with(&format!("GET /changing/{KEY}")) {
            return None;
        }
        seen.fetch_add(1, Ordering::SeqCst);
        Some(Fault::CutAfter(200_000))
    };
    let proxy = FaultProxy::start_with(s3.port, Arc::new(decide)).await;
    let args = ["--max-attempts", "1", "--max-bytes-per-sec", "400000"];
    let mut command = util::command(
        &pool,
        &[&["run", "--json", "--bucket", "changing"], &args[..]].concat(),
    );
    for (key, value) in S3Server::env(&proxy.endpoint()) {
        command.env(key, value);
    }
    let child = command.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while gets.load(Ordering::SeqCst) < 2 {
        assert!(std::time::Instant::now() < deadline, "no resumed read");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    put(&store, KEY, ndjson(16_000, "second")).await;
    let output = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    let (status, attempts, error) = job(&pool).await;
    assert_eq!((status.as_str(), attempts), ("FAILED", 1));
    let error = error.unwrap();
    assert!(
        error.contains("object changed while being read") && error.contains(KEY),
        "{error}"
    );
    // No record of the second version was mixed in.
    let second = util::count(
        &pool,
        "SELECT count(*) FROM logs WHERE message LIKE 'second%'",
    )
    .await;
    assert_eq!(second, 0);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn the_s3_timeout_is_bounded(pool: PgPool) {
    for bad in ["0", "3601", "soon"] {
        let run = util::run(&pool, &["run", "--bucket", "b", "--s3-timeout-secs", bad]).await;
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(run.stderr.contains("--s3-timeout-secs"), "{}", run.stderr);
    }
}
