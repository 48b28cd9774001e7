//! Shared helpers: running the real `ingestor` binary against a test database, and writing
//! input files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use sqlx::PgPool;

/// The URL of the database behind `pool` (a per-test database of `#[sqlx::test]`).
pub fn db_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect(
        "DATABASE_URL must point at a PostgreSQL server (e.g. postgres://postgres@127.0.0.1:5432/postgres): start PostgreSQL and export it",
    );
    let database = pool
        .connect_options()
        .get_database()
        .expect("test pool has a database")
        .to_string();
    let (without_query, query) = match base.split_once('?') {
        Some((url, query)) => (url.to_string(), format!("?{query}")),
        None => (base.clone(), String::new()),
    };
    let scheme_end = without_query.find("://").map(|i| i + 3).unwrap_or(0);
    let server = match without_query[scheme_end..].find('/') {
        Some(slash) => &without_query[..scheme_end + slash],
        None => &without_query[..],
    };
    format!("{server}/{database}{query}")
}

/// The outcome of one `ingestor` process.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The `--json` summary (last line of stdout).
    pub fn summary(&self) -> Value {
        let line = self.stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "last stdout line is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    pub fn count(&self, key: &str) -> u64 {
        self.summary()[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{key} missing in {}", self.stdout))
    }
}

/// A command for the `ingestor` binary against the database of `pool`.
pub fn command(pool: &PgPool, args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ingestor"));
    command
        .args(args)
        .env("DATABASE_URL", db_url(pool))
        .env("RUST_LOG", "info")
        .env_remove("INGESTOR_TRANSFORM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Runs `ingestor ARGS` to completion.
pub async fn run(pool: &PgPool, args: &[&str]) -> Run {
    let output = command(pool, args).output().await.expect("ingestor runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `ingestor ARGS` to completion with `ingestor`'s debug lines on stderr.
pub async fn run_debug(pool: &PgPool, args: &[&str]) -> Run {
    let output = command(pool, args)
        .env("RUST_LOG", "ingestor=debug")
        .output()
        .await
        .expect("ingestor runs");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// `ingestor ingest-file --json [EXTRA...] PATH`.
pub async fn ingest(pool: &PgPool, path: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["ingest-file", "--json"];
    args.extend_from_slice(extra);
    let path = path.to_str().expect("utf-8 path");
    args.push(path);
    run(pool, &args).await
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A JSON array of `records`, one per line.
pub fn json_array(records: &[Value]) -> Vec<u8> {
    let items: Vec<String> = records.iter().map(Value::to_string).collect();
    format!("[\n{}\n]\n", items.join(",\n")).into_bytes()
}

/// Writes `bytes` to `dir/name` and returns the canonical path.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path.canonicalize().unwrap()
}

/// Canonical path as `processed_files.s3_key` stores it.
pub fn key_of(path: &Path) -> String {
    path.canonicalize().unwrap().to_string_lossy().into_owned()
}

/// Count of rows of `sql` (a `SELECT count(*)` query).
pub async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Polls `sql` (a single bigint) until it reaches `at_least`; fails after a minute.
pub async fn wait_until(pool: &PgPool, sql: &'static str, at_least: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while count(pool, sql).await < at_least {
        assert!(
            std::time::Instant::now() < deadline,
            "`{sql}` never reached {at_least}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Records committed so far, over all files.
pub const COMMITTED: &str = "SELECT COALESCE(sum(checkpoint), 0)::bigint FROM processed_files";

/// `ingestor generate --out DIR --files N --records M`.
pub async fn generate(dir: &Path, files: usize, records: u64) {
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_ingestor"))
        .args(["generate", "--out", dir.to_str().unwrap()])
        .args([
            "--files",
            &files.to_string(),
            "--records",
            &records.to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

/// Sends SIGTERM to `pid` (through the `kill` command).
pub fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Sends SIGTERM to a running `ingestor` and waits (at most 30 s) for it to stop.
pub async fn terminate(child: tokio::process::Child) -> Run {
    sigterm(child.id().expect("a running child"));
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("stops within 30 s of SIGTERM")
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Ends every lease held now, as the database's clock passing its end would: what the claims
/// of a killed worker look like once `--lease-secs` is over, without waiting for it. (Leases
/// are compared on the database's clock, one clock for every worker.)
pub async fn expire_leases(pool: &PgPool) {
    sqlx::query(
        "UPDATE processed_files SET lease_expires_at = now() - interval '1 millisecond' \
         WHERE status = 'PROCESSING' AND lease_expires_at IS NOT NULL",
    )
    .execute(pool)
    .await
    .unwrap();
}

/// Waits until the job of `key` is COMPLETED; how long that took. Fails after `within`.
pub async fn completed_within(
    pool: &PgPool,
    key: &str,
    within: std::time::Duration,
) -> std::time::Duration {
    let started = std::time::Instant::now();
    loop {
        let done: Option<String> = sqlx::query_scalar(
            "SELECT status FROM processed_files WHERE s3_key = $1 AND status = 'COMPLETED'",
        )
        .bind(key)
        .fetch_optional(pool)
        .await
        .unwrap();
        if done.is_some() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{key:?} not COMPLETED within {within:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

/// A TCP proxy to the test's PostgreSQL server that can go down (connections refused,
/// live ones cut) and come back on the same port.
pub struct PgProxy {
    port: u16,
    upstream: (String, u16),
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl PgProxy {
    pub async fn start(pool: &PgPool) -> Self {
        let options = pool.connect_options();
        let upstream = (options.get_host().to_string(), options.get_port());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = Self {
            port,
            upstream,
            tasks: Default::default(),
        };
        proxy.up().await;
        proxy
    }

    /// The test database's URL through the proxy.
    pub fn url(&self, pool: &PgPool) -> String {
        let options = pool.connect_options();
        format!(
            "postgres://{}@127.0.0.1:{}/{}",
            options.get_username(),
            self.port,
            options.get_database().unwrap()
        )
    }

    pub async fn up(&self) {
        let mut listener = None;
        for _ in 0..100 {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(bound) => {
                    listener = Some(bound);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("the proxy port is free again");
        let tasks = std::sync::Arc::clone(&self.tasks);
        let upstream = self.upstream.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let forward = tokio::spawn(async move {
                    if let Ok(mut server) =
                        tokio::net::TcpStream::connect((upstream.0.as_str(), upstream.1)).await
                    {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                tasks.lock().unwrap().push(forward);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    /// Refuses new connections and cuts the live ones.
    pub fn down(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.down();
    }
}

/// The layout of `logs` a test runs against: the plain table the migrations make, or the
/// table partitioned by day (`ingestor migrate --partition-by day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Plain,
    DayPartitions,
}

impl Layout {
    /// Gives `logs` this layout (the table is empty).
    pub async fn apply(self, pool: &PgPool) {
        if self == Layout::DayPartitions {
            let run = run(pool, &["migrate", "--partition-by", "day"]).await;
            assert_eq!(run.code, 0, "{}", run.stderr);
        }
    }

    /// Checks that `logs` still has this layout and, partitioned, that every row is in the
    /// partition of its id's day.
    pub async fn check(self, pool: &PgPool) {
        let kind: String =
            sqlx::query_scalar("SELECT relkind::text FROM pg_class WHERE oid = 'logs'::regclass")
                .fetch_one(pool)
                .await
                .unwrap();
        match self {
            Layout::Plain => assert_eq!(kind, "r"),
            Layout::DayPartitions => {
                assert_eq!(kind, "p");
                let misplaced = count(
                    pool,
                    "SELECT count(*) FROM logs l JOIN pg_class c ON c.oid = l.tableoid \
                     WHERE c.relname <> CASE WHEN l.id < '00000000-0001-0000-0000-000000000000' \
                       THEN 'logs_undated' ELSE 'logs_p' || to_char(to_timestamp( \
                       ('x' || substr(replace(l.id::text, '-', ''), 1, 12))::bit(48)::bigint \
                       / 1000.0) AT TIME ZONE 'UTC', 'YYYYMMDD') END",
                )
                .await;
                assert_eq!(misplaced, 0, "rows outside their day's partition");
            }
        }
    }
}
