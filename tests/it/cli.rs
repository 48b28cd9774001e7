//! The command line contract: exit statuses, `migrate`, `preview`.

use sqlx::PgPool;

use crate::util;

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn usage_errors_exit_2_and_fatal_errors_exit_1(pool: PgPool) {
    let run = util::run(&pool, &["ingest-file", "--no-such-flag", "x"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run = util::run(&pool, &["ingest-file", "/no/such/file.json"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("/no/such/file.json"), "{}", run.stderr);
    let unreachable = util::command(&pool, &["migrate"])
        .env(
            "DATABASE_URL",
            "postgres://nobody:secret-pw@127.0.0.1:1/none",
        )
        .output()
        .await
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(
        !stderr.contains("secret-pw"),
        "the password is never printed: {stderr}"
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn migrate_is_idempotent(pool: PgPool) {
    for _ in 0..2 {
        let run = util::run(&pool, &["migrate"]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 0);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn preview_shows_the_transform_output_without_the_database(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let data = util::write_file(
        dir.path(),
        "p.json.gz",
        &util::gzip(b"[{\"level\":30,\"msg\":\"hello preview\",\"req\":{\"method\":\"GET\"}}, 5, {\"level\":50}]"),
    );
    let output = util::command(&pool, &["preview", "--limit", "5", data.to_str().unwrap()])
        .env("DATABASE_URL", "postgres://127.0.0.1:1/unused")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("hello preview") && stdout.contains("info") && stdout.contains("error"),
        "{stdout}"
    );
    assert!(stdout.contains("rejected record 1"), "{stdout}");

    let sql = util::write_file(
        dir.path(),
        "t.sql",
        b"SELECT upper(msg) AS shout FROM raw_logs WHERE msg IS NOT NULL",
    );
    let output = util::command(
        &pool,
        &[
            "preview",
            "--transform",
            sql.to_str().unwrap(),
            data.to_str().unwrap(),
        ],
    )
    .output()
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("HELLO PREVIEW") && stdout.contains("shout"),
        "{stdout}"
    );
}

/// Issue 19 item 3: `--full-scan` and `--reconcile-interval` say what they do in `--help`.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn full_scan_and_the_reconcile_interval_are_documented(pool: PgPool) {
    let help = util::run(&pool, &["run", "--help"]).await;
    assert_eq!(help.code, 0, "{}", help.stderr);
    let full_scan = help
        .stdout
        .split("--full-scan")
        .nth(1)
        .expect("--full-scan is documented");
    assert!(full_scan.contains("whole prefix"), "{}", help.stdout);
    assert!(
        help.stdout.contains("--reconcile-interval"),
        "{}",
        help.stdout
    );
}
