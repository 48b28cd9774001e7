//! Discovery at scale (issue 19): `--follow` lists from the listing mark, and a full
//! listing every `--reconcile-interval` finds what sorts before it.

use std::time::Duration;

use ingestor_s3kit::{FaultProxy, Kind, Options};
use serde_json::json;
use sqlx::PgPool;

use crate::s3::{S3Server, put};
use crate::util;

fn object(n: usize) -> Vec<u8> {
    let records: Vec<_> = (0..n)
        .map(|i| json!({"level": 30, "time": 1_730_800_800_000i64 + i as i64, "msg": format!("record {i}")}))
        .collect();
    util::gzip(&util::json_array(&records))
}

/// Objects `logs/b-0000.json.gz`.. already ingested: their jobs COMPLETED (seeded by SQL,
/// as an earlier backfill leaves them).
async fn seed_completed(pool: &PgPool, bucket: &str, keys: &[String]) {
    sqlx::query(
        "INSERT INTO processed_files (bucket, s3_key, status, processed_at)
         SELECT $1, k, 'COMPLETED', now() FROM unnest($2::text[]) AS k",
    )
    .bind(bucket)
    .bind(keys)
    .execute(pool)
    .await
    .unwrap();
}

/// Issue 19 item 3: in steady state a pass costs one LIST request, not one per 1,000
/// objects of the prefix; a key after the mark is taken by the next pass; one that sorts
/// before it (a late upload under an earlier name) is found by the full listing that
/// `--reconcile-interval` brings, and counted as such.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn follow_lists_after_the_mark_and_a_full_listing_finds_keys_before_it(pool: PgPool) {
    let s3 = S3Server::start().await;
    let store = s3.bucket("marks").await;
    let keys: Vec<String> = (0..1_100)
        .map(|i| format!("logs/b-{i:04}.json.gz"))
        .collect();
    let body = object(2);
    for key in &keys {
        put(&store, key, body.clone()).await;
    }
    seed_completed(&pool, "marks", &keys).await;
    let proxy = FaultProxy::launch(Options::new(s3.port)).await.unwrap();
    let mut command = util::command(
        &pool,
        &[
            "run",
            "--json",
            "--bucket",
            "marks",
            "--follow",
            "--interval",
            "0.2",
            "--reconcile-interval",
            "6",
        ],
    );
    for (key, value) in S3Server::env(&proxy.endpoint()) {
        command.env(key, value);
    }
    let child = command.spawn().unwrap();

    // A key after the mark: the next pass takes it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    put(&store, "logs/c-new.json.gz", object(3)).await;
    util::completed_within(&pool, "logs/c-new.json.gz", Duration::from_secs(5)).await;
    // A key before the mark: incremental passes cannot see it; the full listing does.
    put(&store, "logs/a-late.json.gz", object(4)).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM processed_files WHERE s3_key = 'logs/a-late.json.gz'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(seen, 0, "an incremental pass listed a key before the mark");
    util::completed_within(&pool, "logs/a-late.json.gz", Duration::from_secs(15)).await;
    let stopped = util::terminate(child).await;
    assert_eq!(stopped.code, 0, "{}", stopped.stderr);

    let passes = |listing: &str| {
        stopped
            .stderr
            .lines()
            .filter(|l| {
                l.contains("discovery done") && l.contains(&format!("listing=\"{listing}\""))
            })
            .count() as u64
    };
    let (full, incremental) = (passes("full"), passes("incremental"));
    let lists = proxy.counts.get(Kind::List);
    assert!(
        full >= 2 && incremental >= 5,
        "full {full}, incremental {incremental}:\n{}",
        stopped.stderr
    );
    // A full listing of 1,100+ keys is two pages; an incremental one is one request. Each
    // pass started but not logged when stopped adds at most two.
    assert!(
        lists <= 2 * full + incremental + 2,
        "{lists} LIST requests for {full} full and {incremental} incremental passes"
    );
    assert!(
        stopped.stderr.contains("found_by_full_listing=1"),
        "the late key is counted as found by the full listing:\n{}",
        stopped.stderr
    );
    assert_eq!(stopped.count("records_ingested"), 7);
}
