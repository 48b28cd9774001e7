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
    let run = util::command(&pool, &args)
        .env("RUST_LOG", "ingestor=debug")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
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
