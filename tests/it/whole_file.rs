//! Issue 16: a transform means what its SQL means over the whole file. Aggregates, sorts and
//! limits run once per file and commit with the file; JSON functions read any key of the
//! record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::util;

const LEVEL_COUNTS: &str = "
CREATE TABLE level_counts (
    source_bucket text NOT NULL,
    source_key text NOT NULL,
    level text NOT NULL,
    n bigint NOT NULL,
    UNIQUE (source_bucket, source_key, level)
)";

const GROUP_BY: &str = "
SELECT _source_bucket AS source_bucket, _source_key AS source_key, level, count(*) AS n
FROM raw_logs
GROUP BY _source_bucket, _source_key, level";

/// The pino levels, one per record, in a pattern that differs with `seed`.
fn level(i: usize, seed: usize) -> u64 {
    [10, 20, 30, 30, 40, 50, 30, 60][(i * (seed + 1) + i / 7) % 8]
}

/// Writes `records` records (several Arrow batches) whose levels follow `seed`, and
/// returns the file and its count per level.
fn level_file(
    dir: &Path,
    name: &str,
    records: usize,
    seed: usize,
) -> (PathBuf, BTreeMap<String, i64>) {
    let mut counts = BTreeMap::new();
    let rows: Vec<Value> = (0..records)
        .map(|i| {
            let level = level(i, seed);
            *counts.entry(level.to_string()).or_insert(0) += 1;
            json!({"level": level, "time": 1730800800000i64 + i as i64, "msg": format!("m{i}")})
        })
        .collect();
    let path = util::write_file(dir, name, &util::gzip(&util::json_array(&rows)));
    (path, counts)
}

/// The counts stored for `path`, by level.
async fn stored_counts(pool: &PgPool, path: &Path) -> BTreeMap<String, i64> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("SELECT level, n FROM level_counts WHERE source_key = $1")
            .bind(util::key_of(path))
            .fetch_all(pool)
            .await
            .unwrap();
    rows.into_iter().collect()
}

fn transform_args(sql: &Path, table: &str) -> Vec<String> {
    let sql = sql.to_str().unwrap().to_string();
    vec!["--transform".into(), sql, "--table".into(), table.into()]
}

async fn ingest(pool: &PgPool, path: &Path, args: &[String]) -> util::Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    util::ingest(pool, path, &args).await
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_group_by_transform_gives_each_files_exact_counts_once(pool: PgPool) {
    sqlx::query(LEVEL_COUNTS).execute(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(dir.path(), "levels.sql", GROUP_BY.as_bytes());
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // 10,000 records are three Arrow batches of 4,096: per batch, each level would be
    // counted three times.
    let (first, first_counts) = level_file(&data, "a.json.gz", 10_000, 1);
    let (second, second_counts) = level_file(&data, "b.json.gz", 9_000, 2);
    let args = transform_args(&sql, "level_counts");

    let run = ingest(&pool, &data, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let groups = (first_counts.len() + second_counts.len()) as u64;
    assert_eq!(
        run.count("records_ingested"),
        groups,
        "rows written: the groups"
    );
    assert_eq!(run.count("records_read"), 19_000, "records read: the input");
    assert_eq!(
        run.count("records_filtered"),
        0,
        "an aggregate filters nothing"
    );
    assert_eq!(stored_counts(&pool, &first).await, first_counts);
    assert_eq!(stored_counts(&pool, &second).await, second_counts);

    // --force replaces the file's groups: the same counts, once.
    let mut forced = args.clone();
    forced.push("--force".into());
    let run = ingest(&pool, &first, &forced).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_read"), 10_000);
    assert_eq!(stored_counts(&pool, &first).await, first_counts);
    assert_eq!(stored_counts(&pool, &second).await, second_counts);

    // preview shows what was written.
    let sql_arg = sql.to_str().unwrap();
    let preview = util::run(
        &pool,
        &[
            "preview",
            "--limit",
            "100",
            "--transform",
            sql_arg,
            first.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    let shown: BTreeMap<String, i64> = preview
        .stdout
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | source_bucket | source_key | level | n |
            if cells.len() != 6 {
                return None;
            }
            Some((cells[3].to_string(), cells[4].parse().ok()?))
        })
        .collect();
    assert_eq!(shown, first_counts, "{}", preview.stdout);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn sigkill_mid_file_leaves_a_whole_file_plans_output_exactly_once(pool: PgPool) {
    sqlx::query(LEVEL_COUNTS).execute(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(dir.path(), "levels.sql", GROUP_BY.as_bytes());
    let (path, counts) = level_file(dir.path(), "big.json.gz", 60_000, 3);
    let mut args = transform_args(&sql, "level_counts");
    // About four seconds for the file: time to kill it in its middle.
    args.extend(["--max-records-per-sec", "15000", "--lease-secs", "1"].map(String::from));
    args.extend(["--json".into(), path.to_str().unwrap().into()]);
    let mut all = vec!["ingest-file"];
    all.extend(args.iter().map(String::as_str));

    let mut child = util::command(&pool, &all).spawn().unwrap();
    util::wait_until(
        &pool,
        "SELECT count(*) FROM processed_files WHERE status = 'PROCESSING'",
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    child.kill().await.unwrap(); // SIGKILL
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM level_counts").await,
        0,
        "nothing of a whole-file plan's output commits before the file's end"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM processed_files")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "PROCESSING", "killed mid-file");

    util::expire_leases(&pool).await;
    let run = util::run(&pool, &all).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_read"), 60_000);
    assert_eq!(stored_counts(&pool, &path).await, counts);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn order_by_limit_gives_the_files_rows_and_preview_agrees(pool: PgPool) {
    sqlx::query("CREATE TABLE last_three (source_key text, source_index bigint, message text)")
        .execute(&pool)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(
        dir.path(),
        "last.sql",
        b"SELECT _source_key AS source_key, _source_index AS source_index, msg AS message
          FROM raw_logs ORDER BY _source_index DESC LIMIT 3",
    );
    let (path, _) = level_file(dir.path(), "data.json.gz", 9_000, 0);
    let run = ingest(&pool, &path, &transform_args(&sql, "last_three")).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("records_ingested"), run.count("records_read")),
        (3, 9_000)
    );
    let rows: Vec<(i64, String)> =
        sqlx::query_as("SELECT source_index, message FROM last_three ORDER BY source_index DESC")
            .fetch_all(&pool)
            .await
            .unwrap();
    let expected: Vec<(i64, String)> = (8_997..9_000).rev().map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(
        rows, expected,
        "the file's last three records, not three per batch"
    );

    let preview = util::run(
        &pool,
        &[
            "preview",
            "--explain",
            "--transform",
            sql.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert!(
        preview.stdout.contains("plan kind: whole-file"),
        "{}",
        preview.stdout
    );
    let shown: Vec<&str> = preview
        .stdout
        .lines()
        .filter(|line| line.contains("data.json.gz"))
        .collect();
    assert_eq!(shown.len(), 3, "{}", preview.stdout);
    for (index, message) in &expected {
        assert!(
            shown
                .iter()
                .any(|l| l.contains(&format!("| {index} ")) && l.contains(message.as_str())),
            "preview shows record {index}: {}",
            preview.stdout
        );
    }
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn preview_explain_names_the_plan_kind(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = level_file(dir.path(), "data.json.gz", 10, 0);
    let preview = util::run(&pool, &["preview", "--explain", path.to_str().unwrap()]).await;
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert!(
        preview.stdout.contains("plan kind: row-wise"),
        "{}",
        preview.stdout
    );
    let sql = util::write_file(
        dir.path(),
        "distinct.sql",
        b"SELECT DISTINCT level FROM raw_logs",
    );
    let preview = util::run(
        &pool,
        &[
            "preview",
            "--explain",
            "--transform",
            sql.to_str().unwrap(),
            path.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(preview.code, 0, "{}", preview.stderr);
    assert!(
        preview
            .stdout
            .contains("plan kind: whole-file: it aggregates"),
        "{}",
        preview.stdout
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_transform_reading_raw_logs_twice_is_refused_before_reading(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = level_file(dir.path(), "data.json.gz", 10, 0);
    let sql = util::write_file(
        dir.path(),
        "self_join.sql",
        b"SELECT a._raw AS raw_data FROM raw_logs a JOIN raw_logs b ON a._source_index = b._source_index",
    );
    let run = util::ingest(&pool, &path, &["--transform", sql.to_str().unwrap()]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("reads raw_logs 2 times"),
        "{}",
        run.stderr
    );
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM processed_files").await,
        0
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_cut_short_commits_nothing_of_a_whole_file_plan(pool: PgPool) {
    sqlx::query(LEVEL_COUNTS).execute(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(dir.path(), "levels.sql", GROUP_BY.as_bytes());
    let (whole, _) = level_file(dir.path(), "whole.json.gz", 5_000, 0);
    let bytes = std::fs::read(&whole).unwrap();
    let cut = util::write_file(dir.path(), "cut.json.gz", &bytes[..bytes.len() / 2]);
    let run = ingest(&pool, &cut, &transform_args(&sql, "level_counts")).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    let (status, error): (String, String) =
        sqlx::query_as("SELECT status, metadata->>'error' FROM processed_files")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(status, "FAILED");
    assert!(
        error.contains("byte"),
        "names where the input broke: {error}"
    );
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM level_counts").await,
        0,
        "counts of part of the file are not the file's counts"
    );
}

/// tenant, status, region, tags
type TenantRow = (Option<String>, Option<i32>, Option<String>, Option<i32>);

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn json_functions_read_keys_the_builtin_schema_does_not_know(pool: PgPool) {
    sqlx::query(
        "CREATE TABLE tenants (tenant text, status integer, region text, tags integer, raw jsonb)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(
        dir.path(),
        "tenants.sql",
        br#"SELECT json_get_str(_raw, 'tenant') AS tenant,
                  json_get_int(_raw, 'res', 'statusCode') AS status,
                  _raw->'geo'->>'region' AS region,
                  json_length(_raw, 'tags') AS tags,
                  _raw AS raw
           FROM raw_logs"#,
    );
    let records = vec![
        json!({"level": 30, "tenant": "acme", "res": {"statusCode": 503}, "geo": {"region": "eu-west"}, "tags": ["a", "b"]}),
        json!({"level": 30, "tenant": "globex", "res": {"statusCode": 200}}),
    ];
    let data = util::write_file(dir.path(), "data.json", &util::json_array(&records));
    let run = ingest(&pool, &data, &transform_args(&sql, "tenants")).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.summary().get("records_read").is_none(),
        "a row-wise plan: {}",
        run.stdout
    );
    let rows: Vec<TenantRow> =
        sqlx::query_as("SELECT tenant, status, region, tags FROM tenants ORDER BY tenant")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            (
                Some("acme".into()),
                Some(503),
                Some("eu-west".into()),
                Some(2)
            ),
            (Some("globex".into()), Some(200), None, None),
        ]
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn small_files_in_one_group_each_get_their_own_group_by(pool: PgPool) {
    sqlx::query(LEVEL_COUNTS).execute(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(dir.path(), "levels.sql", GROUP_BY.as_bytes());
    let folder = dir.path().join("root").join("logs");
    std::fs::create_dir_all(&folder).unwrap();
    let files: Vec<_> = (0..12)
        .map(|seed| level_file(&folder, &format!("f{seed:02}.json.gz"), 30 + seed, seed))
        .collect();
    let mut args: Vec<String> = ["run", "--json", "--bucket", "logs", "--local-buckets"]
        .map(String::from)
        .to_vec();
    args.push(dir.path().join("root").to_str().unwrap().into());
    args.extend(transform_args(&sql, "level_counts"));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = util::run_debug(&pool, &args).await;
    let stderr = &run.stderr;
    assert_eq!(run.code, 0, "{stderr}");
    assert!(stderr.contains("group committed files=12"), "{stderr}");
    for (path, counts) in &files {
        let key = path.file_name().unwrap().to_str().unwrap();
        let stored: BTreeMap<String, i64> =
            sqlx::query_as("SELECT level, n FROM level_counts WHERE source_key = $1")
                .bind(key)
                .fetch_all(&pool)
                .await
                .unwrap()
                .into_iter()
                .collect();
        assert_eq!(&stored, counts, "{key}");
    }
}
