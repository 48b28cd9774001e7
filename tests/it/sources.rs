//! Where discovery looks and what it takes (issue 14 items 5 and 11): symlinks and FIFOs in
//! walked folders and local buckets, odd S3 keys and local file names that must never stop
//! discovery of the others.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sqlx::PgPool;

use crate::s3::{Fault, FaultProxy, S3Server, put, put_raw};
use crate::util;

/// A JSON array of `n` records tagged `tag`.
fn records(tag: &str, n: usize) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|i| json!({"level": 30, "time": 1_730_800_000_000i64 + i as i64, "msg": format!("{tag} {i}")}))
        .collect();
    util::json_array(&records)
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Runs `ingestor ARGS`, failing the test (instead of hanging) after two minutes.
async fn run(pool: &PgPool, args: &[&str]) -> util::Run {
    tokio::time::timeout(Duration::from_secs(120), util::run(pool, args))
        .await
        .unwrap_or_else(|_| panic!("`ingestor {}` hung", args.join(" ")))
}

/// Rows per source key, sorted by key (bytewise, whatever the database's collation).
async fn logs(pool: &PgPool) -> Vec<(String, i64)> {
    let mut rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT source_key, count(*) FROM logs GROUP BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    rows.sort();
    rows
}

async fn jobs(pool: &PgPool) -> Vec<(String, String, Option<String>)> {
    sqlx::query_as(
        "SELECT s3_key, status, metadata->>'error' FROM processed_files ORDER BY s3_key COLLATE \"C\"",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn symlinked_directories_are_not_followed(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("a")).unwrap();
    let data = util::write_file(&root.join("a"), "data.json", &records("data", 100));
    symlink("..", root.join("a/up")).unwrap();
    let out = run(&pool, &["ingest-file", "--json", root.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.count("files_completed"), 1, "{}", out.stdout);
    assert_eq!(logs(&pool).await, [(util::key_of(&data), 100)]);
    assert!(
        out.stderr.contains("symbolic link not followed"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("a/up"),
        "the skipped link is named: {}",
        out.stderr
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_symlink_to_a_file_outside_the_folder_is_not_read(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.json"), b"not json at all").unwrap();
    symlink(outside.path().join("secret.json"), root.join("secret.json")).unwrap();
    let data = util::write_file(&root, "data.json", &records("data", 10));
    for follow in [&[][..], &["--follow-symlinks"][..]] {
        let mut args = vec!["ingest-file", "--json"];
        args.extend_from_slice(follow);
        args.push(root.to_str().unwrap());
        let out = run(&pool, &args).await;
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert_eq!(logs(&pool).await, [(util::key_of(&data), 10)]);
        let rejected = util::count(&pool, "SELECT count(*) FROM rejected_records").await;
        assert_eq!(rejected, 0, "{args:?}: the file outside was read");
        let jobs = util::count(&pool, "SELECT count(*) FROM processed_files").await;
        assert_eq!(jobs, 1, "{args:?}");
        assert!(out.stderr.contains("secret.json"), "{}", out.stderr);
    }
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_fifo_in_a_folder_is_skipped_not_read(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let data = util::write_file(&root, "data.json", &records("data", 10));
    mkfifo(&root.join("pipe.json"));
    let out = run(&pool, &["ingest-file", "--json", root.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.count("files_completed"), 1);
    assert_eq!(logs(&pool).await, [(util::key_of(&data), 10)]);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    // Named on the command line: still not opened.
    let fifo = root.join("pipe.json");
    let out = run(&pool, &["ingest-file", "--json", fifo.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.count("files_completed"), 0, "{}", out.stdout);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn followed_symlinks_stay_inside_take_each_file_once_and_never_loop(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    std::fs::create_dir(root.join("a")).unwrap();
    let data = util::write_file(&root.join("a"), "data.json", &records("data", 10));
    symlink("..", root.join("a/up")).unwrap();
    symlink("a", root.join("z")).unwrap();
    symlink(root.join("a/data.json"), root.join("same.json")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("o.json"), records("outside", 5)).unwrap();
    symlink(outside.path(), root.join("out")).unwrap();
    let out = run(
        &pool,
        &[
            "ingest-file",
            "--json",
            "--follow-symlinks",
            root.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.count("files_completed"), 1, "{}", out.stdout);
    assert_eq!(logs(&pool).await, [(util::key_of(&data), 10)]);
    assert!(out.stderr.contains("loop"), "{}", out.stderr);
    assert!(
        out.stderr.contains("outside the walked folder"),
        "{}",
        out.stderr
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_local_bucket_skips_links_and_fifos_and_keeps_its_keys(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().canonicalize().unwrap();
    let bucket = buckets.join("b");
    std::fs::create_dir_all(bucket.join("logs/2024")).unwrap();
    util::write_file(&bucket.join("logs/2024"), "data.json", &records("data", 10));
    symlink("../..", bucket.join("logs/2024/up")).unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("o.json"), records("outside", 5)).unwrap();
    symlink(outside.path().join("o.json"), bucket.join("logs/o.json")).unwrap();
    symlink("2024", bucket.join("logs/alias")).unwrap();
    mkfifo(&bucket.join("logs/pipe.json"));
    let root = buckets.to_str().unwrap();
    let out = run(
        &pool,
        &["run", "--json", "--local-buckets", root, "--bucket", "b"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.count("files_completed"), 1, "{}", out.stdout);
    assert_eq!(logs(&pool).await, [("logs/2024/data.json".to_string(), 10)]);
    assert!(out.stderr.contains("not a regular file"), "{}", out.stderr);
    assert!(
        out.stderr.contains("symbolic link not followed"),
        "{}",
        out.stderr
    );
    // Followed: the alias leads to the same real file (one key), the rest stays skipped.
    let out = run(
        &pool,
        &[
            "run",
            "--json",
            "--local-buckets",
            root,
            "--bucket",
            "b",
            "--follow-symlinks",
        ],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.count("files_completed"), 0, "{}", out.stdout);
    let keys: Vec<String> = jobs(&pool).await.into_iter().map(|j| j.0).collect();
    assert_eq!(keys, ["logs/2024/data.json"]);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_local_bucket_prefix_is_a_plain_string_prefix(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().canonicalize().unwrap();
    std::fs::create_dir_all(buckets.join("b/logs/2024")).unwrap();
    util::write_file(
        &buckets.join("b/logs/2024"),
        "data.json",
        &records("data", 10),
    );
    util::write_file(&buckets.join("b/logs"), "other.json", &records("other", 1));
    let root = buckets.to_str().unwrap();
    // The prefix is a plain string prefix of the key; --dry-run lists as discovery does.
    for (prefix, planned) in [("logs/20", "1 object(s)"), ("logs/2025", "0 object(s)")] {
        let args = [
            "run",
            "--local-buckets",
            root,
            "--bucket",
            "b",
            "--dry-run",
            "--prefix",
            prefix,
        ];
        let out = run(&pool, &args).await;
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains(planned), "{prefix}: {}", out.stdout);
    }
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn odd_local_file_names_never_stop_discovery(pool: PgPool) {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().canonicalize().unwrap();
    let bucket = buckets.join("b");
    std::fs::create_dir(&bucket).unwrap();
    util::write_file(&bucket, "normal.json", &records("normal", 3));
    util::write_file(&bucket, "tab\there.json", &records("tab", 4));
    // Valid object_store paths that its local store must map back to the same name.
    util::write_file(&bucket, "50% off #1 [x].json", &records("percent", 1));
    let bad = bucket.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9.json"));
    std::fs::write(&bad, records("latin1", 5)).unwrap();
    let root = buckets.to_str().unwrap();
    let out = run(
        &pool,
        &["run", "--json", "--local-buckets", root, "--bucket", "b"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        logs(&pool).await,
        [
            ("50% off #1 [x].json".to_string(), 1),
            ("normal.json".to_string(), 3),
            ("tab\there.json".to_string(), 4)
        ]
    );
    assert!(out.stderr.contains("not valid UTF-8"), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\t'),
        "no raw control characters in logs"
    );
    let out = run(
        &pool,
        &["run", "--local-buckets", root, "--bucket", "b", "--dry-run"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    // ingest-file: the same names.
    let out = run(&pool, &["ingest-file", "--json", bucket.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.count("files_completed"), 3, "{}", out.stdout);
    assert!(out.stderr.contains("not valid UTF-8"), "{}", out.stderr);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn odd_s3_keys_never_stop_discovery(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("odd").await;
    put(&store, "logs/a.json", records("a", 3)).await;
    put(&store, "logs/z.json", records("z", 4)).await;
    let odd = [
        "logs/a//b.json",
        "logs/x/../y.json",
        "logs/c\u{1}d.json",
        "logs/./t\tab.json",
    ];
    for key in odd {
        put_raw(s3.port, "odd", key, &records(key, 2)).await;
    }
    let endpoint = s3.endpoint();
    let plan = crate::run::run(&pool, &endpoint, "odd", &["--dry-run"]).await;
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    assert!(plan.stdout.contains("6 object(s)"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("logs/c\\u{1}d.json"),
        "escaped: {}",
        plan.stdout
    );
    assert!(!plan.stdout.contains('\u{1}'), "no raw control characters");
    let started = std::time::Instant::now();
    let out = crate::run::run(&pool, &endpoint, "odd", &[]).await;
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "unreadable keys are not retried with backoff"
    );
    // `//` and control characters are read by our own signed GET; `.`/`..` segments cannot
    // be sent in a URL path: FAILED with the cause, without retries.
    let ingested = [
        ("logs/a.json".to_string(), 3),
        ("logs/a//b.json".to_string(), 2),
        ("logs/c\u{1}d.json".to_string(), 2),
        ("logs/z.json".to_string(), 4),
    ];
    let unreadable = ["logs/x/../y.json", "logs/./t\tab.json"];
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.count("files_failed"), 2, "{}", out.stdout);
    assert_eq!(logs(&pool).await, ingested);
    for (key, status, error) in jobs(&pool).await {
        if unreadable.contains(&key.as_str()) {
            assert_eq!(status, "FAILED", "{key:?}");
            let error = error.unwrap_or_default();
            assert!(
                error.contains("cannot be read through object_store"),
                "{key:?}: {error}"
            );
        } else {
            assert_eq!(status, "COMPLETED", "{key:?}");
        }
    }
    // Each object's own records, not a neighbour's (`a//b` is not `a/b`).
    let messages: Vec<String> =
        sqlx::query_scalar("SELECT message FROM logs WHERE source_key = 'logs/a//b.json'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        messages.iter().all(|m| m.starts_with("logs/a//b.json ")),
        "{messages:?}"
    );
    assert!(
        !out.stderr.contains('\u{1}'),
        "no raw control characters in logs"
    );
    // The next pass lists them again, records nothing new and does not retry them.
    let again = crate::run::run(&pool, &endpoint, "odd", &[]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.count("files_failed"), 0);
    assert_eq!(logs(&pool).await, ingested);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn the_s3_listing_retries_faults(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("flaky").await;
    for i in 0..5 {
        put(&store, &format!("logs/{i}.json"), records("flaky", 1)).await;
    }
    // Every second request fails: a 503, a dropped connection, a response cut short.
    let faults = vec![Fault::ServiceUnavailable, Fault::Drop, Fault::CutResponse];
    let proxy = FaultProxy::start(s3.port, 2, faults).await;
    // One listing request per dry run: runs 2, 3 and 4 each meet one kind of fault.
    let mut retried = 0;
    for _ in 0..4 {
        let plan = crate::run::run(&pool, &proxy.endpoint(), "flaky", &["--dry-run"]).await;
        assert_eq!(plan.code, 0, "{}", plan.stderr);
        assert!(plan.stdout.contains("5 object(s)"), "{}", plan.stdout);
        retried += plan
            .stderr
            .matches("listing request failed; retrying")
            .count();
    }
    assert_eq!(proxy.injected.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(retried, 3);
}

#[tokio::test]
async fn a_raw_key_is_read_whole_by_range_and_by_head() {
    use object_store::ObjectStoreExt;
    use object_store::path::Path as ObjectPath;
    let s3 = S3Server::start().await;
    s3.bucket("raw").await;
    let bytes: Vec<u8> = (0..100u8).collect();
    put_raw(s3.port, "raw", "a//b\u{7}.json", &bytes).await;
    put_raw(s3.port, "raw", "a/b\u{7}.json", b"a neighbour").await;
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_bucket_name("raw")
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    let lister = ingestor::source::listing::s3::S3Lister::new(
        &store,
        "raw",
        Some("us-east-1".into()),
        Some(s3.endpoint()),
        Default::default(),
    )
    .unwrap();
    let raw = ingestor::source::listing::raw_key::RawKeyStore::new(
        std::sync::Arc::new(lister),
        "a//b\u{7}.json",
    );
    let path = ObjectPath::from("shown");
    let whole = raw.get(&path).await.unwrap();
    assert_eq!(whole.meta.size, 100);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), &bytes[..]);
    let part = raw.get_range(&path, 10..20).await.unwrap();
    assert_eq!(part.as_ref(), &bytes[10..20]);
    let head = raw.head(&path).await.unwrap();
    assert_eq!(head.size, 100);
    assert!(head.e_tag.is_some());
    let missing = ingestor::source::listing::raw_key::RawKeyStore::new(
        std::sync::Arc::new(
            ingestor::source::listing::s3::S3Lister::new(
                &store,
                "raw",
                None,
                Some(s3.endpoint()),
                Default::default(),
            )
            .unwrap(),
        ),
        "nope//x.json",
    );
    assert!(matches!(
        missing.get(&path).await,
        Err(object_store::Error::NotFound { .. })
    ));
}
