//! `logs` partitioned by day (`migrate --partition-by day`) and `retention`: the conversion,
//! partitions made before rows need them (also while other workers hold a COPY open),
//! retention with and without an archive, re-runs, a run killed during its archive, late
//! files for dropped days, and users' own partitioned tables.

use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::TimestampMicrosecondType;
use serde_json::{Value, json};
use sqlx::{Connection, PgPool};

use crate::util::{self, Layout};

/// 2024-11-01T00:00:00Z in epoch milliseconds.
const NOV_1: i64 = 1_730_419_200_000;
const DAY: i64 = 86_400_000;

/// `per_day` records on each of `days` (days after 2024-11-01), time-ordered, then
/// `undated` records without a time.
fn records(days: std::ops::Range<i64>, per_day: i64, undated: usize) -> Vec<Value> {
    let mut out = Vec::new();
    for day in days {
        for i in 0..per_day {
            let time = NOV_1 + day * DAY + i * (DAY / per_day);
            out.push(json!({"level": 30, "time": time, "msg": format!("day {day} record {i}")}));
        }
    }
    for i in 0..undated {
        out.push(json!({"level": 40, "msg": format!("undated {i}")}));
    }
    out
}

fn write(dir: &Path, name: &str, records: &[Value]) -> PathBuf {
    util::write_file(dir, name, &util::gzip(&util::json_array(records)))
}

/// The partitions of `logs`: (name, bound as PostgreSQL prints it), by name.
async fn partitions(pool: &PgPool) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'logs'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn partition_names(pool: &PgPool) -> Vec<String> {
    partitions(pool).await.into_iter().map(|(n, _)| n).collect()
}

/// Rows per partition, by partition name.
async fn rows_per_partition(pool: &PgPool) -> Vec<(String, i64)> {
    sqlx::query_as("SELECT tableoid::regclass::text, count(*) FROM logs GROUP BY 1 ORDER BY 1")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn logs_count(pool: &PgPool) -> i64 {
    util::count(pool, "SELECT count(*) FROM logs").await
}

/// `ingestor retention --json ARGS`.
async fn retention(pool: &PgPool, args: &[&str]) -> util::Run {
    let mut all = vec!["retention", "--json", "--lock-timeout-secs", "2"];
    all.extend_from_slice(args);
    util::run(pool, &all).await
}

async fn partitioned(pool: &PgPool) {
    Layout::DayPartitions.apply(pool).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn migrate_partition_by_day_rebuilds_the_empty_logs_and_keeps_it(pool: PgPool) {
    let first = util::run(&pool, &["migrate", "--partition-by", "day"]).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("rebuilt"), "{}", first.stdout);
    Layout::DayPartitions.check(&pool).await;
    let names = partition_names(&pool).await;
    let today = chrono::Utc::now().date_naive();
    for ahead in 0..=2 {
        let day = today + chrono::Duration::days(ahead);
        let name = format!("logs_p{}", day.format("%Y%m%d"));
        assert!(names.contains(&name), "{name} missing in {names:?}");
    }
    assert!(names.contains(&"logs_undated".to_string()), "{names:?}");
    // Same columns, the primary key on id, the indexes under their names.
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'logs'::regclass ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(indexes, ["logs_pkey", "logs_source_idx"]);
    // The helper queries prune with agrees with the id layout.
    let floor: String =
        sqlx::query_scalar("SELECT ingestor_id_floor('2024-11-05T10:00:00.123Z')::text")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(floor, "0192fbc4-517b-0000-0000-000000000000");

    // Later commands keep the layout; asking again changes nothing.
    let plain = util::run(&pool, &["migrate"]).await;
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    let again = util::run(&pool, &["migrate", "--partition-by", "day"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stdout.contains("is partitioned by day"),
        "{}",
        again.stdout
    );
    Layout::DayPartitions.check(&pool).await;
    assert_eq!(partition_names(&pool).await, names);
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn migrate_partition_by_day_refuses_a_logs_with_rows(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.json.gz", &records(0..1, 10, 0));
    let run = util::ingest(&pool, &path, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let refused = util::run(&pool, &["migrate", "--partition-by", "day"]).await;
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(refused.stderr.contains("has rows"), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("docs/partitions.md"),
        "{}",
        refused.stderr
    );
    Layout::Plain.check(&pool).await;
    assert_eq!(logs_count(&pool).await, 10);
}

/// Five days and records without a time in one chunk (pieces of 64 records): the first
/// piece's day is made before the chunk's transaction, the others while it is open, each
/// taken by a new COPY statement; no chunk is read twice.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_spanning_several_days_creates_their_partitions(pool: PgPool) {
    partitioned(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "days.json.gz", &records(0..5, 200, 30));
    let run = util::ingest(&pool, &path, &["--batch-records", "64"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_ingested"), 1030);
    assert!(
        !run.stderr.contains("found no partition") && !run.stderr.contains("refused a row"),
        "no chunk was read again: {}",
        run.stderr
    );
    let per_partition = rows_per_partition(&pool).await;
    assert_eq!(
        per_partition,
        [
            ("logs_p20241101".to_string(), 200),
            ("logs_p20241102".to_string(), 200),
            ("logs_p20241103".to_string(), 200),
            ("logs_p20241104".to_string(), 200),
            ("logs_p20241105".to_string(), 200),
            ("logs_undated".to_string(), 30),
        ]
    );
    Layout::DayPartitions.check(&pool).await;
    // Every row is in the day of its timestamp.
    let elsewhere = util::count(
        &pool,
        "SELECT count(*) FROM logs l JOIN pg_class c ON c.oid = l.tableoid \
         WHERE l.\"timestamp\" IS NOT NULL \
           AND c.relname <> 'logs_p' || to_char(l.\"timestamp\" AT TIME ZONE 'UTC', 'YYYYMMDD')",
    )
    .await;
    assert_eq!(elsewhere, 0);
    // A day's partition answers a query on its id range alone.
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN SELECT count(*) FROM logs WHERE id >= ingestor_id_floor('2024-11-03') \
         AND id < ingestor_id_floor('2024-11-04')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("logs_p20241103"), "{plan}");
    assert!(
        !plan.contains("logs_p20241102") && !plan.contains("logs_p20241104"),
        "{plan}"
    );
}

/// A whole-file plan writes its file in one transaction: days found in its later rows are
/// made while that transaction is open.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_whole_file_transform_writes_several_days_in_its_one_transaction(pool: PgPool) {
    partitioned(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "days.json.gz", &records(0..3, 100, 0));
    let sql = dir.path().join("sorted.sql");
    let time = "try_cast(try_cast(try_cast(\"time\" AS BIGINT) AS TIMESTAMP(3)) AS TIMESTAMP(6))";
    std::fs::write(
        &sql,
        format!(
            "SELECT ingestor_record_id(_source_bucket, _source_key, _source_index, {time}) AS id, \
             {time} AS \"timestamp\", msg AS message, _raw AS raw_data, \
             _source_bucket AS source_bucket, _source_key AS source_key, \
             _source_index AS source_index \
             FROM raw_logs ORDER BY _source_index DESC"
        ),
    )
    .unwrap();
    let run = util::ingest(
        &pool,
        &path,
        &[
            "--transform",
            sql.to_str().unwrap(),
            "--batch-records",
            "50",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_ingested"), 300);
    assert_eq!(rows_per_partition(&pool).await.len(), 3);
    Layout::DayPartitions.check(&pool).await;
}

/// A third worker holds a COPY open (a `CREATE TABLE ... PARTITION OF` would wait for it);
/// two workers need the same new day at once: both go on, and the day has one partition.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn two_workers_create_the_same_day_while_a_third_holds_a_copy_open(pool: PgPool) {
    partitioned(&pool).await;
    let mut third = sqlx::PgConnection::connect(&util::db_url(&pool))
        .await
        .unwrap();
    let mut copy = third
        .copy_in_raw("COPY logs (id, raw_data) FROM STDIN")
        .await
        .unwrap();
    copy.send(&b"00000000-0000-7000-8000-000000000001\t{}\n"[..])
        .await
        .unwrap();

    // The open COPY does hold the parent: the usual way to add a partition waits for it.
    let mut probe = pool.acquire().await.unwrap();
    sqlx::query("SET lock_timeout = '500ms'")
        .execute(&mut *probe)
        .await
        .unwrap();
    let blocked = sqlx::query(
        "CREATE TABLE logs_probe PARTITION OF logs FOR VALUES \
         FROM ('0192f99f-0000-0000-0000-000000000000') TO ('0192fec5-5c00-0000-0000-000000000000')",
    )
    .execute(&mut *probe)
    .await
    .unwrap_err();
    assert!(blocked.to_string().contains("lock timeout"), "{blocked}");
    drop(probe);

    // Two workers, each a file of 2024-11-05 (a day with no partition yet).
    let dir = tempfile::tempdir().unwrap();
    let day = |file: usize| -> Vec<Value> {
        (0..500)
            .map(|i| json!({"time": NOV_1 + 4 * DAY + i * 1000, "msg": format!("{file}/{i}")}))
            .collect()
    };
    let a = write(dir.path(), "a.json.gz", &day(1));
    let b = write(dir.path(), "b.json.gz", &day(2));
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let workers = futures::future::join(
        util::command(&pool, &["ingest-file", "--json", a]).output(),
        util::command(&pool, &["ingest-file", "--json", b]).output(),
    );
    let (first, second) = tokio::time::timeout(Duration::from_secs(60), workers)
        .await
        .expect("neither worker waits for the open COPY");
    for output in [first.unwrap(), second.unwrap()] {
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    copy.finish().await.unwrap();
    let day_partitions: Vec<String> = partitions(&pool)
        .await
        .into_iter()
        .filter(|(_, bound)| bound.contains("0192f99f-0000"))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(day_partitions, ["logs_p20241105"]);
    assert_eq!(
        rows_per_partition(&pool).await,
        [
            ("logs_p20241105".to_string(), 1000),
            ("logs_undated".to_string(), 1)
        ]
    );
}

/// The same at the level of the library: two handles on the table make the same day at
/// the same moment, while a transaction writing into the table is open.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn two_handles_ensuring_one_day_at_once_make_one_partition(pool: PgPool) {
    use ingestor::sink::postgres::partitions::{DayPartitions, Layout as TableLayout, Slot};
    partitioned(&pool).await;
    let mut writer = pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO logs (id, raw_data) VALUES ('00000000-0000-7000-8000-000000000001', '{}')",
    )
    .execute(&mut *writer)
    .await
    .unwrap();
    let layout = {
        let mut conn = pool.acquire().await.unwrap();
        TableLayout::load(&mut conn, "\"logs\"")
            .await
            .unwrap()
            .unwrap()
    };
    let slots: Vec<Slot> = (20_000..20_010).map(Slot::Day).collect();
    let one = DayPartitions::new(&pool, layout.clone());
    let two = DayPartitions::new(&pool, layout);
    let (a, b) = tokio::time::timeout(
        Duration::from_secs(30),
        futures::future::join(one.ensure(&slots), two.ensure(&slots)),
    )
    .await
    .expect("no wait for the open transaction");
    a.unwrap();
    b.unwrap();
    writer.commit().await.unwrap();
    let names = partition_names(&pool).await;
    let made: Vec<&String> = names
        .iter()
        .filter(|n| n.as_str() >= "logs_p20241004" && n.as_str() <= "logs_p20241013")
        .collect();
    assert_eq!(made.len(), 10, "{names:?}");
    assert!(one.knows(&slots) && two.knows(&slots));
}

/// Ingests five days (2024-11-01 to 05) and some undated records into a partitioned `logs`.
async fn five_days(pool: &PgPool, dir: &Path) -> PathBuf {
    partitioned(pool).await;
    let path = write(dir, "days.json.gz", &records(0..5, 100, 7));
    let run = util::ingest(pool, &path, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    path
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn retention_drops_the_days_before_the_cut_and_a_rerun_does_nothing(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    five_days(&pool, dir.path()).await;

    let dry = retention(&pool, &["--before", "2024-11-04", "--dry-run"]).await;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.summary()["days_dropped"], 3, "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("would drop\t2024-11-01\tlogs_p20241101"),
        "{}",
        dry.stdout
    );
    assert_eq!(logs_count(&pool).await, 507, "a dry run changes nothing");

    let run = retention(&pool, &["--before", "2024-11-04"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary()["days_dropped"], 3, "{}", run.stdout);
    assert_eq!(run.summary()["days_kept"], 0);
    let names = partition_names(&pool).await;
    for gone in ["logs_p20241101", "logs_p20241102", "logs_p20241103"] {
        assert!(!names.contains(&gone.to_string()), "{names:?}");
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(gone)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(!exists, "{gone} dropped, not only detached");
    }
    assert_eq!(
        rows_per_partition(&pool).await,
        [
            ("logs_p20241104".to_string(), 100),
            ("logs_p20241105".to_string(), 100),
            ("logs_undated".to_string(), 7),
        ]
    );

    let again = retention(&pool, &["--before", "2024-11-04"]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.summary()["days_dropped"], 0, "{}", again.stdout);
    assert_eq!(logs_count(&pool).await, 207);

    // --older-than: days that ended that long ago; the days ahead are young.
    let older = retention(&pool, &["--older-than", "1d"]).await;
    assert_eq!(older.code, 0, "{}", older.stderr);
    assert_eq!(older.summary()["days_dropped"], 2, "{}", older.stdout);
    assert_eq!(logs_count(&pool).await, 7, "undated rows are not a day");
}

/// (id, timestamp in microseconds, message, raw_data) of the rows of `logs` before `day`.
async fn rows_before(
    pool: &PgPool,
    day: &str,
) -> Vec<(String, Option<i64>, Option<String>, String)> {
    sqlx::query_as(
        "SELECT id::text, floor(extract(epoch FROM \"timestamp\") * 1000000)::int8, message, \
         raw_data::text FROM logs WHERE \"timestamp\" < $1::date ORDER BY id",
    )
    .bind(day)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The same columns read back from every Parquet file of a local lake, by id.
fn archived_rows(lake: &Path) -> Vec<(String, Option<i64>, Option<String>, String)> {
    let mut out = Vec::new();
    for batches in crate::lake::read_lake(lake).values() {
        for batch in batches {
            out.extend(batch_rows(batch));
        }
    }
    out.sort();
    out
}

fn batch_rows(batch: &RecordBatch) -> Vec<(String, Option<i64>, Option<String>, String)> {
    let text = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .clone()
    };
    let (ids, messages, raw) = (text("id"), text("message"), text("raw_data"));
    let stamps = batch
        .column_by_name("timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>()
        .clone();
    (0..batch.num_rows())
        .map(|i| {
            (
                ids.value(i).to_string(),
                stamps.is_valid(i).then(|| stamps.value(i)),
                messages.is_valid(i).then(|| messages.value(i).to_string()),
                raw.value(i).to_string(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn retention_with_a_parquet_archive_writes_the_rows_it_drops(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    five_days(&pool, dir.path()).await;
    let lake = dir.path().join("archive");
    let archive = format!("parquet={}", lake.display());
    let before = rows_before(&pool, "2024-11-03").await;
    assert_eq!(before.len(), 200);

    let run = retention(&pool, &["--before", "2024-11-03", "--archive", &archive]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary()["days_dropped"], 2, "{}", run.stdout);
    assert_eq!(run.summary()["rows_archived"], 200);
    assert_eq!(
        archived_rows(&lake),
        before,
        "the archive holds the rows dropped"
    );
    let files = crate::lake::parquet_files(&lake);
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(
        files[0].starts_with("date=2024-11-01/logs_p20241101-"),
        "{files:?}"
    );
    assert!(
        files[1].starts_with("date=2024-11-02/logs_p20241102-"),
        "{files:?}"
    );
    assert_eq!(logs_count(&pool).await, 307);

    // Again: nothing to do, the lake unchanged.
    let again = retention(&pool, &["--before", "2024-11-03", "--archive", &archive]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.summary()["days_dropped"], 0);
    assert_eq!(crate::lake::parquet_files(&lake), files);
    assert_eq!(archived_rows(&lake), before);

    assert_eq!(logs_count(&pool).await, 307);
}

/// A retention run killed (SIGKILL) while it writes a day to the archive leaves the day
/// detached; the next run writes it again, under the same names, and drops it: the archive
/// holds each row once.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn retention_killed_during_the_archive_redoes_it_on_the_next_run(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    partitioned(&pool).await;
    let path = write(dir.path(), "seed.json.gz", &records(0..2, 1, 0));
    assert_eq!(util::ingest(&pool, &path, &[]).await.code, 0);
    // Many rows on 2024-11-01, so that archiving them takes a while.
    sqlx::query(
        "INSERT INTO logs (id, \"timestamp\", message, raw_data, source_bucket, source_key, source_index) \
         SELECT (lpad(to_hex($1::int8 + i * 200), 12, '0') || '7000' || '8000' || lpad(to_hex(i), 12, '0'))::uuid, \
                to_timestamp(($1::int8 + i * 200) / 1000.0), 'bulk ' || i, \
                jsonb_build_object('i', i, 'text', repeat('x', 200)), 'bulk', 'bulk.json', i \
         FROM generate_series(1, 300000) AS i",
    )
    .bind(NOV_1)
    .execute(&pool)
    .await
    .unwrap();
    let before = rows_before(&pool, "2024-11-02").await;
    assert_eq!(before.len(), 300_001);
    let lake = dir.path().join("archive");
    let archive = format!("parquet={}", lake.display());
    let args = ["retention", "--before", "2024-11-02", "--archive", &archive];
    let mut child = util::command(&pool, &args).spawn().unwrap();
    // Killed once the archive's writer has started (its spool file exists).
    let spool = lake.join("_ingestor_tmp");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let writing = std::fs::read_dir(&spool)
            .map(|d| d.count() > 0)
            .unwrap_or(false);
        if writing {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the archive never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "retention ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().await.unwrap();
    // The day is out of the table but kept, marked for the next run.
    assert!(
        !partition_names(&pool)
            .await
            .contains(&"logs_p20241101".to_string())
    );
    let left: i64 = util::count(&pool, "SELECT count(*) FROM logs_p20241101").await;
    assert_eq!(left, 300_001);
    assert_eq!(
        logs_count(&pool).await,
        1,
        "only 2024-11-02 is still in logs"
    );

    let again = retention(&pool, &["--before", "2024-11-02", "--archive", &archive]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.summary()["days_dropped"], 1, "{}", again.stdout);
    assert_eq!(again.summary()["rows_archived"], 300_001);
    assert_eq!(archived_rows(&lake), before, "each row archived once");
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('logs_p20241101') IS NOT NULL")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(!exists);
    let spooled = std::fs::read_dir(&spool).unwrap().count();
    assert_eq!(spooled, 0, "the killed run's spool files are gone");
}

/// A file uploaded late, whose records fall on a day retention dropped, is ingested: the
/// day's partition is made again, and the next retention run archives and drops it.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_late_file_for_a_dropped_day_is_ingested_and_dropped_by_the_next_run(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    five_days(&pool, dir.path()).await;
    let lake = dir.path().join("archive");
    let archive = format!("parquet={}", lake.display());
    let first = retention(&pool, &["--before", "2024-11-02", "--archive", &archive]).await;
    assert_eq!(first.summary()["days_dropped"], 1, "{}", first.stderr);

    let late: Vec<Value> = (0..40)
        .map(|i| json!({"time": NOV_1 + 3_600_000 + i, "msg": format!("late {i}")}))
        .collect();
    let path = write(dir.path(), "late.json.gz", &late);
    let run = util::ingest(&pool, &path, &[]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_ingested"), 40);
    assert!(
        partition_names(&pool)
            .await
            .contains(&"logs_p20241101".to_string())
    );
    let late_rows = rows_before(&pool, "2024-11-02").await;
    assert_eq!(late_rows.len(), 40);

    let second = retention(&pool, &["--before", "2024-11-02", "--archive", &archive]).await;
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(second.summary()["rows_archived"], 40);
    let files = crate::lake::parquet_files(&lake);
    assert_eq!(files.len(), 2, "both archives of the day kept: {files:?}");
    assert_eq!(archived_rows(&lake).len(), 140);
    assert!(rows_before(&pool, "2024-11-02").await.is_empty());
}

/// A day a PROCESSING file has rows in is kept (exit 3) until that file is done.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn retention_keeps_a_day_a_processing_file_is_still_writing_into(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let path = five_days(&pool, dir.path()).await;
    sqlx::query("UPDATE processed_files SET status = 'PROCESSING'")
        .execute(&pool)
        .await
        .unwrap();
    let kept = retention(&pool, &["--before", "2024-11-02"]).await;
    assert_eq!(kept.code, 3, "{}", kept.stderr);
    assert_eq!(kept.summary()["days_kept"], 1, "{}", kept.stdout);
    assert!(
        kept.stdout.contains(&format!(
            "still being written into by local/{}",
            util::key_of(&path)
        )),
        "{}",
        kept.stdout
    );
    assert_eq!(logs_count(&pool).await, 507);
    Layout::DayPartitions.check(&pool).await;

    sqlx::query("UPDATE processed_files SET status = 'COMPLETED'")
        .execute(&pool)
        .await
        .unwrap();
    let dropped = retention(&pool, &["--before", "2024-11-02"]).await;
    assert_eq!(dropped.code, 0, "{}", dropped.stderr);
    assert_eq!(dropped.summary()["days_dropped"], 1);
    assert_eq!(logs_count(&pool).await, 407);
}

/// A detach stopped in its wait (a run's lock timeout) leaves the day pending: rows for it
/// wait (the file fails transiently, nothing is lost) until the next run finishes the
/// detach and drops it; then they are ingested into a new partition of the day.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_day_left_pending_detach_is_finished_by_the_next_run(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    five_days(&pool, dir.path()).await;
    let oid: i64 = util::count(&pool, "SELECT 'logs'::regclass::oid::int8").await;
    // A run that marked the day and was stopped in the wait of its concurrent detach.
    let mut open = pool.begin().await.unwrap();
    sqlx::query("SELECT count(*) FROM logs")
        .execute(&mut *open)
        .await
        .unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "COMMENT ON TABLE logs_p20241101 IS 'ingestor retention: detached from {oid} day 2024-11-01'; \
         SET lock_timeout = '300ms'"
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    let stopped = sqlx::raw_sql("ALTER TABLE logs DETACH PARTITION logs_p20241101 CONCURRENTLY")
        .execute(&mut *conn)
        .await
        .unwrap_err();
    assert!(stopped.to_string().contains("lock timeout"), "{stopped}");
    drop(conn);
    open.commit().await.unwrap();

    let late: Vec<Value> = (0..5)
        .map(|i| json!({"time": NOV_1 + 7_200_000 + i, "msg": format!("late {i}")}))
        .collect();
    let path = write(dir.path(), "late.json.gz", &late);
    let waiting = util::ingest(&pool, &path, &[]).await;
    assert_eq!(waiting.code, 3, "{}", waiting.stderr);
    let error: String = sqlx::query_scalar(
        "SELECT metadata->>'error' FROM processed_files WHERE s3_key LIKE '%late.json.gz'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        error.contains("being detached by a retention run"),
        "{error}"
    );

    let run = retention(&pool, &["--before", "2024-11-02"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary()["days_dropped"], 1, "{}", run.stdout);
    assert!(run.stdout.contains("pending detach"), "{}", run.stdout);

    let retried = util::run(&pool, &["jobs", "retry", "--failed"]).await;
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    let ingested = util::ingest(&pool, &path, &[]).await;
    assert_eq!(ingested.code, 0, "{}", ingested.stderr);
    assert_eq!(rows_before(&pool, "2024-11-02").await.len(), 5);
}

/// `--table` pointing at a user's own partitioned table: COPY routes the rows; the check
/// made before any file is read knows partitioned tables.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_users_own_partitioned_table_takes_rows_through_copy(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    let sql = dir.path().join("levels.sql");
    std::fs::write(
        &sql,
        "SELECT _source_key AS source_key, _source_index AS source_index, \
         CAST(level AS VARCHAR) AS level, msg AS message FROM raw_logs",
    )
    .unwrap();
    let mut records = records(0..1, 6, 0);
    records.push(json!({"level": 50, "msg": "boom"}));
    let path = write(dir.path(), "levels.json.gz", &records);
    let transform = sql.to_str().unwrap();
    let args = ["--transform", transform, "--table", "by_level"];

    sqlx::raw_sql(
        "CREATE TABLE by_level (source_key text, source_index bigint, level text, message text) \
         PARTITION BY LIST (level)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let empty = util::ingest(&pool, &path, &args).await;
    assert_eq!(empty.code, 1, "{}", empty.stdout);
    assert!(
        empty.stderr.contains("has no partition"),
        "{}",
        empty.stderr
    );

    sqlx::raw_sql(
        "CREATE TABLE by_level_info PARTITION OF by_level FOR VALUES IN ('30'); \
         CREATE TABLE by_level_other PARTITION OF by_level DEFAULT",
    )
    .execute(&pool)
    .await
    .unwrap();
    let run = util::ingest(&pool, &path, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("records_ingested"), 7);
    let routed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT tableoid::regclass::text, count(*) FROM by_level GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        routed,
        [
            ("by_level_info".to_string(), 6),
            ("by_level_other".to_string(), 1)
        ]
    );

    // A key the transform does not produce: no partition could take the rows.
    sqlx::raw_sql(
        "CREATE TABLE by_host (source_key text, source_index bigint, message text, hostname text) \
         PARTITION BY LIST (hostname); \
         CREATE TABLE by_host_a PARTITION OF by_host FOR VALUES IN ('a')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let other = dir.path().join("other.json.gz");
    std::fs::copy(&path, &other).unwrap();
    let sql2 = dir.path().join("hosts.sql");
    std::fs::write(
        &sql2,
        "SELECT _source_key AS source_key, _source_index AS source_index, msg AS message FROM raw_logs",
    )
    .unwrap();
    let missing = util::ingest(
        &pool,
        &other,
        &["--transform", sql2.to_str().unwrap(), "--table", "by_host"],
    )
    .await;
    assert_eq!(missing.code, 1, "{}", missing.stdout);
    assert!(
        missing
            .stderr
            .contains("does not output column \"hostname\""),
        "{}",
        missing.stderr
    );
}

/// A worker that keeps running (`run --follow`) saw a day before retention dropped it: its
/// next COPY into that day is refused (no partition), the worker looks the days up afresh,
/// makes the day again and ingests the late file; nothing goes to `rejected_records`.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_running_worker_makes_again_a_day_retention_dropped(pool: PgPool) {
    partitioned(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    let bucket = dir.path().join("b");
    std::fs::create_dir(&bucket).unwrap();
    write(&bucket, "first.json.gz", &records(0..2, 50, 0));
    let root = dir.path().to_str().unwrap();
    let args = [
        "run",
        "--json",
        "--bucket",
        "b",
        "--local-buckets",
        root,
        "--follow",
        "--interval",
        "0.2",
        "--reconcile-interval",
        "0",
        "--group-files",
        "1",
    ];
    let worker = util::command(&pool, &args).spawn().unwrap();
    util::completed_within(&pool, "first.json.gz", Duration::from_secs(60)).await;

    let dropped = retention(&pool, &["--before", "2024-11-02"]).await;
    assert_eq!(dropped.summary()["days_dropped"], 1, "{}", dropped.stderr);
    let late: Vec<Value> = (0..30)
        .map(|i| json!({"time": NOV_1 + 60_000 + i, "msg": format!("late {i}")}))
        .collect();
    write(&bucket, "late.json.gz", &late);
    util::completed_within(&pool, "late.json.gz", Duration::from_secs(60)).await;
    let stopped = util::terminate(worker).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("a row found no partition"),
        "the COPY met the dropped day: {}",
        stopped.stderr
    );
    assert_eq!(rows_before(&pool, "2024-11-02").await.len(), 30);
    assert_eq!(
        util::count(&pool, "SELECT count(*) FROM rejected_records").await,
        0
    );
    Layout::DayPartitions.check(&pool).await;
}

/// `--archive delta=URL`: each dropped day is one commit of the table's rows, and a run
/// killed after that commit (its drop held up by a reader's lock) appends nothing again
/// when the next run finds the day still detached.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn retention_with_a_delta_archive_commits_each_day_once(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    five_days(&pool, dir.path()).await;
    let table = dir.path().join("archive");
    let archive = format!("delta={}", table.display());
    let before = rows_before(&pool, "2024-11-03").await;
    assert_eq!(before.len(), 200);

    // 2024-11-01 first, with the database refusing to drop tables: the archive commits,
    // the drop fails, and the day stays detached for the next run.
    sqlx::query(
        "CREATE FUNCTION refuse_drop() RETURNS event_trigger AS $$ \
         BEGIN RAISE EXCEPTION 'injected: no DROP TABLE now'; END $$ LANGUAGE plpgsql",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "CREATE EVENT TRIGGER refuse_drop ON ddl_command_start WHEN TAG IN ('DROP TABLE') \
         EXECUTE FUNCTION refuse_drop()",
    )
    .execute(&pool)
    .await
    .unwrap();
    let first = retention(&pool, &["--before", "2024-11-02", "--archive", &archive]).await;
    assert_eq!(first.code, 3, "the day was kept: {}", first.stdout);
    assert!(first.stderr.contains("injected"), "{}", first.stderr);
    sqlx::query("DROP EVENT TRIGGER refuse_drop")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(crate::delta::read_with_python(&table)["rows"], 100);

    let again = retention(&pool, &["--before", "2024-11-03", "--archive", &archive]).await;
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert_eq!(again.summary()["days_dropped"], 2, "{}", again.stdout);
    let seen = crate::delta::read_with_python(&table);
    assert_eq!(seen["rows"], 200, "each day once: {seen}");
    assert_eq!(
        seen["dates"],
        json!({"2024-11-01": 100, "2024-11-02": 100}),
        "{seen}"
    );
    // Creation, 2024-11-01 (once, though archived by two runs), 2024-11-02.
    assert_eq!(seen["version"], 2, "{seen}");
    let ids = crate::delta::scalar_i64(&table, "SELECT count(DISTINCT id) FROM t").await;
    assert_eq!(ids, 200);
    let messages = crate::delta::query(&table, "SELECT message FROM t ORDER BY id").await;
    let mut archived: Vec<String> = Vec::new();
    for batch in &messages {
        let column =
            arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8).unwrap();
        archived.extend(
            column
                .as_string::<i32>()
                .iter()
                .map(|m| m.unwrap().to_string()),
        );
    }
    let dropped: Vec<String> = before.iter().map(|r| r.2.clone().unwrap()).collect();
    assert_eq!(archived, dropped, "the table holds the rows dropped, by id");
    assert_eq!(logs_count(&pool).await, 307);

    // Again: nothing more.
    let third = retention(&pool, &["--before", "2024-11-03", "--archive", &archive]).await;
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(third.summary()["days_dropped"], 0);
    assert_eq!(crate::delta::read_with_python(&table)["version"], 2);
}
