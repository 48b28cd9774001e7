//! One retention run: for each day before the cut, oldest first: keep it if a file is still
//! being written into it; detach it (concurrently: ingestion goes on); check again, now
//! that no transaction can write into it, and give it back if a file wrote into it
//! meanwhile; archive it (optional); drop it. Each step can be repeated: a run stopped
//! anywhere is finished by the next one, and a run with nothing before its cut does
//! nothing.

use sqlx::{PgConnection, PgPool};

use crate::jobs;
use crate::sink::TargetTable;
use crate::sink::postgres::partitions::{
    DetachError, Layout, Retry, detach, drop_detached, give_back,
};

use super::archive::{Archive, ArchiveError};
use super::cut::Cut;
use super::plan::{Planned, State, plan};
use super::read::Columns;

/// Files named in a "still being written" message at most.
const NAMED_FILES: i64 = 3;

/// A retention run over one table partitioned by day.
pub struct Retention {
    /// Connections whose sessions have the run's `lock_timeout`.
    pub pool: PgPool,
    pub table: TargetTable,
    pub cut: Cut,
    pub archive: Option<Archive>,
    pub retry: Retry,
}

/// What became of one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Archived (rows, when an archive was given) and dropped.
    Dropped { archived: Option<u64> },
    /// Left in place, for the reason given (the next run tries again).
    Kept(String),
    /// Detached, then attached again (or its rows moved into the day's new partition).
    GivenBack(String),
    /// A step failed; the day is where the step left it (the next run takes it up).
    Failed(String),
}

/// One day's outcome.
#[derive(Debug, Clone)]
pub struct DayReport {
    pub planned: Planned,
    pub outcome: Outcome,
}

/// Errors that stop the run (the database is gone).
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error("retention of table {table}: {source}")]
    Database {
        table: String,
        #[source]
        source: sqlx::Error,
    },
}

/// Why one step of a day failed.
#[derive(Debug, thiserror::Error)]
enum StepError {
    #[error(transparent)]
    Detach(#[from] DetachError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Database(#[from] sqlx::Error),
}

impl Retention {
    fn layout(&self) -> &Layout {
        &self.table.layout
    }

    fn database(&self) -> impl Fn(sqlx::Error) -> RetentionError + '_ {
        |source| RetentionError::Database {
            table: self.table.quoted.clone(),
            source,
        }
    }

    /// The days to act on.
    pub async fn plan(&self) -> Result<Vec<Planned>, RetentionError> {
        let mut conn = self.pool.acquire().await.map_err(self.database())?;
        plan(&mut conn, self.layout(), self.cut)
            .await
            .map_err(self.database())
    }

    /// Files still being written into the day `name` (a partition or a detached table):
    /// PROCESSING jobs with rows in it, or any PROCESSING job when the table cannot tell
    /// which rows came from which file. An empty text when none.
    async fn writers(&self, conn: &mut PgConnection, name: &str) -> sqlx::Result<String> {
        let files = if self.table_has_sources() {
            jobs::writing_into(conn, &self.layout().sibling(name), NAMED_FILES).await?
        } else {
            jobs::processing(conn, NAMED_FILES).await?
        };
        Ok(files
            .iter()
            .map(|(bucket, key)| format!("{bucket}/{key}"))
            .collect::<Vec<_>>()
            .join(", "))
    }

    fn table_has_sources(&self) -> bool {
        ["source_bucket", "source_key"]
            .iter()
            .all(|c| self.table.columns.iter().any(|t| t.name == *c))
    }

    /// What a run would do, without doing it: each day with the files still being written
    /// into it, if any.
    pub async fn dry_run(&self, planned: Vec<Planned>) -> Result<Vec<DayReport>, RetentionError> {
        let mut conn = self.pool.acquire().await.map_err(self.database())?;
        let mut days = Vec::with_capacity(planned.len());
        for planned in planned {
            let writers = self
                .writers(&mut conn, &planned.name)
                .await
                .map_err(self.database())?;
            let outcome = if !writers.is_empty() {
                Outcome::Kept(format!("still being written into by {writers}"))
            } else if planned.state == State::Detached && !self.cut.takes(planned.slot) {
                Outcome::GivenBack("the cut keeps its day".into())
            } else {
                Outcome::Dropped { archived: None }
            };
            days.push(DayReport { planned, outcome });
        }
        Ok(days)
    }

    /// Runs the plan, day after day; a day that fails is reported and the run goes on.
    pub async fn run(&self, planned: Vec<Planned>) -> Result<Vec<DayReport>, RetentionError> {
        let mut conn = self.pool.acquire().await.map_err(self.database())?;
        let mut days = Vec::with_capacity(planned.len());
        for planned in planned {
            let outcome = match self.day(&mut conn, &planned).await {
                Ok(outcome) => outcome,
                Err(StepError::Database(e)) if jobs::is_connection_error(&e) => {
                    return Err(self.database()(e));
                }
                Err(e) => Outcome::Failed(e.to_string()),
            };
            match &outcome {
                Outcome::Dropped { archived } => tracing::info!(
                    day = %planned.slot, partition = %planned.name, archived_rows = ?archived,
                    "day dropped"
                ),
                Outcome::Kept(why) | Outcome::GivenBack(why) => tracing::warn!(
                    day = %planned.slot, partition = %planned.name, why = %why, "day kept"
                ),
                Outcome::Failed(why) => tracing::warn!(
                    day = %planned.slot, partition = %planned.name, error = %why,
                    "day not dropped"
                ),
            }
            days.push(DayReport { planned, outcome });
        }
        Ok(days)
    }

    /// The steps of one day.
    async fn day(&self, conn: &mut PgConnection, planned: &Planned) -> Result<Outcome, StepError> {
        let (layout, name, slot) = (self.layout(), planned.name.as_str(), planned.slot);
        if planned.state == State::Attached {
            let writers = self.writers(conn, name).await?;
            if !writers.is_empty() {
                return Ok(Outcome::Kept(format!(
                    "still being written into by {writers}"
                )));
            }
        }
        if planned.state != State::Detached {
            match detach(conn, layout, name, slot, self.retry).await {
                Ok(()) => {}
                Err(e @ DetachError::TimedOut { .. }) => return Ok(Outcome::Kept(e.to_string())),
                Err(e) => return Err(e.into()),
            }
        }
        // Detached: no transaction can write into it any more.
        let columns: Vec<String> = self.table.columns.iter().map(|c| c.name.clone()).collect();
        if !self.cut.takes(slot) {
            give_back(conn, layout, name, slot, &columns, self.retry).await?;
            return Ok(Outcome::GivenBack(
                "detached by an earlier run, but the cut keeps its day".into(),
            ));
        }
        let writers = self.writers(conn, name).await?;
        if !writers.is_empty() {
            give_back(conn, layout, name, slot, &columns, self.retry).await?;
            return Ok(Outcome::GivenBack(format!(
                "{writers} wrote into it while it was being detached"
            )));
        }
        let archived = match &self.archive {
            Some(archive) => {
                let columns = Columns::new(
                    self.table
                        .columns
                        .iter()
                        .map(|c| (c.name.as_str(), c.typname.as_str())),
                );
                let table = layout.sibling(name);
                let archived = archive.write(conn, &table, name, &columns).await?;
                tracing::info!(
                    day = %slot, partition = %name, rows = archived.rows,
                    files = archived.files.len(), archive = %archive.display(), "day archived"
                );
                Some(archived.rows)
            }
            None => None,
        };
        drop_detached(conn, layout, name, self.retry).await?;
        Ok(Outcome::Dropped { archived })
    }
}
