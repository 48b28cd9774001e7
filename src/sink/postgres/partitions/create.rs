//! Day partitions made before rows need them.
//!
//! A partition is created as a table of its own (`CREATE TABLE ... (LIKE parent)`) and then
//! attached (`ALTER TABLE parent ATTACH PARTITION`), in one short transaction on a
//! connection of its own. That takes `SHARE UPDATE EXCLUSIVE` on the parent, which a COPY's
//! `ROW EXCLUSIVE` does not conflict with: creating a day never waits for a chunk that this
//! worker or another has open. (`CREATE TABLE ... PARTITION OF` takes `ACCESS EXCLUSIVE` on
//! the parent: it would wait for every open COPY, stop every new one behind it, and a
//! worker waiting for its own open COPY on another connection is a deadlock PostgreSQL
//! cannot see.) Workers creating the same day at once are serialised by an advisory lock
//! on (table, day): the second finds the partition made and does nothing.
//!
//! A COPY routes rows to the partitions that existed when the statement started, so the
//! commit loop creates the days of a chunk's first rows before its transaction opens, and
//! starts a new COPY statement (same transaction) when later rows bring a day it has not
//! seen (`pipeline/commit.rs`). docs/partitions.md has the measurements.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgConnection, PgPool};

use super::catalog::{self, Layout, Partition, created_comment};
use super::day::{Slot, partition_name};

/// How long creating a partition waits for a lock before giving up (the file is then
/// retried): only DDL on the table (a migration, an `ALTER TABLE`) holds one that long.
pub const CREATE_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Days after today created ahead (today included) at start-up and at each pass, so that
/// live logs rarely wait for a partition.
pub const DAYS_AHEAD: i32 = 2;

/// Why a day's partition could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    #[error("cannot create the partition of table {table} for day {slot}: {source}")]
    Create {
        table: String,
        slot: Slot,
        #[source]
        source: sqlx::Error,
    },
    #[error(
        "day {slot} of table {table} is being detached by a retention run (partition {partition}, \
         pending detach): its rows are written once the run has dropped it"
    )]
    BeingDetached {
        table: String,
        slot: Slot,
        partition: String,
    },
    #[error(
        "day {slot} of table {table} overlaps partition {partition}, which does not cover it \
         whole: ingestor creates day partitions only where no partition covers part of a day"
    )]
    Overlaps {
        table: String,
        slot: Slot,
        partition: String,
    },
    #[error("cannot read the partitions of table {table}: {source}")]
    Catalog {
        table: String,
        #[source]
        source: sqlx::Error,
    },
}

/// The day partitions of one table, and the days known to exist (the cache a COPY's
/// routing is checked against before its rows are sent).
pub struct DayPartitions {
    layout: Layout,
    /// Connections of their own: a chunk's transaction holds one of the worker pool's, and
    /// a day found in its later rows is created on another.
    ddl: PgPool,
    known: Mutex<BTreeSet<Slot>>,
}

impl DayPartitions {
    /// The day partitions of `layout` (a table partitioned by day), created through
    /// connections made like `pool`'s.
    pub fn new(pool: &PgPool, layout: Layout) -> Self {
        let options = (*pool.connect_options()).clone();
        let ddl = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(options);
        Self {
            layout,
            ddl,
            known: Mutex::new(BTreeSet::new()),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// True when every slot is known to have its partition.
    pub fn knows(&self, slots: &[Slot]) -> bool {
        let known = self.known.lock().expect("not poisoned");
        slots.iter().all(|slot| known.contains(slot))
    }

    /// Forgets which days exist (a COPY found one missing: a retention run dropped it).
    pub fn forget(&self) {
        self.known.lock().expect("not poisoned").clear();
    }

    /// Makes sure the partitions of `slots` exist: those not known are looked up, and the
    /// missing ones created (each in its own short transaction).
    pub async fn ensure(&self, slots: &[Slot]) -> Result<(), PartitionError> {
        let missing: Vec<Slot> = {
            let known = self.known.lock().expect("not poisoned");
            slots
                .iter()
                .filter(|s| !known.contains(s))
                .copied()
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let catalog_error = |source| PartitionError::Catalog {
            table: self.layout.quoted(),
            source,
        };
        let mut conn = self.ddl.acquire().await.map_err(catalog_error)?;
        let partitions = catalog::partitions(&mut conn, self.layout.oid)
            .await
            .map_err(catalog_error)?;
        for slot in missing {
            if find(&self.layout.quoted(), &partitions, slot)?.is_none() {
                self.create(&mut conn, slot).await?;
            }
            self.known.lock().expect("not poisoned").insert(slot);
        }
        Ok(())
    }

    /// The undated partition and the days from `today` to [`DAYS_AHEAD`] after it.
    pub async fn prepare(&self, today: chrono::NaiveDate) -> Result<(), PartitionError> {
        let Slot::Day(first) = Slot::of_date(today) else {
            unreachable!("a date is a day")
        };
        let mut slots = vec![Slot::Undated];
        slots.extend((first..=first + DAYS_AHEAD).map(Slot::Day));
        self.ensure(&slots).await
    }

    /// Creates the partition of `slot` unless another worker just did.
    async fn create(&self, conn: &mut PgConnection, slot: Slot) -> Result<(), PartitionError> {
        let error = |source| PartitionError::Create {
            table: self.layout.quoted(),
            slot,
            source,
        };
        let mut tx = sqlx::Connection::begin(&mut *conn).await.map_err(error)?;
        let timeout = format!(
            "SET LOCAL lock_timeout = '{}ms'",
            CREATE_LOCK_TIMEOUT.as_millis()
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(timeout))
            .execute(&mut *tx)
            .await
            .map_err(error)?;
        let key = match slot {
            Slot::Undated => i32::MIN,
            Slot::Day(day) => day,
        };
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(self.layout.oid as u32 as i32)
            .bind(key)
            .execute(&mut *tx)
            .await
            .map_err(error)?;
        let partitions = catalog::partitions(&mut tx, self.layout.oid)
            .await
            .map_err(error)?;
        let parent_name = self.layout.quoted();
        if find(&parent_name, &partitions, slot)?.is_some() {
            return Ok(());
        }
        let name = self.free_name(&mut tx, slot).await.map_err(error)?;
        let quoted = self.layout.sibling(&name);
        let parent = self.layout.quoted();
        let statements = [
            format!(
                "CREATE TABLE {quoted} (LIKE {parent} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
                 INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMPRESSION)"
            ),
            format!(
                "COMMENT ON TABLE {quoted} IS '{}'",
                created_comment(&parent, slot).replace('\'', "''")
            ),
            format!(
                "ALTER TABLE {parent} ATTACH PARTITION {quoted} FOR VALUES {}",
                slot.bounds_sql()
            ),
        ];
        for statement in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                .execute(&mut *tx)
                .await
                .map_err(error)?;
        }
        tx.commit().await.map_err(error)?;
        tracing::info!(table = %parent, partition = %name, day = %slot, "day partition created");
        Ok(())
    }

    /// The first of `<table>_<day>`, `<table>_<day>_1`, ... that names no relation (a
    /// table a retention run detached may still hold the first).
    async fn free_name(&self, conn: &mut PgConnection, slot: Slot) -> sqlx::Result<String> {
        for generation in 0.. {
            let name = partition_name(&self.layout.name, slot, generation);
            let taken: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(self.layout.sibling(&name))
                .fetch_one(&mut *conn)
                .await?;
            if !taken {
                return Ok(name);
            }
        }
        unreachable!("a free name is found")
    }

    /// The table's partitions now.
    pub async fn partitions(&self) -> Result<Vec<Partition>, PartitionError> {
        let catalog_error = |source| PartitionError::Catalog {
            table: self.layout.quoted(),
            source,
        };
        let mut conn = self.ddl.acquire().await.map_err(catalog_error)?;
        catalog::partitions(&mut conn, self.layout.oid)
            .await
            .map_err(catalog_error)
    }
}

/// The partition that takes the rows of `slot`, None when none does. A partition pending
/// detach, or one covering only part of the day, is an error: no partition can be created
/// for the day until it is gone.
fn find<'p>(
    table: &str,
    partitions: &'p [Partition],
    slot: Slot,
) -> Result<Option<&'p Partition>, PartitionError> {
    let range = slot.range();
    let mut covering = None;
    for partition in partitions {
        if partition.bound.covers(range) {
            if partition.pending {
                return Err(PartitionError::BeingDetached {
                    table: table.to_string(),
                    slot,
                    partition: partition.name.clone(),
                });
            }
            covering = Some(partition);
        } else if partition.bound.overlaps(range) {
            let partition = partition.name.clone();
            return Err(
                if partitions.iter().any(|p| p.pending && p.name == partition) {
                    PartitionError::BeingDetached {
                        table: table.to_string(),
                        slot,
                        partition,
                    }
                } else {
                    PartitionError::Overlaps {
                        table: table.to_string(),
                        slot,
                        partition,
                    }
                },
            );
        }
    }
    Ok(covering)
}
