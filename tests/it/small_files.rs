//! Many small files: the database on this host through its Unix socket (no Nagle stalls on
//! TCP), per-file costs.

use std::str::FromStr;

use ingestor::config::{SocketChoice, local_socket};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

use crate::util;

fn socket_dirs() -> SocketChoice {
    SocketChoice::Auto(
        ["/var/run/postgresql", "/run/postgresql", "/tmp"]
            .map(Into::into)
            .to_vec(),
    )
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_database_on_this_host_is_reached_through_its_unix_socket(pool: PgPool) {
    let options = PgConnectOptions::from_str(&util::db_url(&pool)).unwrap();
    let local = local_socket(&options, &socket_dirs()).expect(
        "DATABASE_URL names 127.0.0.1 and the local PostgreSQL has its socket in \
         /var/run/postgresql: start it with pg_ctlcluster",
    );
    let mut conn = PgConnection::connect_with(&local).await.unwrap();
    let server: Option<String> = sqlx::query_scalar("SELECT inet_server_addr()::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(server, None, "a Unix socket has no server address");
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(Some(database.as_str()), options.get_database());

    // The binary does the same, unless told not to.
    let args = ["jobs", "list"];
    let run = util::run_debug(&pool, &args).await;
    let stderr = &run.stderr;
    assert!(stderr.contains("through its Unix socket"), "{stderr}");
    let run = util::command(&pool, &args)
        .env("RUST_LOG", "ingestor=debug")
        .env("INGESTOR_DATABASE_SOCKET", "off")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(!stderr.contains("through its Unix socket"), "{stderr}");
}

#[test]
fn only_a_loopback_url_without_tls_or_socket_switches_to_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".s.PGSQL.5432"), b"").unwrap();
    let choice = SocketChoice::Auto(vec![dir.path().join("none"), dir.path().to_path_buf()]);
    let switched = |url: &str| {
        local_socket(&PgConnectOptions::from_str(url).unwrap(), &choice)
            .map(|o| o.get_socket().cloned().unwrap())
    };
    for url in [
        "postgres://u@127.0.0.1:5432/d",
        "postgres://u@localhost/d",
        "postgres://u@127.0.0.1/d?sslmode=disable",
    ] {
        assert_eq!(switched(url), Some(dir.path().to_path_buf()), "{url}");
    }
    for url in [
        "postgres://u@db.example.com/d",
        "postgres://u@127.0.0.1:5433/d",
        "postgres://u@127.0.0.1/d?sslmode=require",
        "postgres://u@localhost/d?host=/elsewhere",
    ] {
        assert_eq!(switched(url), None, "{url}");
    }
    let options = PgConnectOptions::from_str("postgres://u@127.0.0.1/d").unwrap();
    assert!(local_socket(&options, &SocketChoice::Off).is_none());
}

#[derive(clap::Parser)]
struct Args {
    #[command(flatten)]
    pipeline: ingestor::cli::PipelineArgs,
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn the_transform_is_planned_per_file_in_flight_not_per_file(pool: PgPool) {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    util::generate(dir.path(), 40, 20).await;
    let args = Args::parse_from(["test", "--concurrency", "2", "--quiet"]).pipeline;
    let ingest = std::sync::Arc::new(ingestor::config::ingest(pool.clone(), &args).await.unwrap());
    let mut paths: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let tasks: Vec<_> = paths
        .into_iter()
        .map(|path| {
            let key = path.to_string_lossy().into_owned();
            ingestor::pipeline::FileTask {
                bucket: ingestor::app::LOCAL_BUCKET.into(),
                display: key.clone(),
                key,
                source: ingestor::source::SourceRef::Local(path),
                size: None,
            }
        })
        .collect();
    let files = ingestor::progress::FileCounts::default();
    let summary = ingestor::app::run_tasks(std::sync::Arc::clone(&ingest), tasks, false, 2, &files)
        .await
        .unwrap();
    assert_eq!(summary.files_completed, 40);
    assert_eq!(summary.records_ingested, 800);
    // The plan made to check the transform is reused; at most one more per file in flight.
    assert!(
        ingest.plans.made() <= 2,
        "{} plans for 40 files",
        ingest.plans.made()
    );
}

async fn small_bucket(files: usize, records: u64) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    util::generate(&root.path().join("logs").join("2024"), files, records).await;
    root
}

fn run_args(root: &tempfile::TempDir) -> Vec<String> {
    ["run", "--json", "--bucket", "logs", "--local-buckets"]
        .map(String::from)
        .into_iter()
        .chain([root.path().to_str().unwrap().to_string()])
        .collect()
}

/// Rows per file, and rows that are there twice.
async fn per_file(pool: &PgPool) -> (Vec<i64>, i64) {
    let rows: Vec<i64> = sqlx::query_scalar(
        "SELECT count(l.source_key) FROM processed_files p \
         LEFT JOIN logs l ON l.source_key = p.s3_key GROUP BY p.s3_key ORDER BY p.s3_key",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let twice = util::count(
        pool,
        "SELECT count(*) - count(DISTINCT (source_key, source_index)) FROM logs",
    )
    .await;
    (rows, twice)
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_group_with_a_corrupt_file_commits_the_others(pool: PgPool) {
    let root = small_bucket(10, 20).await;
    let dir = root.path().join("logs").join("2024");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    // The fifth file loses its second half: a truncated gzip.
    let bytes = std::fs::read(&names[4]).unwrap();
    std::fs::write(&names[4], &bytes[..bytes.len() / 2]).unwrap();
    let args = run_args(&root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = util::run_debug(&pool, &args).await;
    let stdout = &run.stdout;
    let stderr = &run.stderr;
    assert_eq!(run.code, 3, "{stderr}");
    assert!(stdout.contains("\"files_completed\":9"), "{stdout}");
    assert!(stdout.contains("\"files_failed\":1"), "{stdout}");
    assert!(
        stderr.contains("group committed files=9"),
        "the nine good files commit together: {stderr}"
    );
    let (rows, twice) = per_file(&pool).await;
    assert_eq!(twice, 0);
    for (i, rows) in rows.iter().enumerate() {
        if i == 4 {
            assert!(
                *rows < 20,
                "the truncated file keeps what it read before the fault"
            );
        } else {
            assert_eq!(*rows, 20, "file {i}");
        }
    }
    let failed: String = sqlx::query_scalar(
        "SELECT metadata->>'error' FROM processed_files WHERE status = 'FAILED'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(failed.contains("cannot read past byte"), "{failed}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn sigkill_inside_a_group_loses_and_doubles_nothing(pool: PgPool) {
    let root = small_bucket(300, 20).await;
    let mut args = run_args(&root);
    args.extend(
        [
            "--concurrency",
            "1",
            "--group-files",
            "50",
            "--lease-secs",
            "1",
        ]
        .map(String::from),
    );
    let slow: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(["--max-records-per-sec", "2000"])
        .collect();
    let mut child = util::command(&pool, &slow).spawn().unwrap();
    let completed = "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'";
    util::wait_until(&pool, completed, 50).await;
    child.kill().await.unwrap(); // SIGKILL, inside a later group
    let (rows, twice) = per_file(&pool).await;
    assert_eq!(twice, 0);
    let done = rows.iter().filter(|r| **r == 20).count();
    assert!(
        rows.iter().all(|r| *r == 0 || *r == 20),
        "every file wholly committed or untouched: {rows:?}"
    );
    assert!(
        (50..300).contains(&done),
        "killed mid-run ({done} files done)"
    );
    assert_eq!(util::count(&pool, completed).await, done as i64);

    util::expire_leases(&pool).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = util::run(&pool, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed") as usize, 300 - done);
    let (rows, twice) = per_file(&pool).await;
    assert_eq!((rows.len(), twice), (300, 0));
    assert!(rows.iter().all(|r| *r == 20), "{rows:?}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn three_workers_ingest_3000_small_objects_each_exactly_once(pool: PgPool) {
    let root = small_bucket(3_000, 5).await;
    let args = run_args(&root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let workers: Vec<_> = (0..3)
        .map(|_| util::command(&pool, &args).spawn().unwrap())
        .collect();
    let mut completed = 0;
    for worker in workers {
        let output = worker.wait_with_output().await.unwrap();
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
    assert_eq!(completed, 3_000, "each file completed by one worker");
    let (rows, twice) = per_file(&pool).await;
    assert_eq!((rows.len(), twice), (3_000, 0));
    assert!(rows.iter().all(|r| *r == 5));
    assert_eq!(
        util::count(
            &pool,
            "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'"
        )
        .await,
        3_000
    );
}

/// Each file's counts as `processed_files` has them, beside its rows in `logs`:
/// (ingested, filtered, rows).
async fn counts_per_file(pool: &PgPool) -> Vec<(i64, i64, i64)> {
    sqlx::query_as(
        "SELECT p.records_ingested, p.records_filtered, count(l.source_key) \
         FROM processed_files p LEFT JOIN logs l ON l.source_key = p.s3_key \
         GROUP BY p.s3_key, p.records_ingested, p.records_filtered ORDER BY p.s3_key",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The built-in transform gives one row for each record: a transaction's files go through
/// it together, once. A transform that filters runs per file. Either way each file keeps
/// its own counts.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn grouped_files_keep_their_own_counts_whether_transformed_together_or_alone(pool: PgPool) {
    let root = small_bucket(10, 20).await;
    let args = run_args(&root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = util::run_debug(&pool, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("transformed together files=10 records=200"),
        "{}",
        run.stderr
    );
    assert_eq!(counts_per_file(&pool).await, vec![(20, 0, 20); 10]);

    sqlx::query("TRUNCATE logs, processed_files")
        .execute(&pool)
        .await
        .unwrap();
    let builtin = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/transform.sql"),
    )
    .unwrap();
    let sql = root.path().join("filter.sql");
    std::fs::write(&sql, format!("{builtin}\nWHERE level <> '30'")).unwrap();
    let mut filtered = args.clone();
    filtered.extend(["--transform", sql.to_str().unwrap()]);
    let run = util::run_debug(&pool, &filtered).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !run.stderr.contains("transformed together"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("group committed files=10"),
        "{}",
        run.stderr
    );
    let counts = counts_per_file(&pool).await;
    assert_eq!(counts.len(), 10);
    for (ingested, filtered, rows) in &counts {
        assert_eq!((ingested + filtered, *ingested), (20, *rows), "{counts:?}");
    }
    let dropped: i64 = counts.iter().map(|c| c.1).sum();
    assert!(
        dropped > 0 && dropped < 200,
        "the filter drops some: {counts:?}"
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_groups_transactions_hold_at_most_a_chunk_of_whole_files(pool: PgPool) {
    let root = small_bucket(10, 20).await;
    let mut args = run_args(&root);
    args.extend(["--chunk-records", "50"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = util::run_debug(&pool, &args).await;
    let stderr = &run.stderr;
    assert_eq!(run.code, 0, "{stderr}");
    // 20-record files, 50 records a chunk: two whole files per transaction.
    assert_eq!(
        stderr.matches("group committed files=2").count(),
        5,
        "{stderr}"
    );
    let (rows, twice) = per_file(&pool).await;
    assert_eq!((rows, twice), (vec![20; 10], 0));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_group_longer_than_the_lease_keeps_its_claims(pool: PgPool) {
    let root = small_bucket(12, 20).await;
    let mut args = run_args(&root);
    args.extend(["--lease-secs", "1"].map(String::from));
    let slow: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(["--concurrency", "1", "--max-records-per-sec", "100"])
        .collect();
    // One group of 240 records at 100 records/s: 2.4 s, over two leases.
    let first = util::command(&pool, &slow).spawn().unwrap();
    util::wait_until(
        &pool,
        "SELECT count(*) FROM processed_files WHERE status = 'PROCESSING'",
        12,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let second = util::run(&pool, &args).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        second.count("files_completed"),
        0,
        "nothing taken over from a worker that is alive: {}",
        second.stderr
    );
    let first = first.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(stdout.contains("\"files_completed\":12"), "{stdout}");
    let lost = util::count(
        &pool,
        "SELECT count(*) FROM processed_files WHERE metadata ? 'workersLost'",
    )
    .await;
    assert_eq!(lost, 0);
    let (rows, twice) = per_file(&pool).await;
    assert_eq!((rows, twice), (vec![20; 12], 0));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn rejects_of_grouped_files_are_kept_once_with_their_index(pool: PgPool) {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("logs");
    std::fs::create_dir_all(&folder).unwrap();
    for f in 0..6 {
        // Record 2 of every file is not an object.
        let body = format!(
            r#"[{{"level":30,"msg":"a{f}"}},{{"level":40,"msg":"b{f}"}},7,{{"level":50,"msg":"c{f}"}}]"#
        );
        util::write_file(
            &folder,
            &format!("f{f}.json.gz"),
            &util::gzip(body.as_bytes()),
        );
    }
    let args = run_args(&root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = util::run_debug(&pool, &args).await;
    let stderr = &run.stderr;
    assert_eq!(run.code, 0, "{stderr}");
    assert!(stderr.contains("group committed files=6"), "{stderr}");
    let (rows, twice) = per_file(&pool).await;
    assert_eq!((rows, twice), (vec![3; 6], 0));
    let rejects: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT s3_key, source_index, raw FROM rejected_records ORDER BY s3_key")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rejects.len(), 6, "{rejects:?}");
    assert!(
        rejects
            .iter()
            .all(|(_, index, raw)| *index == 2 && raw == "7")
    );
    let counted: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT records_ingested, records_rejected, checkpoint FROM processed_files",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(counted.iter().all(|c| *c == (3, 1, 4)), "{counted:?}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_row_the_database_refuses_in_a_group_is_rejected_and_the_others_land(pool: PgPool) {
    sqlx::query(
        "ALTER TABLE logs ADD CONSTRAINT no_poison CHECK (message IS DISTINCT FROM 'poison')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("logs");
    std::fs::create_dir_all(&folder).unwrap();
    for f in 0..8 {
        // File 3's second record is refused by the table's constraint.
        let second = if f == 3 { "poison" } else { "fine" };
        let body = format!(
            r#"[{{"level":30,"message":"a{f}"}},{{"level":40,"message":"{second}"}},{{"level":50,"message":"c{f}"}}]"#
        );
        util::write_file(
            &folder,
            &format!("f{f}.json.gz"),
            &util::gzip(body.as_bytes()),
        );
    }
    let args = run_args(&root);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = util::run_debug(&pool, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 8, "{}", run.stdout);
    let (rows, twice) = per_file(&pool).await;
    assert_eq!(twice, 0);
    assert_eq!(rows, vec![3, 3, 3, 2, 3, 3, 3, 3]);
    let rejects: Vec<(String, i64, String)> =
        sqlx::query_as("SELECT s3_key, source_index, error FROM rejected_records")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let (key, index, error) = &rejects[0];
    assert!(key.ends_with("f3.json.gz") && *index == 1, "{rejects:?}");
    assert!(error.contains("no_poison"), "{error}");
}
