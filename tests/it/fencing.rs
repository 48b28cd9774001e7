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
    let first = jobs::claim_page(&pool, "b", &jobs::Prefix::default(), 10, rules)
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
        stalled
            .checkpoint(&mut tx, 100, ChunkCounts::default())
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert!(
        jobs::claim_page(&pool, "b", &jobs::Prefix::default(), 10, rules)
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
    let second = jobs::claim_page(&pool, "b", &jobs::Prefix::default(), 10, rules)
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
        !stalled
            .checkpoint(&mut tx, 200, ChunkCounts::default())
            .await
            .unwrap(),
        "fenced"
    );
    tx.rollback().await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert!(!stalled.complete(&mut conn, &[]).await.unwrap());
    assert!(!stalled.renew(&pool).await.unwrap());
    let owner = lease(second.token, second.attempts);
    assert!(owner.complete(&mut conn, &[]).await.unwrap());
}

fn listed(keys: &[&str]) -> Vec<jobs::Listed> {
    keys.iter()
        .map(|key| jobs::Listed {
            key: key.to_string(),
            size: 10,
            etag: None,
            last_modified: chrono::Utc::now(),
        })
        .collect()
}

async fn expire_leases(pool: &PgPool) {
    sqlx::query("UPDATE processed_files SET lease_expires_at = now() - interval '1 second' WHERE status = 'PROCESSING'")
        .execute(pool)
        .await
        .unwrap();
}

/// Issue 14 item 12: a file whose worker dies on every attempt is not taken over forever.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn a_file_that_keeps_losing_its_worker_ends_failed(pool: PgPool) {
    jobs::discover(&pool, "b", &listed(&["k.json"]), true)
        .await
        .unwrap();
    let rules = ClaimRules {
        lease_secs: 60.0,
        max_attempts: 2,
    };
    let all = jobs::Prefix::default();
    let first = jobs::claim_page(&pool, "b", &all, 10, rules).await.unwrap();
    assert_eq!((first.len(), first[0].takeover), (1, false));
    expire_leases(&pool).await; // the worker died
    assert!(
        jobs::give_up_lost(&pool, "b", &all, 2)
            .await
            .unwrap()
            .is_empty(),
        "attempts left: taken over"
    );
    let second = jobs::claim_page(&pool, "b", &all, 10, rules).await.unwrap();
    assert_eq!((second[0].takeover, second[0].attempts), (true, 2));
    expire_leases(&pool).await; // died again, on the last attempt

    assert!(
        jobs::claim_page(&pool, "b", &all, 10, rules)
            .await
            .unwrap()
            .is_empty(),
        "no takeover after the last attempt"
    );
    let lost = jobs::give_up_lost(&pool, "b", &all, 2).await.unwrap();
    assert_eq!(lost.len(), 1);
    assert!(lost[0].1.contains("worker lost 2 times"), "{}", lost[0].1);
    let (status, lease): (String, Option<uuid::Uuid>) =
        sqlx::query_as("SELECT status, lease_token FROM processed_files")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), lease), ("FAILED", None));
    // The worker that held the last lease is fenced.
    let mut conn = pool.acquire().await.unwrap();
    let stale = Lease {
        bucket: "b".into(),
        key: "k.json".into(),
        token: second[0].token,
        duration: Duration::from_secs(60),
        attempts: 2,
    };
    assert!(!stale.complete(&mut conn, &[]).await.unwrap());

    assert_eq!(jobs::retry(&pool, Some("b"), None).await.unwrap(), 1);
    let again = jobs::claim_page(&pool, "b", &all, 10, rules).await.unwrap();
    assert_eq!((again[0].attempts, again[0].takeover), (1, false));
}

/// Issue 14 item 13: claims compare the same normalised prefix the listing uses: a plain
/// string prefix of the key, a leading `/` ignored.
#[sqlx::test(migrator = "ingestor::config::MIGRATOR")]
async fn claims_take_the_keys_under_the_normalised_prefix(pool: PgPool) {
    let keys = ["logs/2024/a.json", "logs/19/b.json", "other/logs/20/c.json"];
    jobs::discover(&pool, "b", &listed(&keys), true)
        .await
        .unwrap();
    let rules = ClaimRules {
        lease_secs: 60.0,
        max_attempts: 5,
    };
    let prefix = jobs::Prefix::new("/logs/20");
    let claimed = jobs::claim_page(&pool, "b", &prefix, 10, rules)
        .await
        .unwrap();
    let claimed: Vec<&str> = claimed.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(claimed, vec!["logs/2024/a.json"]);
    let stats = jobs::stats(&pool, Some("b"), Some(&prefix)).await.unwrap();
    assert_eq!(stats.counts, vec![("PROCESSING".to_string(), 1)]);
    let slash = jobs::Prefix::new("/logs/");
    let rest = jobs::claim_page(&pool, "b", &slash, 10, rules)
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].key, "logs/19/b.json");
}
