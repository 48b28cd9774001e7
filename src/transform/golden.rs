//! Golden tests of `sql/transform.sql`: one per row of the README's mapping table, RAW
//! batches in, the built-in transform's columns for that row out, compared as text tables.
//! No database: these pin what the SQL produces, the end-to-end tests in
//! `tests/it/mapping.rs` what lands in `logs`.

use arrow::record_batch::RecordBatch;
use datafusion::assert_batches_eq;

use super::{Transform, TransformSql};
use crate::decode::test_util::framed;

/// The built-in transform's output for `json` (a JSON array of records, read from
/// `b`/`k`), only `columns`.
async fn builtin(json: &str, columns: &[&str]) -> Vec<RecordBatch> {
    let (frames, mut batcher) = framed(json);
    let batch = batcher
        .convert(&frames, 0, &mut Vec::new())
        .unwrap()
        .expect("records");
    let mut transform = Transform::plan(&TransformSql::builtin(), 64).await.unwrap();
    let out = transform.run(vec![batch]).await.unwrap();
    out.iter()
        .map(|batch| {
            let schema = batch.schema();
            let indices: Vec<usize> = columns
                .iter()
                .map(|c| schema.index_of(c).unwrap())
                .collect();
            batch.project(&indices).unwrap()
        })
        .collect()
}

#[tokio::test]
async fn timestamp_from_iso_8601() {
    let out = builtin(
        r#"[{"timestamp":"2024-11-05T10:00:00.123+02:00","time":1},
            {"timestamp":"2024-11-05T10:00:00.123456Z"},
            {"timestamp":"2024-11-05 10:00:00"}]"#,
        &["timestamp"],
    )
    .await;
    assert_batches_eq!(
        [
            "+----------------------------+",
            "| timestamp                  |",
            "+----------------------------+",
            "| 2024-11-05T08:00:00.123    |",
            "| 2024-11-05T10:00:00.123456 |",
            "| 2024-11-05T10:00:00        |",
            "+----------------------------+",
        ],
        &out
    );
}

/// Whatever its size: an epoch in microseconds is a date in the year 56,816.
#[tokio::test]
async fn timestamp_falls_back_to_time_in_epoch_milliseconds() {
    let out = builtin(
        r#"[{"time":1730800800123},
            {"timestamp":"not a date","time":1730800800123},
            {"time":"1730800800123"},
            {"time":1730800800123456}]"#,
        &["timestamp"],
    )
    .await;
    assert_batches_eq!(
        [
            "+---------------------------+",
            "| timestamp                 |",
            "+---------------------------+",
            "| 2024-11-05T10:00:00.123   |",
            "| 2024-11-05T10:00:00.123   |",
            "| 2024-11-05T10:00:00.123   |",
            "| +56816-11-22T16:02:03.456 |",
            "+---------------------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn timestamp_is_null_without_either() {
    let out = builtin(
        r#"[{"timestamp":"nope"},{},{"time":"soon"},{"time":1.5},{"timestamp":null}]"#,
        &["timestamp"],
    )
    .await;
    assert_batches_eq!(
        [
            "+-----------+",
            "| timestamp |",
            "+-----------+",
            "|           |",
            "|           |",
            "|           |",
            "|           |",
            "|           |",
            "+-----------+",
        ],
        &out
    );
}

#[tokio::test]
async fn level_numbers_become_pino_labels_and_the_rest_stays_as_given() {
    let out = builtin(
        r#"[{"level":10},{"level":20},{"level":30},{"level":40},{"level":50},{"level":60},
            {"level":35},{"level":-1},{"level":30.0},{"level":"30"},{"level":"custom"},{}]"#,
        &["level"],
    )
    .await;
    assert_batches_eq!(
        [
            "+--------+",
            "| level  |",
            "+--------+",
            "| trace  |",
            "| debug  |",
            "| info   |",
            "| warn   |",
            "| error  |",
            "| fatal  |",
            "| 35     |",
            "| -1     |",
            "| 30.0   |",
            "| info   |",
            "| custom |",
            "|        |",
            "+--------+",
        ],
        &out
    );
}

#[tokio::test]
async fn method_and_url_from_req() {
    let out = builtin(
        r#"[{"req":{"method":"POST","url":"/v1/x?y=1"}},{"req":{}},{}]"#,
        &["method", "url"],
    )
    .await;
    assert_batches_eq!(
        [
            "+--------+-----------+",
            "| method | url       |",
            "+--------+-----------+",
            "| POST   | /v1/x?y=1 |",
            "|        |           |",
            "|        |           |",
            "+--------+-----------+",
        ],
        &out
    );
}

/// Any JSON value as its text, spaces kept; JSON `null` is NULL.
#[tokio::test]
async fn query_headers_params_are_the_original_json_text() {
    let out = builtin(
        r#"[{"req":{"query":{"limit": "10", "tag":["a","b"]},"headers":{"host":"api"},"params":{"id":42}}},
            {"req":{"query":[1, 2],"headers":"h","params":null}},
            {"req":{}}]"#,
        &["query", "headers", "params"],
    )
    .await;
    assert_batches_eq!(
        [
            "+----------------------------------+----------------+-----------+",
            "| query                            | headers        | params    |",
            "+----------------------------------+----------------+-----------+",
            "| {\"limit\": \"10\", \"tag\":[\"a\",\"b\"]} | {\"host\":\"api\"} | {\"id\":42} |",
            "| [1, 2]                           | \"h\"            |           |",
            "|                                  |                |           |",
            "+----------------------------------+----------------+-----------+",
        ],
        &out
    );
}

#[tokio::test]
async fn context_message_with_msg_as_fallback_and_hostname() {
    let out = builtin(
        r#"[{"context":"Http","message":"m","msg":"ignored","hostname":"h1"},
            {"msg":"from msg"},
            {}]"#,
        &["context", "message", "hostname"],
    )
    .await;
    assert_batches_eq!(
        [
            "+---------+----------+----------+",
            "| context | message  | hostname |",
            "+---------+----------+----------+",
            "| Http    | m        | h1       |",
            "|         | from msg |          |",
            "|         |          |          |",
            "+---------+----------+----------+",
        ],
        &out
    );
}

#[tokio::test]
async fn auth_user_id_from_numbers_and_numeric_strings_else_null() {
    let out = builtin(
        r#"[{"authUserId":9007199254740993},{"authUserId":"1102"},{"authUserId":"abc"},
            {"authUserId":1.5},{"authUserId":99999999999999999999},{}]"#,
        &["auth_user_id"],
    )
    .await;
    assert_batches_eq!(
        [
            "+------------------+",
            "| auth_user_id     |",
            "+------------------+",
            "| 9007199254740993 |",
            "| 1102             |",
            "|                  |",
            "|                  |",
            "|                  |",
            "|                  |",
            "+------------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn pid_an_integer_else_null() {
    let out = builtin(
        r#"[{"pid":4242},{"pid":"77"},{"pid":99999999999},{"pid":"x"}]"#,
        &["pid"],
    )
    .await;
    assert_batches_eq!(
        [
            "+------+", "| pid  |", "+------+", "| 4242 |", "| 77   |", "|      |", "|      |",
            "+------+",
        ],
        &out
    );
}

#[tokio::test]
async fn remote_address_and_remote_port_from_req() {
    let out = builtin(
        r#"[{"req":{"remoteAddress":"10.0.0.1","remotePort":53412}},
            {"req":{"remoteAddress":"::1","remotePort":"8080"}},
            {"req":{"remotePort":"x"}}]"#,
        &["remote_address", "remote_port"],
    )
    .await;
    assert_batches_eq!(
        [
            "+----------------+-------------+",
            "| remote_address | remote_port |",
            "+----------------+-------------+",
            "| 10.0.0.1       | 53412       |",
            "| ::1            | 8080        |",
            "|                |             |",
            "+----------------+-------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn processing_time_ms_a_double_else_null() {
    let out = builtin(
        r#"[{"processingTimeMs":12.5},{"processingTimeMs":"3"},{"processingTimeMs":1e3},
            {"processingTimeMs":"slow"}]"#,
        &["processing_time_ms"],
    )
    .await;
    assert_batches_eq!(
        [
            "+--------------------+",
            "| processing_time_ms |",
            "+--------------------+",
            "| 12.5               |",
            "| 3.0                |",
            "| 1000.0             |",
            "|                    |",
            "+--------------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn cache_hit_a_boolean_else_null() {
    let out = builtin(
        r#"[{"cacheHit":true},{"cacheHit":"false"},{"cacheHit":"maybe"},{}]"#,
        &["cache_hit"],
    )
    .await;
    assert_batches_eq!(
        [
            "+-----------+",
            "| cache_hit |",
            "+-----------+",
            "| true      |",
            "| false     |",
            "|           |",
            "|           |",
            "+-----------+",
        ],
        &out
    );
}

#[tokio::test]
async fn document_count_an_integer_else_null() {
    let out = builtin(
        r#"[{"documentCount":10},{"documentCount":"7"},{"documentCount":1.5}]"#,
        &["document_count"],
    )
    .await;
    assert_batches_eq!(
        [
            "+----------------+",
            "| document_count |",
            "+----------------+",
            "| 10             |",
            "| 7              |",
            "|                |",
            "+----------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn last_updated_a_timestamp_else_null() {
    let out = builtin(
        r#"[{"lastUpdated":"2024-11-05T09:59:00.000Z"},{"lastUpdated":"2024-11-05"},
            {"lastUpdated":"yesterday"}]"#,
        &["last_updated"],
    )
    .await;
    assert_batches_eq!(
        [
            "+---------------------+",
            "| last_updated        |",
            "+---------------------+",
            "| 2024-11-05T09:59:00 |",
            "| 2024-11-05T00:00:00 |",
            "|                     |",
            "+---------------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn raw_data_is_the_original_record_byte_for_byte() {
    let out = builtin(
        r#"[{"level":30, "msg":"é 😀 \"q\"", "n":1e3},
            {"unknown":{"deep":[true,null]}}]"#,
        &["raw_data"],
    )
    .await;
    assert_batches_eq!(
        [
            "+-------------------------------------------+",
            "| raw_data                                  |",
            "+-------------------------------------------+",
            "| {\"level\":30, \"msg\":\"é 😀 \\\"q\\\"\", \"n\":1e3} |",
            "| {\"unknown\":{\"deep\":[true,null]}}          |",
            "+-------------------------------------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn request_id_as_text() {
    let out = builtin(
        r#"[{"req":{"id":"req-1"}},{"req":{"id":17}},{"req":{}}]"#,
        &["request_id"],
    )
    .await;
    assert_batches_eq!(
        [
            "+------------+",
            "| request_id |",
            "+------------+",
            "| req-1      |",
            "| 17         |",
            "|            |",
            "+------------+",
        ],
        &out
    );
}

#[tokio::test]
async fn source_bucket_key_and_index_of_each_record() {
    let out = builtin(
        r#"[{"a":1},{"b":2},{"c":3}]"#,
        &["source_bucket", "source_key", "source_index"],
    )
    .await;
    assert_batches_eq!(
        [
            "+---------------+------------+--------------+",
            "| source_bucket | source_key | source_index |",
            "+---------------+------------+--------------+",
            "| b             | k          | 0            |",
            "| b             | k          | 1            |",
            "| b             | k          | 2            |",
            "+---------------+------------+--------------+",
        ],
        &out
    );
}

/// `id` is a hash: not spelled out here, but the same for the same (bucket, key, index)
/// and time, different for another index, time-ordered by its leading timestamp.
#[tokio::test]
async fn id_is_stable_for_a_record_and_differs_by_index() {
    use arrow::array::AsArray;
    let json = r#"[{"time":1730800800000},{"time":1730800800000},{"time":1730800800001},{}]"#;
    let ids = |batches: Vec<RecordBatch>| -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_string::<i32>();
                ids.iter()
                    .map(|id| id.expect("an id").to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let first = ids(builtin(json, &["id"]).await);
    let again = ids(builtin(json, &["id"]).await);
    assert_eq!(first, again, "the same records get the same ids");
    let distinct: std::collections::HashSet<&String> = first.iter().collect();
    assert_eq!(distinct.len(), 4, "same time, another index: another id");
    // 1730800800000 ms is 0x0192fbc45100.
    assert!(first[0].starts_with("0192fbc4-5100-7"), "{first:?}");
    assert!(first[1] < first[2], "time-ordered: {first:?}");
    assert!(first[3].starts_with("00000000-0000-7"), "no time: zero");
}
