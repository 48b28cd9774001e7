//! `run --follow --notifications sqs=QUEUE_URL` (issue 19): objects are recorded as the
//! bucket's notifications report them (moto delivers S3 events to its own SQS queues), the
//! full listing of `--reconcile-interval` finds what no notification reported, and a worker
//! killed with a batch in hand loses nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ingestor::source::notifications::SqsClient;
use ingestor::source::signed::SignedClient;
use object_store::StaticCredentialProvider;
use object_store::aws::AwsCredential;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::s3::{Fault, FaultProxy, S3Server, put};
use crate::util;
use ingestor_s3kit::Kind;

/// moto's account.
const ACCOUNT: &str = "123456789012";

fn object(n: usize, tag: &str) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|i| json!({"level": 30, "time": 1_730_800_800_000i64 + i as i64, "msg": format!("{tag} {i}")}))
        .collect();
    util::gzip(&util::json_array(&records))
}

/// A client of `queue_url` on moto (any credentials do).
fn sqs(endpoint: &str, queue_url: &str) -> SqsClient {
    let credentials = Arc::new(StaticCredentialProvider::new(AwsCredential {
        key_id: "test".into(),
        secret_key: "test".into(),
        token: None,
    }));
    let signed = SignedClient::new(
        credentials,
        "us-east-1".into(),
        true,
        Some(Duration::from_secs(30)),
        3,
    )
    .unwrap();
    SqsClient::new(signed, queue_url, Some(endpoint)).unwrap()
}

/// Creates queue `name` with a visibility timeout of `visibility` seconds; its URL.
async fn create_queue(s3: &S3Server, name: &str, visibility: u64) -> String {
    let response = sqs(&s3.endpoint(), "")
        .call(
            "CreateQueue",
            &json!({"QueueName": name, "Attributes": {"VisibilityTimeout": visibility.to_string()}}),
        )
        .await
        .unwrap();
    response["QueueUrl"].as_str().unwrap().to_string()
}

/// Makes `bucket` send its ObjectCreated events to queue `queue` (moto sends S3's test
/// event to it at once, as S3 does).
async fn notify(s3: &S3Server, bucket: &str, queue: &str) {
    let body = format!(
        "<NotificationConfiguration><QueueConfiguration><Id>ingestor</Id>\
         <Queue>arn:aws:sqs:us-east-1:{ACCOUNT}:{queue}</Queue><Event>s3:ObjectCreated:*</Event>\
         </QueueConfiguration></NotificationConfiguration>"
    );
    let mut stream = TcpStream::connect(("127.0.0.1", s3.port)).await.unwrap();
    let head = format!(
        "PUT /{bucket}?notification HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        s3.port,
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let status = String::from_utf8_lossy(&response);
    assert!(
        status.starts_with("HTTP/1.1 200"),
        "PutBucketNotificationConfiguration failed: {status}"
    );
}

/// (visible, in flight) messages of the queue.
async fn messages(queue: &SqsClient) -> (u64, u64) {
    let attributes = queue.attributes().await.unwrap();
    let count = |name: &str| {
        attributes
            .get(name)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {attributes:?}"))
    };
    (
        count("ApproximateNumberOfMessages"),
        count("ApproximateNumberOfMessagesNotVisible"),
    )
}

async fn wait_for_messages(queue: &SqsClient, want: (u64, u64), within: Duration) {
    let started = Instant::now();
    loop {
        let now = messages(queue).await;
        if now == want {
            return;
        }
        assert!(
            started.elapsed() < within,
            "the queue holds {now:?} (visible, in flight), not {want:?}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn follow(
    pool: &PgPool,
    s3: &S3Server,
    queue_url: &str,
    extra: &[&str],
) -> tokio::process::Command {
    let notifications = format!("sqs={queue_url}");
    let mut args = vec![
        "run",
        "--json",
        "--bucket",
        "events",
        "--follow",
        "--notifications",
        &notifications,
        "--notifications-wait-secs",
        "1",
    ];
    args.extend_from_slice(extra);
    let mut command = util::command(pool, &args);
    for (key, value) in S3Server::env(&s3.endpoint()) {
        command.env(key, value);
    }
    command
}

/// Objects uploaded while `run --follow --notifications` runs are ingested within 5 s of
/// their upload although passes are 60 s apart (the notifications wake them); each record
/// once; the same content uploaded again is the version already known (no new
/// ingestion); S3's test event and an object outside `--prefix` are deleted; the queue
/// ends drained.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn objects_uploaded_while_following_notifications_are_ingested_within_5_s_exactly_once(
    pool: PgPool,
) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("events").await;
    let queue_url = create_queue(&s3, "events-q", 30).await;
    notify(&s3, "events", "events-q").await;
    let queue = sqs(&s3.endpoint(), &queue_url);
    assert_eq!(messages(&queue).await, (1, 0), "S3's test event waits");
    let child = follow(
        &pool,
        &s3,
        &queue_url,
        &["--prefix", "logs/", "--interval", "60"],
    )
    .spawn()
    .unwrap();
    // The worker took (and deleted) the test event: it is receiving.
    wait_for_messages(&queue, (0, 0), Duration::from_secs(15)).await;

    let keys = [
        "logs/a.json.gz",
        "logs/with space+plus.json.gz",
        "logs/c.json.gz",
        "logs/d.json.gz",
    ];
    let mut records = 0;
    for (i, key) in keys.iter().enumerate() {
        let n = 3 + i;
        records += n;
        put(&store, key, object(n, key)).await;
        let lag = util::completed_within(&pool, key, Duration::from_secs(5)).await;
        eprintln!("{key}: COMPLETED {lag:?} after its upload");
    }
    // Outside --prefix: its notification is deleted, nothing recorded.
    put(&store, "other/x.json.gz", object(2, "x")).await;
    // The same content again: the version already known.
    put(&store, keys[0], object(3, keys[0])).await;
    wait_for_messages(&queue, (0, 0), Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(stopped.count("files_completed"), keys.len() as u64);
    assert_eq!(stopped.count("records_ingested"), records as u64);
    let rows = util::count(&pool, "SELECT count(*) FROM logs").await;
    assert_eq!(rows, records as i64, "each record once");
    let jobs: Vec<(String, String, i32)> =
        sqlx::query_as("SELECT s3_key, status, attempts FROM processed_files ORDER BY s3_key")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(jobs.len(), keys.len(), "{jobs:?}");
    assert!(
        jobs.iter()
            .all(|(_, status, attempts)| status == "COMPLETED" && *attempts == 1),
        "{jobs:?}"
    );
    assert_eq!(messages(&queue).await, (0, 0), "the queue is drained");
    for says in ["s3:TestEvent", "is outside --prefix"] {
        assert!(
            stopped.stderr.contains(says),
            "{says} logged:\n{}",
            stopped.stderr
        );
    }
    assert!(
        !stopped.stderr.contains("listing=\"incremental\""),
        "passes list nothing between reconciliations:\n{}",
        stopped.stderr
    );
}

/// While a large object is being ingested (its reads held to 256 KiB/s, about 10 s), an
/// object notified meanwhile is claimed at once by the free slot and ingested within 5 s:
/// the drain does not wait for the running file to end.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn an_object_notified_while_a_large_one_is_ingested_is_taken_at_once(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("events").await;
    let queue_url = create_queue(&s3, "busy-q", 30).await;
    notify(&s3, "events", "busy-q").await;
    let queue = sqs(&s3.endpoint(), &queue_url);
    let child = follow(
        &pool,
        &s3,
        &queue_url,
        &[
            "--interval",
            "60",
            "--concurrency",
            "2",
            "--max-bytes-per-sec",
            "262144",
        ],
    )
    .spawn()
    .unwrap();
    wait_for_messages(&queue, (0, 0), Duration::from_secs(15)).await;
    let big: String = (0..25_000)
        .map(|i| format!("{{\"level\":30,\"time\":{i},\"msg\":\"{:060}\"}}\n", i))
        .collect();
    put(&store, "logs/big.json", big.into_bytes()).await;
    let started = Instant::now();
    loop {
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM processed_files WHERE s3_key = 'logs/big.json'")
                .fetch_optional(&pool)
                .await
                .unwrap();
        if status.as_deref() == Some("PROCESSING") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{status:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    put(&store, "logs/small.json.gz", object(3, "small")).await;
    util::completed_within(&pool, "logs/small.json.gz", Duration::from_secs(5)).await;
    let big_status: String =
        sqlx::query_scalar("SELECT status FROM processed_files WHERE s3_key = 'logs/big.json'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        big_status, "PROCESSING",
        "the large object is still being read"
    );
    util::completed_within(&pool, "logs/big.json", Duration::from_secs(60)).await;
    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(stopped.count("records_ingested"), 25_003);
}

/// An object uploaded before the bucket sent notifications is found by the full listing
/// of `--reconcile-interval`, and counted as found by it; the one notified is not. S3
/// requests go through a proxy (AWS_ENDPOINT) that refuses every POST, SQS requests
/// straight to moto (AWS_ENDPOINT_URL_SQS): SQS takes the endpoint meant for it.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn an_object_no_notification_reported_is_found_by_the_reconciliation(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("events").await;
    let queue_url = create_queue(&s3, "recon-q", 30).await;
    let proxy = FaultProxy::start_with(
        s3.port,
        Arc::new(|head: &str| {
            head.starts_with("POST ")
                .then_some(Fault::ServiceUnavailable)
        }),
    )
    .await;
    let mut command = follow(
        &pool,
        &s3,
        &queue_url,
        &["--interval", "0.5", "--reconcile-interval", "4"],
    );
    command
        .env("AWS_ENDPOINT", proxy.endpoint())
        .env("AWS_ENDPOINT_URL_SQS", s3.endpoint())
        .env("INGESTOR_S3_RETRIES", "0");
    let child = command.spawn().unwrap();
    // The first pass listed the (empty) bucket.
    util::wait_until(&pool, "SELECT count(*) FROM listing_marks", 1).await;
    put(&store, "logs/before.json.gz", object(2, "before")).await;
    notify(&s3, "events", "recon-q").await;
    put(&store, "logs/notified.json.gz", object(3, "notified")).await;
    util::completed_within(&pool, "logs/notified.json.gz", Duration::from_secs(5)).await;
    util::completed_within(&pool, "logs/before.json.gz", Duration::from_secs(15)).await;
    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(stopped.count("records_ingested"), 5);
    assert!(
        stopped.stderr.contains("found_by_full_listing=1"),
        "the object no notification reported is counted as found by the full listing:\n{}",
        stopped.stderr
    );
    assert!(
        !stopped.stderr.contains("found_by_full_listing=2"),
        "{}",
        stopped.stderr
    );
    assert!(
        proxy.counts.get(Kind::List) > 0,
        "S3 went through the proxy"
    );
    assert_eq!(proxy.counts.get(Kind::Post), 0, "SQS did not");
}

/// A worker killed (SIGKILL) with a batch received but not recorded loses no
/// notification: while its registration is held up (the jobs table locked), the batch is
/// kept invisible past the queue's 2 s visibility timeout; once the worker is dead its
/// messages come back, and the next worker records and ingests every object once.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_worker_killed_with_a_batch_in_hand_loses_no_notification(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("events").await;
    let queue_url = create_queue(&s3, "kill-q", 2).await;
    notify(&s3, "events", "kill-q").await;
    let queue = sqs(&s3.endpoint(), &queue_url);
    let keys: Vec<String> = (0..4).map(|i| format!("logs/k-{i}.json.gz")).collect();
    for key in &keys {
        put(&store, key, object(2, key)).await;
    }
    // The test event and one event per object.
    let sent = keys.len() as u64 + 1;
    assert_eq!(messages(&queue).await, (sent, 0));

    // Registration is held up: the jobs table is locked.
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE processed_files IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut first = follow(&pool, &s3, &queue_url, &["--interval", "60"])
        .spawn()
        .unwrap();
    wait_for_messages(&queue, (0, sent), Duration::from_secs(15)).await;
    // Past the visibility timeout the batch is still in hand: its visibility was extended.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(messages(&queue).await, (0, sent), "kept invisible");
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    // Its sessions still wait for the lock (PostgreSQL notices a dead client only when it
    // writes to it): end them, as its sockets closing would on another host.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'",
    )
    .execute(&mut *lock)
    .await
    .unwrap();
    lock.rollback().await.unwrap();
    let recorded = util::count(&pool, "SELECT count(*) FROM processed_files").await;
    assert_eq!(recorded, 0, "the killed worker recorded nothing");
    // Its messages come back once their visibility timeout is over.
    wait_for_messages(&queue, (sent, 0), Duration::from_secs(10)).await;

    let second = follow(&pool, &s3, &queue_url, &["--interval", "60"])
        .spawn()
        .unwrap();
    for key in &keys {
        util::completed_within(&pool, key, Duration::from_secs(10)).await;
    }
    wait_for_messages(&queue, (0, 0), Duration::from_secs(10)).await;
    let stopped = util::terminate(second).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert_eq!(stopped.count("records_ingested"), 2 * keys.len() as u64);
    let rows = util::count(&pool, "SELECT count(*) FROM logs").await;
    assert_eq!(rows, 2 * keys.len() as i64, "each record once");
}

/// `--notifications` needs `--follow`: a usage error.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn notifications_without_follow_is_a_usage_error(pool: PgPool) {
    let run = util::run(
        &pool,
        &[
            "run",
            "--bucket",
            "events",
            "--notifications",
            "sqs=https://sqs.us-east-1.amazonaws.com/123456789012/q",
        ],
    )
    .await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--follow"), "{}", run.stderr);
    let bad = util::run(
        &pool,
        &[
            "run",
            "--bucket",
            "b",
            "--follow",
            "--notifications",
            "kafka=x",
        ],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("sqs=QUEUE_URL"), "{}", bad.stderr);
}
