//! One chunk's rows into the target table: a binary COPY opened with the chunk's first
//! rows (so that a chunk without rows opens none), fed piece by piece, then finished or
//! abandoned. A row the database refuses is named by its line in the chunk (a chunk may
//! take several COPY statements in its transaction: a statement routes rows only to the
//! partitions that existed when it started, see `partitions/create.rs`).

use sqlx::PgConnection;
use sqlx::postgres::PgCopyIn;

use super::table::SinkPlan;

/// Largest piece of COPY data handed to the connection at once.
const COPY_PIECE_BYTES: usize = 256 * 1024;

/// Why a chunk's COPY failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The database refused row `row` (1-based, within the COPY): a constraint, a trigger,
    /// a value it does not take.
    #[error("the database refused row {row} of the chunk: {message}")]
    Refused {
        row: u64,
        message: String,
        /// The SQLSTATE.
        code: String,
    },
    /// An error no row could avoid (the table is gone, a permission, the connection).
    #[error(transparent)]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for CopyError {
    fn from(error: sqlx::Error) -> Self {
        match refused_row(&error) {
            Some((row, message, code)) => CopyError::Refused { row, message, code },
            None => CopyError::Database(error),
        }
    }
}

/// The COPY of one chunk, on the chunk's transaction.
pub struct ChunkCopy<'c> {
    plan: &'c SinkPlan,
    conn: Option<&'c mut PgConnection>,
    copy: Option<PgCopyIn<&'c mut PgConnection>>,
    /// Rows of the chunk sent by its earlier COPY statements.
    rows_before: u64,
}

impl<'c> ChunkCopy<'c> {
    /// A COPY into `plan`'s table on `conn`, opened when the first rows are sent.
    pub fn new(conn: &'c mut PgConnection, plan: &'c SinkPlan) -> Self {
        Self {
            plan,
            conn: Some(conn),
            copy: None,
            rows_before: 0,
        }
    }

    /// The COPY statement that follows one that sent `rows` rows of the same chunk: a
    /// refused row is numbered within the chunk. Default 0.
    pub fn after_rows(mut self, rows: u64) -> Self {
        self.rows_before = rows;
        self
    }

    /// Numbers a refused row within the chunk.
    fn in_chunk(&self, error: sqlx::Error) -> CopyError {
        match CopyError::from(error) {
            CopyError::Refused { row, message, code } => CopyError::Refused {
                row: row + self.rows_before,
                message,
                code,
            },
            other => other,
        }
    }

    /// Sends encoded rows (no header or trailer), opening the COPY on first use.
    pub async fn send(&mut self, data: &[u8]) -> Result<(), CopyError> {
        if data.is_empty() {
            return Ok(());
        }
        if self.copy.is_none() {
            let conn = self.conn.take().expect("a connection for the COPY");
            let mut opened = match conn.copy_in_raw(&self.plan.copy_sql).await {
                Ok(opened) => opened,
                Err(e) => return Err(self.in_chunk(e)),
            };
            let mut header = Vec::new();
            self.plan.encoder.begin(&mut header);
            if let Err(e) = opened.send(header).await {
                return Err(self.in_chunk(e));
            }
            self.copy = Some(opened);
        }
        let open = self.copy.as_mut().expect("open copy");
        let mut failed = None;
        for piece in data.chunks(COPY_PIECE_BYTES) {
            if let Err(e) = open.send(piece).await {
                failed = Some(e);
                break;
            }
        }
        match failed {
            Some(e) => Err(self.in_chunk(e)),
            None => Ok(()),
        }
    }

    /// Ends the COPY (if rows were sent): the database checks the rows now.
    pub async fn finish(self) -> Result<(), CopyError> {
        let Some(mut copy) = self.copy else {
            return Ok(());
        };
        let mut trailer = Vec::new();
        self.plan.encoder.end(&mut trailer);
        let sent = copy.send(trailer).await.map(|_| ());
        let finished = match sent {
            Ok(()) => copy.finish().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let rows_before = self.rows_before;
        finished.map_err(|e| match CopyError::from(e) {
            CopyError::Refused { row, message, code } => CopyError::Refused {
                row: row + rows_before,
                message,
                code,
            },
            other => other,
        })
    }

    /// Abandons the COPY (if rows were sent); the transaction is then rolled back.
    pub async fn abort(self) {
        if let Some(copy) = self.copy {
            let _ = copy.abort("ingestor: chunk abandoned").await;
        }
    }
}

/// The row (1-based, within the COPY), message and SQLSTATE of an error that one row
/// caused: a data, constraint or trigger error whose context names the COPY's line.
/// Errors without a row (the table is gone, a permission) are not.
fn refused_row(error: &sqlx::Error) -> Option<(u64, String, String)> {
    let sqlx::Error::Database(db) = error else {
        return None;
    };
    let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>()?;
    // 22: data exception, 23: integrity constraint, 54: a value too large for an index,
    // P0: raised by PL/pgSQL (a trigger).
    if !["22", "23", "54", "P0"]
        .iter()
        .any(|class| pg.code().starts_with(class))
    {
        return None;
    }
    let row = copy_line(pg.r#where()?)?;
    Some((row, pg.message().to_string(), pg.code().to_string()))
}

/// The line number in a COPY error context (`COPY logs, line 2090, column x: ...`).
fn copy_line(context: &str) -> Option<u64> {
    context.lines().find_map(|line| {
        let rest = line.trim().strip_prefix("COPY ")?;
        let (_, after) = rest.split_once(", line ")?;
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok().filter(|row| *row > 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_row_is_read_from_the_copy_context() {
        assert_eq!(copy_line("COPY logs, line 2090"), Some(2090));
        assert_eq!(
            copy_line("PL/pgSQL function refuse() line 3 at RAISE\nCOPY logs, line 7"),
            Some(7)
        );
        assert_eq!(
            copy_line("COPY \"my logs\", line 12, column level: \"x\""),
            Some(12)
        );
        assert_eq!(copy_line("SQL statement \"SELECT 1\""), None);
    }
}
