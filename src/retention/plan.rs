//! What a retention run has to do: the day partitions before the cut, and the tables an
//! interrupted run detached and did not drop (finished whatever the cut, or given back
//! when the cut keeps their day).

use sqlx::PgConnection;

use crate::sink::postgres::partitions::{self, Layout, Slot};

use super::cut::Cut;

/// One day to act on.
#[derive(Debug, Clone)]
pub struct Planned {
    pub slot: Slot,
    /// The partition's (or detached table's) name, in the table's schema.
    pub name: String,
    pub state: State,
    /// The planner's estimate of its rows.
    pub estimated_rows: i64,
}

/// Where a day stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// A partition of the table.
    Attached,
    /// Its detach was interrupted (`DETACH ... CONCURRENTLY` stopped in its wait).
    Pending,
    /// Detached by an interrupted run and not dropped: it is archived and dropped now if
    /// the cut takes its day, else attached again.
    Detached,
}

impl State {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Attached => "partition",
            Self::Pending => "partition pending detach (an earlier run stopped)",
            Self::Detached => "detached by an earlier run that stopped before dropping it",
        }
    }
}

/// The days of `layout` the cut takes, oldest first, then the detached tables of earlier
/// runs (whatever their day).
pub async fn plan(
    conn: &mut PgConnection,
    layout: &Layout,
    cut: Cut,
) -> sqlx::Result<Vec<Planned>> {
    let mut planned: Vec<Planned> = partitions::partitions(conn, layout.oid)
        .await?
        .into_iter()
        .filter_map(|p| {
            let slot = p.bound.slot()?;
            cut.takes(slot).then_some(Planned {
                slot,
                name: p.name,
                state: if p.pending {
                    State::Pending
                } else {
                    State::Attached
                },
                estimated_rows: p.estimated_rows,
            })
        })
        .collect();
    planned.sort_by_key(|p| p.slot);
    for detached in partitions::detached(conn, layout).await? {
        planned.push(Planned {
            slot: detached.slot,
            name: detached.name,
            state: State::Detached,
            estimated_rows: detached.estimated_rows,
        });
    }
    Ok(planned)
}
