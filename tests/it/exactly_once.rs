//! Exactly once: a process killed with SIGKILL mid-file, re-runs, `--force`; into the plain
//! `logs` and into `logs` partitioned by day.

use sqlx::PgPool;

use crate::util::{self, Layout};

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn sigkill_mid_file_then_rerun_leaves_every_record_once(pool: PgPool) {
    sigkill_mid_file_then_rerun(pool, Layout::Plain).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn sigkill_mid_file_then_rerun_leaves_every_record_once_in_day_partitions(pool: PgPool) {
    sigkill_mid_file_then_rerun(pool, Layout::DayPartitions).await;
}

async fn sigkill_mid_file_then_rerun(pool: PgPool, layout: Layout) {
    layout.apply(&pool).await;
    let dir = tempfile::tempdir().unwrap();
    util::generate(dir.path(), 1, 30_000).await;
    let path = dir.path().to_str().unwrap().to_string();
    let args = [
        "ingest-file",
        "--json",
        "--chunk-records",
        "500",
        "--batch-records",
        "250",
        "--lease-secs",
        "1",
        &path,
    ];

    let mut child = util::command(&pool, &args).spawn().unwrap();
    // Wait until some chunks are committed, but not all.
    util::wait_until(&pool, util::COMMITTED, 2_000).await;
    child.kill().await.unwrap(); // SIGKILL
    let at_kill = util::count(&pool, "SELECT count(*) FROM logs").await;
    assert!(at_kill < 30_000, "killed mid-file ({at_kill} rows)");
    let status: String = sqlx::query_scalar("SELECT status FROM processed_files")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "PROCESSING");

    // The dead worker's lease expires; the next run takes over.
    util::expire_leases(&pool).await;
    let run = util::run(&pool, &args).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.count("files_completed"), 1);
    assert_eq!(
        run.count("records_ingested") as i64,
        30_000 - at_kill,
        "resumed at the checkpoint"
    );
    let (rows, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT (source_key, source_index)) FROM logs")
            .fetch_one(&pool)
            .await
            .unwrap();
    let rejected = util::count(&pool, "SELECT count(*) FROM rejected_records").await;
    assert_eq!((rows + rejected, distinct + rejected), (30_000, 30_000));

    // A second run changes nothing.
    let again = util::run(&pool, &args).await;
    assert_eq!(again.code, 0);
    assert_eq!(
        (
            again.count("files_skipped"),
            again.count("records_ingested")
        ),
        (1, 0)
    );
    assert_eq!(util::count(&pool, "SELECT count(*) FROM logs").await, rows);
    layout.check(&pool).await;
}

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn force_replaces_a_files_rows_with_the_same_ids(pool: PgPool) {
    let dir = tempfile::tempdir().unwrap();
    util::generate(dir.path(), 2, 300).await;
    let run = util::ingest(&pool, dir.path(), &["--chunk-records", "100"]).await;
    assert_eq!(
        (run.code, run.count("files_completed")),
        (0, 2),
        "{}",
        run.stderr
    );
    let ids = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>("SELECT id::text FROM logs ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let before = ids(pool.clone()).await;
    assert_eq!(before.len(), 600);

    let skipped = util::ingest(&pool, dir.path(), &[]).await;
    assert_eq!(
        (
            skipped.count("files_skipped"),
            skipped.count("records_ingested")
        ),
        (2, 0)
    );

    let forced = util::ingest(&pool, dir.path(), &["--force"]).await;
    assert_eq!(forced.code, 0, "{}", forced.stderr);
    assert_eq!(
        (
            forced.count("files_completed"),
            forced.count("records_ingested")
        ),
        (2, 600)
    );
    assert_eq!(
        ids(pool.clone()).await,
        before,
        "same rows, same ids, no duplicates"
    );
}
