//! Listing marks: how far discovery's listings of a bucket and prefix got, so that `run
//! --follow` lists only what came after (see `migrations/*_listing_marks.sql`).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// The mark of one bucket and prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListingMark {
    /// The greatest key any listing of the prefix saw.
    pub greatest_key: String,
    /// When the last listing of the whole prefix ended (None: never).
    pub full_listed_at: Option<DateTime<Utc>>,
}

/// The mark of `bucket` and `prefix`, None before the first listing ended.
pub async fn listing_mark(
    pool: &PgPool,
    bucket: &str,
    prefix: &str,
) -> sqlx::Result<Option<ListingMark>> {
    let row: Option<(String, Option<DateTime<Utc>>)> =
        sqlx::query_as(include_str!("../../sql/jobs/listing_mark.sql"))
            .bind(bucket)
            .bind(prefix)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(greatest_key, full_listed_at)| ListingMark {
        greatest_key,
        full_listed_at,
    }))
}

/// A listing ended having seen `greatest_key`; `full`: it listed the whole prefix. The
/// mark only moves forward.
pub async fn advance_mark(
    pool: &PgPool,
    bucket: &str,
    prefix: &str,
    greatest_key: &str,
    full: bool,
) -> sqlx::Result<()> {
    sqlx::query(include_str!("../../sql/jobs/advance_mark.sql"))
        .bind(bucket)
        .bind(prefix)
        .bind(greatest_key)
        .bind(full)
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys compare byte by byte, as S3 lists them, whatever the database's collation: a
    /// mark never moves back.
    #[sqlx::test(migrator = "crate::jobs::MIGRATOR")]
    async fn the_mark_moves_forward_in_s3_order(pool: PgPool) {
        assert_eq!(listing_mark(&pool, "b", "p/").await.unwrap(), None);
        advance_mark(&pool, "b", "p/", "p/b-2", false)
            .await
            .unwrap();
        let mark = listing_mark(&pool, "b", "p/").await.unwrap().unwrap();
        assert_eq!(mark.greatest_key, "p/b-2");
        assert_eq!(
            mark.full_listed_at, None,
            "an incremental listing is not a full one"
        );
        // "p/B" sorts before "p/b-2" in bytes (a locale collation may put it after).
        advance_mark(&pool, "b", "p/", "p/B", true).await.unwrap();
        let mark = listing_mark(&pool, "b", "p/").await.unwrap().unwrap();
        assert_eq!(mark.greatest_key, "p/b-2");
        assert!(mark.full_listed_at.is_some());
        advance_mark(&pool, "b", "p/", "p/b-2/x", false)
            .await
            .unwrap();
        let mark = listing_mark(&pool, "b", "p/").await.unwrap().unwrap();
        assert_eq!(mark.greatest_key, "p/b-2/x");
        assert!(
            mark.full_listed_at.is_some(),
            "kept by an incremental listing"
        );
        assert_eq!(listing_mark(&pool, "b", "other/").await.unwrap(), None);
    }
}
