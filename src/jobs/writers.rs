//! Which files are still being written into a table: what a retention run asks before it
//! drops a day (a day is dropped only when no PROCESSING job has rows in it).

use sqlx::PgConnection;

/// PROCESSING jobs `(bucket, key)` with rows in `table` (quoted; it must have
/// `source_bucket` and `source_key` columns), up to `limit`.
pub async fn writing_into(
    conn: &mut PgConnection,
    table: &str,
    limit: i64,
) -> sqlx::Result<Vec<(String, String)>> {
    let sql = include_str!("../../sql/jobs/writers_in.sql").replace("{table}", table);
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// PROCESSING jobs `(bucket, key)`, up to `limit`: for a table without source columns,
/// any of them may be writing into any day.
pub async fn processing(
    conn: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<(String, String)>> {
    sqlx::query_as(include_str!("../../sql/jobs/processing.sql"))
        .bind(limit)
        .fetch_all(conn)
        .await
}
