//! Fencing: a worker whose lease was taken over (it stalled past its lease) cannot commit.

use std::time::Duration;

use ingestor::jobs::{self, ChunkCounts, ClaimRules, Lease};
use sqlx::PgPool;

#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_stalled_worker_cannot_commit_after_a_takeover(pool: PgPool) {
    let page = [jobs::Listed {
        key: "k.json".into(),
        size: 10,
        etag: None,
        last_modified: chrono::Utc::now(),
    }];
    assert_eq!(
        jobs::discover(&pool, "b", &page, true).await.unwrap().new,
        1
    );
    let rules = ClaimRules {
        lease_secs: 60.0,
        max_attempts: 5,
    };
    let first = jobs::claim_page(&pool, "b", "", 10, rules)
        .await
        .unwrap()
        .remove(0);
    let lease = |token, attempts| Lease {
        bucket: "b".into(),
        key: "k.json".into(),
        token,
        duration: Duration::from_secs(60),
        attempts,
    };
    let stalled = lease(first.token, first.attempts);
    let mut tx = pool.begin().await.unwrap();
    assert!(
        jobs::checkpoint(&mut tx, &stalled, 100, ChunkCounts::default())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert!(
        jobs::claim_page(&pool, "b", "", 10, rules)
            .await
            .unwrap()
            .is_empty(),
        "a live lease is not taken"
    );

    // The worker stalls past its lease; another claims the file.
    sqlx::query("UPDATE processed_files SET lease_expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    let second = jobs::claim_page(&pool, "b", "", 10, rules)
        .await
        .unwrap()
        .remove(0);
    assert_ne!(second.token, first.token);
    assert_eq!(
        second.checkpoint, 100,
        "the new owner resumes at the checkpoint"
    );

    let mut tx = pool.begin().await.unwrap();
    assert!(
        !jobs::checkpoint(&mut tx, &stalled, 200, ChunkCounts::default())
            .await
            .unwrap(),
        "fenced"
    );
    tx.rollback().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert!(!jobs::complete(&mut conn, &stalled, &[]).await.unwrap());
    assert!(!jobs::renew(&pool, &stalled).await.unwrap());
    let owner = lease(second.token, second.attempts);
    assert!(jobs::complete(&mut conn, &owner, &[]).await.unwrap());
}
