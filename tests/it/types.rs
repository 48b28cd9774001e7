//! Output types of a transform against column types (issue 16, item 4): what the check
//! before reading accepts is what PostgreSQL is sent and takes; 16 bytes are a uuid; a
//! timestamp PostgreSQL cannot hold is NULL in a nullable column and fails the file in a
//! NOT NULL one.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, FixedSizeBinaryArray, Float64Array,
    Int64Array, ListArray, StringArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures::StreamExt;
use ingestor::sink::TargetTable;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::util;

/// Ingests `records` with the transform `sql` into `table`.
async fn ingest_with(pool: &PgPool, table: &str, sql: &str, records: &[Value]) -> util::Run {
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(dir.path(), "transform.sql", sql.as_bytes());
    let data = util::write_file(dir.path(), "data.json", &util::json_array(records));
    let sql = sql.to_str().unwrap();
    util::ingest(pool, &data, &["--transform", sql, "--table", table]).await
}

/// `req.id` (a uuid's text) as its 16 bytes, as `FixedSizeBinary(16)`.
const UUID_BYTES_SQL: &str = r#"
SELECT
    _source_index AS n,
    arrow_cast(decode(replace(req['id'], '-', ''), 'hex'), 'FixedSizeBinary(16)') AS v
FROM raw_logs
"#;

fn uuid_records() -> Vec<Value> {
    vec![
        json!({"req": {"id": "01932F4E-1a2b-7c3d-8e4f-0123456789AB"}}),
        json!({"req": {}}),
        json!({"req": {"id": "ffffffff-0000-0000-0000-00000000000f"}}),
    ]
}

/// `v` as text by `n`, after ingesting [`uuid_records`] into table `ids` (`create`).
async fn sixteen_bytes_into(pool: &PgPool, create: &'static str) -> Vec<Option<String>> {
    sqlx::query(create).execute(pool).await.unwrap();
    let run = ingest_with(pool, "ids", UUID_BYTES_SQL, &uuid_records()).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    sqlx::query_scalar("SELECT v::text FROM ids ORDER BY n")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Regression (issue 16): the check let `FixedSizeBinary(16)` into `uuid`, then every file
/// failed ("Casting from FixedSizeBinary(16) to Utf8 not supported").
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn sixteen_bytes_land_in_a_uuid_column(pool: PgPool) {
    assert_eq!(
        sixteen_bytes_into(&pool, "CREATE TABLE ids (n bigint PRIMARY KEY, v uuid)").await,
        [
            Some("01932f4e-1a2b-7c3d-8e4f-0123456789ab".into()),
            None,
            Some("ffffffff-0000-0000-0000-00000000000f".into())
        ]
    );
}

/// Regression (issue 16): `FixedSizeBinary(16)` into a text column was refused by the check.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn sixteen_bytes_land_in_a_text_column_as_canonical_uuid_text(pool: PgPool) {
    assert_eq!(
        sixteen_bytes_into(&pool, "CREATE TABLE ids (n bigint PRIMARY KEY, v text)").await,
        [
            Some("01932f4e-1a2b-7c3d-8e4f-0123456789ab".into()),
            None,
            Some("ffffffff-0000-0000-0000-00000000000f".into())
        ]
    );
}

/// `time` as a timestamp of each unit, and `documentCount` as a date (days since 1970).
const INSTANTS_SQL: &str = r#"
SELECT
    _source_index AS n,
    arrow_cast(try_cast("time" AS BIGINT), 'Timestamp(Second, None)') AS s,
    arrow_cast(try_cast("time" AS BIGINT), 'Timestamp(Millisecond, Some("UTC"))') AS ms,
    arrow_cast(try_cast("time" AS BIGINT), 'Timestamp(Microsecond, None)') AS us,
    arrow_cast(try_cast("time" AS BIGINT), 'Timestamp(Nanosecond, None)') AS ns,
    arrow_cast(try_cast("documentCount" AS INT), 'Date32') AS d
FROM raw_logs
"#;

/// Microseconds since 1970 of s, ms, us, ns; days since 1970 of d.
type InstantRow = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i32>,
);

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn instants_beyond_postgresql_are_null_in_nullable_columns_and_the_rest_exact(pool: PgPool) {
    sqlx::query(
        "CREATE TABLE instants (n bigint PRIMARY KEY, s timestamptz, ms timestamptz, \
         us timestamp, ns timestamptz, d date)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let records = [
        json!({"time": 1_730_800_800i64, "documentCount": 20_032}),
        json!({"time": 9_000_000_000_000_000i64, "documentCount": i32::MAX}),
        json!({"time": -300_000_000_000i64, "documentCount": i32::MIN}),
        json!({"time": 9_000_000_000_000_000_000i64, "documentCount": -2_440_588}),
        json!({"time": -9_000_000_000_000_000_000i64, "documentCount": -2_440_589}),
        json!({}),
    ];
    let run = ingest_with(&pool, "instants", INSTANTS_SQL, &records).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let rows: Vec<InstantRow> = sqlx::query_as(
        "SELECT (extract(epoch FROM s) * 1000000)::bigint,
                (extract(epoch FROM ms) * 1000000)::bigint,
                (extract(epoch FROM us) * 1000000)::bigint,
                (extract(epoch FROM ns) * 1000000)::bigint,
                d - DATE '1970-01-01'
         FROM instants ORDER BY n",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        [
            // 2024-11-05 in seconds; 1970 in the finer units (ns truncated to µs).
            (
                Some(1_730_800_800_000_000),
                Some(1_730_800_800_000),
                Some(1_730_800_800),
                Some(1_730_800),
                Some(20_032)
            ),
            // Seconds: year 285 million. Milliseconds: year 287,000, inside the range.
            (
                None,
                Some(9_000_000_000_000_000_000),
                Some(9_000_000_000_000_000),
                Some(9_000_000_000_000),
                None
            ),
            // Seconds: 7538 BC.
            (
                None,
                Some(-300_000_000_000_000),
                Some(-300_000_000_000),
                Some(-300_000_000),
                None
            ),
            // Microseconds: year 287,000; PostgreSQL's first day, 4714-11-24 BC.
            (
                None,
                None,
                Some(9_000_000_000_000_000_000),
                Some(9_000_000_000_000_000),
                Some(-2_440_588)
            ),
            // Microseconds: 283,000 BC; the day before PostgreSQL's first.
            (None, None, None, Some(-9_000_000_000_000_000), None),
            (None, None, None, None, None),
        ]
    );
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn an_instant_beyond_postgresql_in_a_not_null_column_fails_the_file_naming_both(
    pool: PgPool,
) {
    sqlx::query("CREATE TABLE strict_instants (n bigint PRIMARY KEY, ts timestamptz NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let sql = r#"
        SELECT _source_index AS n,
               arrow_cast(try_cast("time" AS BIGINT), 'Timestamp(Second, None)') AS ts
        FROM raw_logs"#;
    // Chunks of 4: records 0-3, 4-7 (record 6 out of range), 8-9.
    let records: Vec<Value> = (0..10i64)
        .map(|i| match i {
            6 => json!({"time": 9_000_000_000_000_000i64}),
            _ => json!({"time": 1_730_800_800 + i}),
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let sql = util::write_file(dir.path(), "transform.sql", sql.as_bytes());
    let data = util::write_file(dir.path(), "data.json", &util::json_array(&records));
    let run = util::ingest(
        &pool,
        &data,
        &[
            "--transform",
            sql.to_str().unwrap(),
            "--table",
            "strict_instants",
            "--chunk-records",
            "4",
        ],
    )
    .await;
    assert_eq!(run.code, 3, "a file FAILED: {}\n{}", run.stdout, run.stderr);
    let (status, error, checkpoint): (String, Option<String>, i64) = sqlx::query_as(
        "SELECT status, metadata->>'error', checkpoint FROM processed_files WHERE s3_key = $1",
    )
    .bind(util::key_of(&data))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(status, "FAILED");
    let error = error.unwrap_or_default();
    assert!(
        error.contains(r#"column "ts" is NOT NULL"#)
            && error.contains("9000000000000000 seconds since 1970-01-01")
            && error.contains("outside PostgreSQL's timestamp range"),
        "the cause names the column and the value: {error}"
    );
    let (rows, in_failed_chunk): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE n >= 4) FROM strict_instants")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        in_failed_chunk, 0,
        "nothing of the failed chunk is committed"
    );
    assert_eq!(
        rows, checkpoint,
        "what is committed is what the checkpoint says"
    );
}

/// Every `typname` the encoder writes.
const PG_TYPES: [&str; 13] = [
    "text",
    "json",
    "jsonb",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "bool",
    "timestamptz",
    "timestamp",
    "date",
    "uuid",
];

/// Arrow types a transform can produce, accepted or not by each column type.
fn arrow_types() -> Vec<DataType> {
    use DataType::*;
    let mut types = vec![
        Null,
        Boolean,
        Int8,
        Int16,
        Int32,
        Int64,
        UInt8,
        UInt64,
        Float16,
        Float32,
        Float64,
        Decimal128(10, 2),
        Utf8,
        LargeUtf8,
        Utf8View,
        Dictionary(Box::new(Int32), Box::new(Utf8)),
        Date32,
        Date64,
        Time64(TimeUnit::Microsecond),
        Duration(TimeUnit::Millisecond),
        FixedSizeBinary(16),
        FixedSizeBinary(4),
        Binary,
        LargeBinary,
        BinaryView,
        List(Arc::new(Field::new_list_field(Int64, true))),
    ];
    for unit in [
        TimeUnit::Second,
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ] {
        for zone in [None, Some("+02:00")] {
            types.push(Timestamp(unit, zone.map(Into::into)));
        }
    }
    types
}

/// Values of `data_type`, extremes included, and a NULL. Strings are JSON for `json`
/// columns (a string that is not JSON is the transform's fault, refused by PostgreSQL).
fn sample(data_type: &DataType, json_column: bool) -> ArrayRef {
    let numbers: ArrayRef = Arc::new(Int64Array::from(vec![
        Some(1_730_800_800),
        Some(-1),
        Some(i64::MIN),
        Some(i64::MAX),
        None,
    ]));
    let strings: ArrayRef = Arc::new(StringArray::from(if json_column {
        vec![Some(r#"{"a":[1,"x"]}"#), Some("1102"), Some("null"), None]
    } else {
        vec![
            Some("01932f4e-1a2b-7c3d-8e4f-0123456789ab"),
            Some("2024-11-05T10:00:00.123Z"),
            Some("2024-11-05"),
            Some("1102"),
            Some("true"),
            Some("not a value"),
            None,
        ]
    }));
    let bytes = |size: usize| {
        let value: Vec<u8> = (0..size as u8).map(|b| b.wrapping_mul(37)).collect();
        vec![Some(value), Some(vec![0xff; size]), None]
    };
    match data_type {
        DataType::Null => arrow::array::new_null_array(data_type, 2),
        DataType::Boolean => Arc::new(BooleanArray::from(vec![Some(true), None])),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            cast(&strings, data_type).unwrap()
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let floats: ArrayRef = Arc::new(Float64Array::from(vec![
                Some(1.5),
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(-1e300),
                None,
            ]));
            cast(&floats, data_type).unwrap()
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let binary: ArrayRef = Arc::new(BinaryArray::from_iter(bytes(5)));
            cast(&binary, data_type).unwrap()
        }
        DataType::FixedSizeBinary(size) => Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                bytes(*size as usize).into_iter(),
                *size,
            )
            .unwrap(),
        ),
        DataType::Date32 => Arc::new(Date32Array::from(vec![
            Some(20_032),
            Some(i32::MIN),
            Some(i32::MAX),
            None,
        ])),
        DataType::List(_) => Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1), None]),
            None,
        ])),
        _ => cast(&numbers, data_type).unwrap(),
    }
}

/// The property of issue 16 item 4, with PostgreSQL as the judge: for every Arrow type and
/// column type the check accepts, the planned COPY of values at the edges of the type
/// (NaN, infinities, the ends of `i64` and `i32`, bytes that are not UTF-8) is taken
/// whole, one row per value.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn every_pair_the_check_accepts_is_copied_into_postgresql(pool: PgPool) {
    // (pair, COPY statement, payload, rows)
    let mut copies = Vec::new();
    let mut encode_failures = Vec::new();
    for typname in PG_TYPES {
        let table = format!("t_{typname}");
        let create = format!("CREATE TABLE {table} (v {typname})");
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&pool)
            .await
            .unwrap();
        let target = TargetTable::load(&pool, &table).await.unwrap();
        for data_type in arrow_types() {
            let schema = Arc::new(Schema::new(vec![Field::new("v", data_type.clone(), true)]));
            let Ok(plan) = target.plan(&schema) else {
                continue;
            };
            let array = sample(&data_type, typname.starts_with("json"));
            let rows = array.len() as u64;
            let batch = RecordBatch::try_new(schema, vec![array]).unwrap();
            let pair = format!("{data_type} into {typname}");
            let mut payload = Vec::new();
            plan.encoder.begin(&mut payload);
            if let Err(e) = plan.encoder.encode(&batch, &mut payload) {
                encode_failures.push(format!("{pair}: {e}"));
                continue;
            }
            plan.encoder.end(&mut payload);
            copies.push((pair, plan.copy_sql, payload, rows));
        }
    }
    assert!(encode_failures.is_empty(), "{encode_failures:#?}");
    assert!(copies.len() > 150, "only {} pairs accepted", copies.len());
    // Each COPY waits some 40 ms for its acknowledgement: a few at a time.
    let failures: Vec<String> = futures::stream::iter(copies)
        .map(|(pair, sql, payload, rows)| {
            let pool = &pool;
            async move {
                let mut conn = pool.acquire().await.unwrap();
                let result = async {
                    let mut copy = conn.copy_in_raw(&sql).await?;
                    copy.send(payload).await?;
                    copy.finish().await
                }
                .await;
                match result {
                    Ok(n) if n == rows => None,
                    Ok(n) => Some(format!("{pair}: {n} of {rows} rows")),
                    Err(e) => Some(format!("{pair}: {e}")),
                }
            }
        })
        .buffer_unordered(8)
        .filter_map(std::future::ready)
        .collect()
        .await;
    assert!(failures.is_empty(), "{failures:#?}");
}
