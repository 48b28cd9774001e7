//! Forgetting what an object wrote before (`--force`, a new version of the object): its
//! rows in the target table, found by their source columns.

use sqlx::PgConnection;

use super::table::SinkPlan;

/// Deletes the rows of `plan`'s table that the object `bucket`/`key` produced.
pub async fn delete_object_rows(
    conn: &mut PgConnection,
    plan: &SinkPlan,
    bucket: &str,
    key: &str,
) -> sqlx::Result<u64> {
    let delete = format!(
        "DELETE FROM {} WHERE source_bucket = $1 AND source_key = $2",
        plan.table.quoted
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(delete))
        .bind(bucket)
        .bind(key)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
