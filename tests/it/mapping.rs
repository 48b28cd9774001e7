//! One test per row of the contract's mapping table (`logs`), through the real binary.

use serde_json::{Value, json};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use crate::util;

/// Ingests `records` (a JSON array file) and returns their rows in `logs`, by source index.
async fn ingest_rows(pool: &PgPool, records: &[Value]) -> Vec<PgRow> {
    let dir = tempfile::tempdir().unwrap();
    let path = util::write_file(
        dir.path(),
        "records.json.gz",
        &util::gzip(&util::json_array(records)),
    );
    let run = util::ingest(pool, &path, &[]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    sqlx::query(
        "SELECT *, id::text AS id_text, timestamp::text AS ts_text FROM logs ORDER BY source_index",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn one(pool: &PgPool, record: Value) -> PgRow {
    let mut rows = ingest_rows(pool, &[record]).await;
    assert_eq!(rows.len(), 1);
    rows.remove(0)
}

fn text(row: &PgRow, column: &str) -> Option<String> {
    row.get(column)
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn timestamp_from_iso_8601(pool: PgPool) {
    let row = one(
        &pool,
        json!({"timestamp": "2024-11-05T10:00:00.123+02:00", "time": 1}),
    )
    .await;
    let ts: chrono::DateTime<chrono::Utc> = row.get("timestamp");
    assert_eq!(ts.to_rfc3339(), "2024-11-05T08:00:00.123+00:00");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn timestamp_falls_back_to_time_epoch_millis(pool: PgPool) {
    let rows = ingest_rows(
        &pool,
        &[
            json!({"time": 1730800800123i64}),
            json!({"timestamp": "not a date", "time": 1730800800123i64}),
            json!({"timestamp": "nope"}),
        ],
    )
    .await;
    for row in &rows[..2] {
        let ts: chrono::DateTime<chrono::Utc> = row.get("timestamp");
        assert_eq!(ts.timestamp_millis(), 1_730_800_800_123);
    }
    let none: Option<chrono::DateTime<chrono::Utc>> = rows[2].get("timestamp");
    assert!(none.is_none());
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn level_numbers_become_pino_labels(pool: PgPool) {
    let levels = [
        json!(10),
        json!(20),
        json!(30),
        json!(40),
        json!(50),
        json!(60),
        json!(35),
        json!("custom"),
    ];
    let records: Vec<Value> = levels.iter().map(|l| json!({"level": l})).collect();
    let rows = ingest_rows(&pool, &records).await;
    let got: Vec<Option<String>> = rows.iter().map(|r| text(r, "level")).collect();
    let want = [
        "trace", "debug", "info", "warn", "error", "fatal", "35", "custom",
    ];
    assert_eq!(
        got,
        want.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>()
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn method_and_url_from_req(pool: PgPool) {
    let row = one(
        &pool,
        json!({"req": {"method": "POST", "url": "/v1/x?y=1"}}),
    )
    .await;
    assert_eq!(text(&row, "method").as_deref(), Some("POST"));
    assert_eq!(text(&row, "url").as_deref(), Some("/v1/x?y=1"));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn query_headers_params_are_the_original_json(pool: PgPool) {
    let query = json!({"limit": "10", "filter": {"tag": ["a", "b"]}, "n": 1.5});
    let headers = json!({"host": "api", "x-list": ["1", "2"]});
    let params = json!({"id": "42"});
    let rows = ingest_rows(
        &pool,
        &[
            json!({"req": {"query": query, "headers": headers, "params": params}}),
            json!({"req": {}}),
        ],
    )
    .await;
    assert_eq!(rows[0].get::<Value, _>("query"), query);
    assert_eq!(rows[0].get::<Value, _>("headers"), headers);
    assert_eq!(rows[0].get::<Value, _>("params"), params);
    assert!(rows[1].get::<Option<Value>, _>("query").is_none());
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn context_message_hostname(pool: PgPool) {
    let rows = ingest_rows(
        &pool,
        &[
            json!({"context": "Http", "message": "m", "msg": "ignored", "hostname": "h1"}),
            json!({"msg": "from msg"}),
        ],
    )
    .await;
    assert_eq!(text(&rows[0], "context").as_deref(), Some("Http"));
    assert_eq!(text(&rows[0], "message").as_deref(), Some("m"));
    assert_eq!(text(&rows[0], "hostname").as_deref(), Some("h1"));
    assert_eq!(text(&rows[1], "message").as_deref(), Some("from msg"));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn auth_user_id_bigint_with_numeric_strings_and_garbage_null(pool: PgPool) {
    let rows = ingest_rows(
        &pool,
        &[
            json!({"authUserId": 9007199254740993i64}),
            json!({"authUserId": "1102"}),
            json!({"authUserId": "abc"}),
        ],
    )
    .await;
    let got: Vec<Option<i64>> = rows.iter().map(|r| r.get("auth_user_id")).collect();
    assert_eq!(got, vec![Some(9007199254740993), Some(1102), None]);
    let raw: Value = rows[2].get("raw_data");
    assert_eq!(raw["authUserId"], "abc", "raw_data keeps the value");
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn pid_and_remote_port_integers(pool: PgPool) {
    let rows = ingest_rows(
        &pool,
        &[
            json!({"pid": 4242, "req": {"remotePort": 53412, "remoteAddress": "10.0.0.1"}}),
            json!({"pid": "77", "req": {"remotePort": "x"}}),
            json!({"pid": 99999999999i64}),
        ],
    )
    .await;
    assert_eq!(rows[0].get::<Option<i32>, _>("pid"), Some(4242));
    assert_eq!(rows[0].get::<Option<i32>, _>("remote_port"), Some(53412));
    assert_eq!(
        text(&rows[0], "remote_address").as_deref(),
        Some("10.0.0.1")
    );
    assert_eq!(rows[1].get::<Option<i32>, _>("pid"), Some(77));
    assert_eq!(rows[1].get::<Option<i32>, _>("remote_port"), None);
    assert_eq!(
        rows[2].get::<Option<i32>, _>("pid"),
        None,
        "out of range becomes NULL"
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn processing_time_cache_hit_document_count(pool: PgPool) {
    let rows = ingest_rows(
        &pool,
        &[
            json!({"processingTimeMs": 12.5, "cacheHit": true, "documentCount": 10}),
            json!({"processingTimeMs": "3", "cacheHit": "false", "documentCount": "7"}),
            json!({"processingTimeMs": "slow", "cacheHit": "maybe", "documentCount": 1.5}),
        ],
    )
    .await;
    assert_eq!(
        rows[0].get::<Option<f64>, _>("processing_time_ms"),
        Some(12.5)
    );
    assert_eq!(rows[0].get::<Option<bool>, _>("cache_hit"), Some(true));
    assert_eq!(rows[0].get::<Option<i32>, _>("document_count"), Some(10));
    assert_eq!(
        rows[1].get::<Option<f64>, _>("processing_time_ms"),
        Some(3.0)
    );
    assert_eq!(rows[1].get::<Option<bool>, _>("cache_hit"), Some(false));
    assert_eq!(rows[1].get::<Option<i32>, _>("document_count"), Some(7));
    assert_eq!(rows[2].get::<Option<f64>, _>("processing_time_ms"), None);
    assert_eq!(rows[2].get::<Option<bool>, _>("cache_hit"), None);
    assert_eq!(rows[2].get::<Option<i32>, _>("document_count"), None);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn last_updated_timestamptz(pool: PgPool) {
    let rows = ingest_rows(
        &pool,
        &[
            json!({"lastUpdated": "2024-11-05T09:59:00.000Z"}),
            json!({"lastUpdated": "yesterday"}),
        ],
    )
    .await;
    let ts: Option<chrono::DateTime<chrono::Utc>> = rows[0].get("last_updated");
    assert_eq!(ts.unwrap().to_rfc3339(), "2024-11-05T09:59:00+00:00");
    assert!(
        rows[1]
            .get::<Option<chrono::DateTime<chrono::Utc>>, _>("last_updated")
            .is_none()
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn raw_data_equals_the_source_record(pool: PgPool) {
    let records = vec![
        json!({"level": 30, "msg": "é 日本 😀 \"quoted\" \\ back", "req": {"query": {"a": [1, {"b": null}]}}, "extra": {"deep": [true, 1e3]}}),
        json!({"unknown": "fields are kept", "n": -0.5}),
    ];
    let rows = ingest_rows(&pool, &records).await;
    for (row, record) in rows.iter().zip(&records) {
        assert_eq!(&row.get::<Value, _>("raw_data"), record);
    }
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn request_id_as_text(pool: PgPool) {
    let rows = ingest_rows(
        &pool,
        &[json!({"req": {"id": "req-1"}}), json!({"req": {"id": 17}})],
    )
    .await;
    assert_eq!(text(&rows[0], "request_id").as_deref(), Some("req-1"));
    assert_eq!(text(&rows[1], "request_id").as_deref(), Some("17"));
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn source_columns_and_deterministic_ids(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let records: Vec<Value> = (0..3)
        .map(|i| json!({"i": i, "time": 1730800800000i64 + i}))
        .collect();
    let path = util::write_file(dir.path(), "src.json", &util::json_array(&records));
    assert_eq!(util::ingest(&pool, &path, &[]).await.code, 0);
    let rows: Vec<(String, String, i64, String)> = sqlx::query_as(
        "SELECT source_bucket, source_key, source_index, id::text FROM logs ORDER BY source_index",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let key = util::key_of(&path);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(
            (row.0.as_str(), row.1.as_str(), row.2),
            ("local", key.as_str(), i as i64)
        );
    }
    // Time-ordered ids (UUIDv7 layout): the timestamp leads.
    assert!(rows[0].3 < rows[1].3 && rows[1].3 < rows[2].3);
    let created: i64 = util::count(
        &pool,
        "SELECT count(*) FROM logs WHERE created_at IS NOT NULL AND updated_at IS NOT NULL",
    )
    .await;
    assert_eq!(created, 3);
}

/// Issue 14 item 1: `time` is epoch milliseconds whatever its size, and a timestamp beyond
/// PostgreSQL's range (4714 BC to 294276 AD) is NULL: a record never fails its chunk.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn out_of_range_timestamps_become_null_and_never_fail_the_file(pool: PgPool) {
    let records = [
        json!({"time": 1730800800123i64}),
        // An epoch in microseconds read as milliseconds: a date in the year 56,816.
        json!({"time": 1730800800123456i64}),
        // Before 4714 BC: an Arrow timestamp, not a PostgreSQL one.
        json!({"time": -300000000000000i64}),
        json!({"time": i64::MIN}),
        // Beyond a microsecond timestamp, and the last millisecond within one.
        json!({"time": 9223372036854776i64}),
        json!({"time": 9223372036854775i64}),
        // PostgreSQL's first instant: 4714-11-24 00:00:00 BC.
        json!({"time": -210866803200000i64}),
        json!({"timestamp": "2300-01-01T00:00:00Z", "lastUpdated": "2500-01-01T00:00:00Z"}),
        json!({"timestamp": "1600-06-01T12:00:00.123456Z"}),
        json!({"timestamp": "99999-01-01T00:00:00Z", "time": 1730800800123i64, "lastUpdated": "99999-01-01"}),
        json!({"timestamp": "-5000-01-01T00:00:00Z", "lastUpdated": "-5000-01-01T00:00:00Z"}),
    ];
    let rows = ingest_rows(&pool, &records).await;
    assert_eq!(rows.len(), records.len(), "every record lands");
    let years: Vec<(Option<i64>, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT extract(year FROM timestamp AT TIME ZONE 'UTC')::int8, \
                extract(year FROM last_updated AT TIME ZONE 'UTC')::int8, \
                (timestamp AT TIME ZONE 'UTC')::text \
         FROM logs ORDER BY source_index",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let year: Vec<Option<i64>> = years.iter().map(|y| y.0).collect();
    assert_eq!(
        year,
        [
            Some(2024),
            Some(56816),
            None,
            None,
            None,
            Some(294247),
            Some(-4714),
            Some(2300),
            Some(1600),
            Some(2024),
            None
        ]
    );
    assert_eq!(years[0].2.as_deref(), Some("2024-11-05 10:00:00.123"));
    assert_eq!(years[1].2.as_deref(), Some("56816-11-22 16:02:03.456"));
    assert_eq!(years[6].2.as_deref(), Some("4714-11-24 00:00:00 BC"));
    assert_eq!(years[8].2.as_deref(), Some("1600-06-01 12:00:00.123456"));
    let last_updated: Vec<Option<i64>> = years.iter().map(|y| y.1).collect();
    assert_eq!(last_updated[7..], [Some(2500), None, None, None]);
    let ids: i64 = util::count(&pool, "SELECT count(DISTINCT id) FROM logs").await;
    assert_eq!(ids, records.len() as i64);
}
