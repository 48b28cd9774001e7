//! Tables partitioned by day (`migrate --partition-by day`, docs/partitions.md): which day
//! a record id belongs to (`day.rs`), what the catalog says about a table's partitions
//! (`catalog.rs`), day partitions created before rows need them (`create.rs`), the
//! conversion of the empty plain table (`convert.rs`), and detaching and dropping a day
//! without stopping the writers (`detach.rs`).

mod catalog;
mod convert;
mod create;
mod day;
mod detach;

pub use catalog::{Bound, Detached, Kind, Layout, Partition, PartitionKey, detached, partitions};
pub use convert::{ConvertError, Converted, partition_by_day};
pub use create::{CREATE_LOCK_TIMEOUT, DAYS_AHEAD, DayPartitions, PartitionError};
pub use day::{DAY_MS, Slot, id_floor, partition_name, slots_of, uuid_text};
pub use detach::{DetachError, Retry, detach, drop_detached, give_back};
