//! The Delta sink (`--sink delta=URL`): the table read back by delta-rs' Python reader and
//! by DataFusion, exactly once across the table and PostgreSQL (a crash between the two
//! commits, SIGKILL at random points, three workers), `--force`, the schema check, and
//! `lake optimize` / `lake vacuum`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::prelude::SessionContext;
use deltalake_core::DeltaTable;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::util;

/// 2024-11-05T00:00:00Z in epoch milliseconds.
const MIDNIGHT_MS: i64 = 1_730_764_800_000;

/// `n` pino records, one per second, starting `before` seconds before midnight.
fn records_around_midnight(n: usize, before: i64, tag: &str) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({
                "level": 30,
                "time": MIDNIGHT_MS + (i as i64 - before) * 1000,
                "msg": format!("{tag} {i}"),
                "req": {"method": "GET", "url": format!("/items/{i}")},
            })
        })
        .collect()
}

/// The Python interpreter with delta-rs' reader (scripts/setup-test-s3.sh installs it).
fn python() -> PathBuf {
    let venv = std::env::var("INGESTOR_S3_VENV").unwrap_or_else(|_| {
        format!(
            "{}/.cache/ingestor-s3",
            std::env::var("HOME").expect("HOME")
        )
    });
    let python = PathBuf::from(venv).join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup-test-s3.sh (installs moto and deltalake)",
        python.display()
    );
    python
}

/// What delta-rs' Python reader sees in the table at `root`: rows, partition columns,
/// rows per date, and the distinct (source_key, source_index) pairs.
pub fn read_with_python(root: &Path) -> Value {
    read_uri_with_python(root.to_str().unwrap(), &json!({}))
}

/// [`read_with_python`] of a table URI, with delta-rs storage options.
fn read_uri_with_python(uri: &str, options: &Value) -> Value {
    let script = r#"
import json, sys
from deltalake import DeltaTable, QueryBuilder
dt = DeltaTable(sys.argv[1], storage_options=json.loads(sys.argv[2]) or None)
q = QueryBuilder().register("t", dt)
def scalar(sql):
    table = q.execute(sql).read_all()
    return table.column(0)[0].as_py()
by_date = q.execute("SELECT CAST(date AS VARCHAR) AS d, count(*) AS n FROM t GROUP BY date ORDER BY d").read_all()
dates = {str(d): n for d, n in zip(by_date.column(0).to_pylist(), by_date.column(1).to_pylist())}
print(json.dumps({
    "rows": scalar("SELECT count(*) FROM t"),
    "distinct": scalar("SELECT count(*) FROM (SELECT DISTINCT source_key, source_index FROM t)"),
    "partition_columns": dt.metadata().partition_columns,
    "dates": dates,
    "version": dt.version(),
    "files": len(dt.file_uris()),
}))
"#;
    let output = std::process::Command::new(python())
        .args(["-c", script, uri, &options.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the deltalake reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The table at `root`, loaded with delta-rs.
async fn load(root: &Path) -> DeltaTable {
    let mut table = ingestor::sink::delta::open_table(root.to_str().unwrap(), None).unwrap();
    table.load().await.unwrap();
    table
}

/// One column of `sql` over the table at `root` (registered as `t`), through DataFusion.
pub async fn query(root: &Path, sql: &str) -> Vec<arrow::record_batch::RecordBatch> {
    let table = load(root).await;
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    let provider = table.table_provider().await.unwrap();
    ctx.register_table("t", provider).unwrap();
    ctx.sql(sql).await.unwrap().collect().await.unwrap()
}

pub async fn scalar_i64(root: &Path, sql: &str) -> i64 {
    let batches = query(root, sql).await;
    let column =
        arrow::compute::cast(batches[0].column(0), &arrow::datatypes::DataType::Int64).unwrap();
    column
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0)
}

/// Rows and distinct (source_key, source_index) pairs in the table, through DataFusion.
async fn table_counts(root: &Path) -> (i64, i64) {
    (
        scalar_i64(root, "SELECT count(*) FROM t").await,
        scalar_i64(
            root,
            "SELECT count(*) FROM (SELECT DISTINCT source_key, source_index FROM t)",
        )
        .await,
    )
}

/// Rows and distinct (source_key, source_index) pairs in `logs`.
async fn pg_counts(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as("SELECT count(*), count(DISTINCT (source_key, source_index)) FROM logs")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn delta_rs_reads_the_table_with_the_ingested_records_by_date(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let path = util::write_file(
        dir.path(),
        "app-1.json.gz",
        &util::gzip(&util::json_array(&records_around_midnight(100, 40, "r"))),
    );
    let sink = format!("delta={}", table.display());
    let run = util::ingest(&pool, &path, &["--sink", &sink]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_ingested"), 100);
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, 0);

    let seen = read_with_python(&table);
    assert_eq!(seen["rows"], 100, "{seen}");
    assert_eq!(seen["distinct"], 100, "{seen}");
    assert_eq!(seen["partition_columns"], json!(["date"]), "{seen}");
    assert_eq!(
        seen["dates"],
        json!({"2024-11-04": 40, "2024-11-05": 60}),
        "{seen}"
    );
    // One object, one commit (after the table's creation).
    assert_eq!(seen["version"], 1, "{seen}");

    // The job records the run and the table version that holds it.
    let delta: Value = sqlx::query_scalar("SELECT metadata->'delta' FROM processed_files")
        .fetch_one(&pool)
        .await
        .unwrap();
    let run_record = delta.as_object().unwrap().values().next().unwrap();
    assert_eq!(
        run_record,
        &json!({"version": 1, "state": "committed", "table_version": 1})
    );
    let destinations: Vec<String> =
        sqlx::query_scalar("SELECT unnest(destinations) FROM processed_files")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(destinations.len(), 1);
    assert!(destinations[0].starts_with("delta:"), "{destinations:?}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn datafusion_reads_back_what_postgres_got(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    util::generate(&dir.path().join("in"), 3, 2_000).await;
    let sink = format!("postgres,delta={}", table.display());
    let run = util::ingest(&pool, &dir.path().join("in"), &["--sink", &sink]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ingested = run.count("records_ingested") as i64;
    assert!(ingested > 5_000, "{}", run.stdout);

    assert_eq!(pg_counts(&pool).await, (ingested, ingested));
    assert_eq!(table_counts(&table).await, (ingested, ingested));
    // The same rows: ids and messages agree, day by day.
    let pg_days: Vec<(String, i64)> = sqlx::query_as(
        "SELECT COALESCE(to_char(timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'null'), count(*) \
         FROM logs GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let batches = query(
        &table,
        "SELECT COALESCE(CAST(date AS VARCHAR), 'null') AS d, count(*) AS n FROM t GROUP BY 1 ORDER BY 1",
    )
    .await;
    let mut delta_days = Vec::new();
    for batch in &batches {
        let days =
            arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        let days = days
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap();
        let counts =
            arrow::compute::cast(batch.column(1), &arrow::datatypes::DataType::Int64).unwrap();
        let counts = counts
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .unwrap();
        for i in 0..batch.num_rows() {
            delta_days.push((days.value(i).to_string(), counts.value(i)));
        }
    }
    assert_eq!(delta_days, pg_days);
    let pg_sum: i64 = util::count(&pool, "SELECT sum(source_index)::bigint FROM logs").await;
    let delta_sum = scalar_i64(&table, "SELECT sum(source_index) FROM t").await;
    assert_eq!(delta_sum, pg_sum);
    let pg_messages: i64 = util::count(&pool, "SELECT count(DISTINCT message) FROM logs").await;
    let delta_messages = scalar_i64(&table, "SELECT count(DISTINCT message) FROM t").await;
    assert_eq!(delta_messages, pg_messages);
}

/// A run that dies after its Delta commit and before its job's COMPLETED transaction:
/// the retry finds the commit by the object's `txn` and writes nothing twice.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_crash_between_the_delta_commit_and_completion_writes_nothing_twice(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let path = util::write_file(
        dir.path(),
        "app-1.json.gz",
        &util::gzip(&util::json_array(&records_around_midnight(50, 10, "r"))),
    );
    // The database refuses to mark the file COMPLETED once: the Delta commit is made,
    // the job's transaction (and the PostgreSQL rows) roll back.
    sqlx::query(
        "CREATE FUNCTION refuse_completion() RETURNS trigger AS $$ \
         BEGIN RAISE EXCEPTION 'injected: the completing transaction fails'; END $$ \
         LANGUAGE plpgsql",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_completion BEFORE UPDATE ON processed_files FOR EACH ROW \
         WHEN (NEW.status = 'COMPLETED') EXECUTE FUNCTION refuse_completion()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let sink = format!("postgres,delta={}", table.display());
    let first = util::ingest(&pool, &path, &["--sink", &sink]).await;
    assert_ne!(
        first.code, 0,
        "the completion was refused: {}",
        first.stdout
    );
    assert!(first.stderr.contains("injected"), "{}", first.stderr);
    assert_eq!(
        table_counts(&table).await,
        (50, 50),
        "the table has the commit"
    );
    assert_eq!(pg_counts(&pool).await, (0, 0), "PostgreSQL rolled back");

    sqlx::query("DROP TRIGGER refuse_completion ON processed_files")
        .execute(&pool)
        .await
        .unwrap();
    let again = util::ingest(&pool, &path, &["--sink", &sink]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(table_counts(&table).await, (50, 50), "not committed twice");
    assert_eq!(pg_counts(&pool).await, (50, 50));
    let seen = read_with_python(&table);
    assert_eq!(seen["version"], 1, "no second commit: {seen}");
    let state: String =
        sqlx::query_scalar("SELECT status || ' ' || (metadata->'delta'->(SELECT jsonb_object_keys(metadata->'delta') LIMIT 1)->>'state') FROM processed_files")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(state, "COMPLETED committed");
}

/// `run` over a local bucket with both sinks.
fn run_args<'a>(buckets: &'a str, sink: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "run",
        "--json",
        "--bucket",
        "b",
        "--local-buckets",
        buckets,
        "--sink",
        sink,
        "--lease-secs",
        "2",
    ];
    args.extend_from_slice(extra);
    args
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn sigkill_at_random_points_then_reruns_leave_every_record_once_in_both(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    util::generate(&buckets.join("b"), 12, 1_000).await;
    let table = dir.path().join("table");
    let sink = format!("postgres,delta={}", table.display());
    let buckets = buckets.to_str().unwrap().to_string();
    // Slowed down so that each kill lands somewhere in the middle of the work; rounds
    // alternate between one commit per file and groups of files sharing one. Six kills
    // can take the same file six times: --max-attempts is set above that, so no file is
    // given up as a poison pill (that guard has its own test in operations.rs,
    // a_file_that_kills_its_worker_ends_failed_after_max_attempts).
    let alone = run_args(
        &buckets,
        &sink,
        &[
            "--concurrency",
            "3",
            "--max-records-per-sec",
            "6000",
            "--group-files",
            "1",
            "--max-attempts",
            "10",
        ],
    );
    let grouped = run_args(
        &buckets,
        &sink,
        &[
            "--concurrency",
            "2",
            "--max-records-per-sec",
            "6000",
            "--group-files",
            "3",
            "--max-attempts",
            "10",
        ],
    );

    // Kill at a different moment each time: while reading, around commits, between them.
    let mut rng = 0x9e37_79b9_u64;
    let mut mid_run = 0;
    for round in 0..6 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(700 + rng % 1_200);
        let args = if round % 2 == 0 { &alone } else { &grouped };
        let mut child = util::command(&pool, args).spawn().unwrap();
        tokio::time::sleep(delay).await;
        child.kill().await.unwrap(); // SIGKILL
        let _ = child.wait().await;
        util::expire_leases(&pool).await;
        let completed = util::count(
            &pool,
            "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'",
        )
        .await;
        eprintln!("round {round}: killed after {delay:?}, {completed} files completed");
        if (1..12).contains(&completed) {
            mid_run += 1;
        }
    }
    assert!(mid_run >= 2, "the kills landed mid-run");
    let last = util::run(&pool, &grouped).await;
    assert_eq!(last.code, 0, "{}", last.stderr);
    let files = util::count(
        &pool,
        "SELECT count(*) FROM processed_files WHERE status = 'COMPLETED'",
    )
    .await;
    assert_eq!(files, 12);
    let (rows, distinct) = pg_counts(&pool).await;
    let rejected = util::count(&pool, "SELECT count(*) FROM rejected_records").await;
    assert_eq!(rows, distinct, "no record twice in PostgreSQL");
    assert_eq!(rows + rejected, 12_000);
    assert_eq!(
        table_counts(&table).await,
        (rows, rows),
        "the table has every record once"
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn three_workers_on_one_table_write_every_record_once(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    util::generate(&buckets.join("b"), 24, 500).await;
    let table = dir.path().join("table");
    let sink = format!("postgres,delta={}", table.display());
    let buckets = buckets.to_str().unwrap().to_string();
    let args = run_args(&buckets, &sink, &["--concurrency", "2"]);
    let workers: Vec<_> = (0..3)
        .map(|_| util::command(&pool, &args).output())
        .collect();
    let mut completed = 0;
    for output in futures::future::join_all(workers).await {
        let output = output.unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        completed += summary["files_completed"].as_u64().unwrap();
    }
    assert_eq!(completed, 24, "every file COMPLETED by exactly one worker");
    let (rows, distinct) = pg_counts(&pool).await;
    assert_eq!(rows, distinct);
    assert_eq!(table_counts(&table).await, (rows, rows));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn force_replaces_the_objects_rows_in_one_commit(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let path = util::write_file(
        dir.path(),
        "app-1.json.gz",
        &util::gzip(&util::json_array(&records_around_midnight(30, 10, "old"))),
    );
    let other = util::write_file(
        dir.path(),
        "app-2.json.gz",
        &util::gzip(&util::json_array(&records_around_midnight(20, 10, "other"))),
    );
    let sink = format!("delta={}", table.display());
    for file in [&path, &other] {
        let run = util::ingest(&pool, file, &["--sink", &sink]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    // The object changes; --force writes it again.
    std::fs::write(
        &path,
        util::gzip(&util::json_array(&records_around_midnight(25, 5, "new"))),
    )
    .unwrap();
    let forced = util::ingest(&pool, &path, &["--sink", &sink, "--force"]).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(table_counts(&table).await, (45, 45));
    let old = scalar_i64(&table, "SELECT count(*) FROM t WHERE message LIKE 'old %'").await;
    let new = scalar_i64(&table, "SELECT count(*) FROM t WHERE message LIKE 'new %'").await;
    let others = scalar_i64(
        &table,
        "SELECT count(*) FROM t WHERE message LIKE 'other %'",
    )
    .await;
    assert_eq!((old, new, others), (0, 25, 20));
    let seen = read_with_python(&table);
    assert_eq!(seen["version"], 3, "the replacement is one commit: {seen}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_transform_with_another_schema_is_refused_naming_the_difference(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let path = util::write_file(
        dir.path(),
        "app-1.json.gz",
        &util::gzip(&util::json_array(&records_around_midnight(5, 1, "r"))),
    );
    let sink = format!("delta={}", table.display());
    let run = util::ingest(&pool, &path, &["--sink", &sink]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);

    let transform = util::write_file(
        dir.path(),
        "narrow.sql",
        b"SELECT ingestor_record_id(_source_bucket, _source_key, _source_index, NULL) AS id, \
           try_cast(try_cast(try_cast(\"time\" AS BIGINT) AS TIMESTAMP(3)) AS TIMESTAMP(6)) AS \"timestamp\", \
           msg AS message, level AS severity, _source_bucket AS source_bucket, \
           _source_key AS source_key, _source_index AS source_index FROM raw_logs",
    );
    let other = util::write_file(
        dir.path(),
        "app-2.json.gz",
        &util::gzip(&util::json_array(&records_around_midnight(5, 1, "r"))),
    );
    let refused = util::ingest(
        &pool,
        &other,
        &["--sink", &sink, "--transform", transform.to_str().unwrap()],
    )
    .await;
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("another schema") && refused.stderr.contains("`severity`"),
        "{}",
        refused.stderr
    );
    assert_eq!(table_counts(&table).await.0, 5, "nothing written");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn optimize_compacts_a_partitions_files_without_changing_its_rows(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let sink = format!("delta={}", table.display());
    for i in 0..6 {
        let path = util::write_file(
            dir.path(),
            &format!("app-{i}.json.gz"),
            &util::gzip(&util::json_array(&records_around_midnight(
                50,
                -3_600 * (i + 1),
                &format!("f{i}"),
            ))),
        );
        let run = util::ingest(&pool, &path, &["--sink", &sink]).await;
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let before = read_with_python(&table);
    assert_eq!(before["rows"], 300);
    assert_eq!(before["files"], 6, "one file per object: {before}");
    assert_eq!(before["dates"], json!({"2024-11-05": 300}));

    let optimized = util::run(
        &pool,
        &["lake", "optimize", "--json", table.to_str().unwrap()],
    )
    .await;
    assert_eq!(optimized.code, 0, "{}", optimized.stderr);
    let done = optimized.summary();
    assert_eq!(done["files_removed"], 6, "{done}");
    assert_eq!(done["files_added"], 1, "{done}");

    let after = read_with_python(&table);
    assert_eq!(after["files"], 1, "{after}");
    assert_eq!(after["rows"], 300);
    assert_eq!(after["distinct"], 300);
    assert_eq!(after["dates"], before["dates"]);

    // Vacuum with no retention removes the six compacted files from the folder; the
    // table reads the same.
    let vacuumed = util::run(
        &pool,
        &[
            "lake",
            "vacuum",
            "--json",
            "--retention-hours",
            "0",
            table.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(vacuumed.code, 0, "{}", vacuumed.stderr);
    assert_eq!(vacuumed.summary()["files_deleted"], 6);
    assert_eq!(read_with_python(&table)["rows"], 300);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_delta_table_on_the_s3_protocol_server(pool: PgPool) {
    let server = crate::s3::S3Server::start().await;
    let logs = server.bucket("logs").await;
    server.bucket("lake").await;
    for i in 0..3 {
        crate::s3::put(
            &logs,
            &format!("2024/11/0{i}/app.json.gz"),
            util::gzip(&util::json_array(&records_around_midnight(50, 10 * i, "r"))),
        )
        .await;
    }
    // One object alone (--group-files 1), then the other two in one group.
    let sinks = [
        "--sink",
        "postgres,delta=s3://lake/logs_delta/",
        "--group-files",
        "1",
        "--prefix",
        "2024/11/00",
    ];
    let first = crate::run::run(&pool, &server.endpoint(), "logs", &sinks).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let rest = ["--sink", "postgres,delta=s3://lake/logs_delta/"];
    let second = crate::run::run(&pool, &server.endpoint(), "logs", &rest).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.count("files_completed"), 2);

    let options = json!({
        "AWS_ENDPOINT_URL": server.endpoint(),
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",
    });
    let seen = read_uri_with_python("s3://lake/logs_delta", &options);
    assert_eq!(seen["rows"], 150, "{seen}");
    assert_eq!(seen["distinct"], 150, "{seen}");
    assert_eq!(seen["partition_columns"], json!(["date"]));
    // Creation, the lone object, then the other two (one group, two if claimed apart).
    let version = seen["version"].as_i64().unwrap();
    assert!((2..=3).contains(&version), "{seen}");
    assert_eq!(pg_counts(&pool).await, (150, 150));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn small_objects_of_a_group_share_one_commit(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let buckets = dir.path().join("buckets");
    let bucket = buckets.join("b");
    std::fs::create_dir_all(&bucket).unwrap();
    for i in 0..40 {
        util::write_file(
            &bucket,
            &format!("host-{i:02}.json.gz"),
            &util::gzip(&util::json_array(&records_around_midnight(
                10,
                i,
                &format!("h{i}"),
            ))),
        );
    }
    let table = dir.path().join("table");
    let sink = format!("postgres,delta={}", table.display());
    let buckets = buckets.to_str().unwrap().to_string();
    let args = run_args(
        &buckets,
        &sink,
        &["--concurrency", "1", "--group-files", "20"],
    );
    let run = util::run(&pool, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 40);
    let seen = read_with_python(&table);
    assert_eq!(seen["rows"], 400, "{seen}");
    assert_eq!(seen["distinct"], 400, "{seen}");
    let commits = seen["version"].as_i64().unwrap();
    assert!(
        (1..=4).contains(&commits),
        "40 objects in groups of 20 take a few commits, not 40: {seen}"
    );
    assert_eq!(pg_counts(&pool).await, (400, 400));
    // Each job records the table version that holds it.
    let unrecorded = util::count(
        &pool,
        "SELECT count(*) FROM processed_files p, jsonb_each(p.metadata->'delta') d \
         WHERE d.value->>'state' <> 'committed' OR d.value->'table_version' IS NULL",
    )
    .await;
    assert_eq!(unrecorded, 0);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_that_fails_half_way_commits_nothing_to_the_table(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let good = util::write_file(
        dir.path(),
        "good.json.gz",
        &util::gzip(&util::json_array(&records_around_midnight(20, 5, "good"))),
    );
    // Thousands of records, then the gzip stream is cut: the first batches reach the
    // table's writer before the read fails.
    let whole = util::gzip(&util::json_array(&records_around_midnight(
        20_000, 5, "cut",
    )));
    let cut = util::write_file(dir.path(), "cut.json.gz", &whole[..whole.len() * 3 / 4]);
    let sink = format!("postgres,delta={}", table.display());
    let run = util::ingest(&pool, &good, &["--sink", &sink]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let failed = util::ingest(&pool, &cut, &["--sink", &sink, "--batch-records", "500"]).await;
    assert_ne!(failed.code, 0, "{}", failed.stdout);
    let status: String =
        sqlx::query_scalar("SELECT status FROM processed_files WHERE s3_key LIKE '%cut.json.gz'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "FAILED");
    assert_eq!(
        table_counts(&table).await,
        (20, 20),
        "nothing of the cut file"
    );
    assert_eq!(read_with_python(&table)["version"], 1, "no commit for it");
    // PostgreSQL keeps the records decoded before the fault, as for every damaged file.
    let (rows, distinct) = pg_counts(&pool).await;
    assert_eq!(rows, distinct);
    assert!(rows > 10_000, "{rows}");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn force_without_source_columns_is_refused_with_a_message(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table");
    let path = util::write_file(
        dir.path(),
        "app-1.json.gz",
        &util::gzip(&util::json_array(&records_around_midnight(10, 1, "r"))),
    );
    let transform = util::write_file(
        dir.path(),
        "no_source.sql",
        b"SELECT try_cast(try_cast(try_cast(\"time\" AS BIGINT) AS TIMESTAMP(3)) AS TIMESTAMP(6)) \
          AS \"timestamp\", msg AS message FROM raw_logs",
    );
    let args = [
        "--sink",
        &format!("delta={}", table.display()),
        "--transform",
        transform.to_str().unwrap(),
    ];
    let first = util::ingest(&pool, &path, &args).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    let mut forced_args = args.to_vec();
    forced_args.push("--force");
    let forced = util::ingest(&pool, &path, &forced_args).await;
    assert_ne!(forced.code, 0, "{}", forced.stdout);
    assert!(
        forced.stderr.contains("`source_bucket` and `source_key`"),
        "{}",
        forced.stderr
    );
    assert_eq!(
        read_with_python_rows(&table),
        10,
        "the first run's rows stay"
    );
}

fn read_with_python_rows(table: &Path) -> i64 {
    // The table has no source columns: count rows only.
    let script = r#"
import sys
from deltalake import DeltaTable, QueryBuilder
dt = DeltaTable(sys.argv[1])
print(QueryBuilder().register("t", dt).execute("SELECT count(*) FROM t").read_all().column(0)[0].as_py())
"#;
    let output = std::process::Command::new(python())
        .args(["-c", script, table.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap()
}
