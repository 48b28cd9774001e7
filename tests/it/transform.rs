//! User transforms: into a table of the user's own with quoted camelCase columns, filters,
//! and errors found before any file is read.

use std::path::Path;

use serde_json::json;
use sqlx::PgPool;

use crate::util;

const CAMEL_TABLE: &str = r#"
CREATE TABLE "userEvents" (
    "eventId" text PRIMARY KEY,
    "occurredAt" timestamptz,
    "userId" bigint,
    "httpMethod" text,
    "isSlow" boolean,
    "rawJson" jsonb NOT NULL
)"#;

/// userId, httpMethod, isSlow, rawJson
type EventRow = (Option<i64>, Option<String>, Option<bool>, serde_json::Value);

const CAMEL_SQL: &str = r#"
SELECT
    ingestor_record_id(_source_bucket, _source_key, _source_index, NULL) AS "eventId",
    to_timestamp_millis(try_cast("time" AS BIGINT)) AS "occurredAt",
    try_cast("authUserId" AS BIGINT) AS "userId",
    upper(req['method']) AS "httpMethod",
    try_cast("processingTimeMs" AS DOUBLE) > 100 AS "isSlow",
    _raw AS "rawJson"
FROM raw_logs
WHERE level <> '20'
"#;

async fn ingest_into_user_events(pool: &PgPool, data: &Path, sql: &Path) -> util::Run {
    let sql = sql.to_str().unwrap();
    util::ingest(pool, data, &["--transform", sql, "--table", "userEvents"]).await
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn transform_into_a_camel_case_table_with_a_filter(pool: PgPool) {
    sqlx::query(CAMEL_TABLE).execute(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(dir.path(), "camel.sql", CAMEL_SQL.as_bytes());
    let records = vec![
        json!({"level": 30, "time": 1730800800000i64, "authUserId": "7", "req": {"method": "get"}, "processingTimeMs": 250}),
        json!({"level": 20, "time": 1730800800001i64}),
        json!({"level": 50, "time": 1730800800002i64, "processingTimeMs": 5}),
    ];
    let data = util::write_file(dir.path(), "data.json", &util::json_array(&records));
    let run = ingest_into_user_events(&pool, &data, &sql).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.count("records_ingested"), run.count("records_filtered")),
        (2, 1)
    );
    let rows: Vec<EventRow> = sqlx::query_as(
        r#"SELECT "userId", "httpMethod", "isSlow", "rawJson" FROM "userEvents" ORDER BY "occurredAt""#,
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(rows[0].0, Some(7));
    assert_eq!(rows[0].1.as_deref(), Some("GET"));
    assert_eq!(rows[0].2, Some(true));
    assert_eq!(rows[0].3, records[0]);
    assert_eq!(rows[1].2, Some(false));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_missing_column_fails_before_reading_naming_it(pool: PgPool) {
    sqlx::query(CAMEL_TABLE).execute(&pool).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sql = CAMEL_SQL.replace(r#"AS "httpMethod""#, r#"AS "verb""#);
    let sql = util::write_file(dir.path(), "bad.sql", sql.as_bytes());
    let data = util::write_file(dir.path(), "data.json", b"[{\"a\":1}]");
    let run = ingest_into_user_events(&pool, &data, &sql).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("\"verb\""),
        "names the column: {}",
        run.stderr
    );
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM processed_files").await,
        0,
        "nothing read"
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn an_unwritable_type_and_bad_sql_fail_before_reading(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let data = util::write_file(dir.path(), "data.json", b"[{\"a\":1}]");
    let wrong_type = util::write_file(
        dir.path(),
        "type.sql",
        b"SELECT _raw AS raw_data, req AS pid FROM raw_logs",
    );
    let run = util::ingest(&pool, &data, &["--transform", wrong_type.to_str().unwrap()]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("\"pid\""), "{}", run.stderr);

    let unknown = util::write_file(
        dir.path(),
        "unknown.sql",
        b"SELECT nope AS raw_data FROM raw_logs",
    );
    let run = util::ingest(&pool, &data, &["--transform", unknown.to_str().unwrap()]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("nope"), "{}", run.stderr);
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM processed_files").await,
        0
    );
}
