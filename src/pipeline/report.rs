//! How a file ended in an attempt, and what this pass committed of it; `FileReport::record`
//! hands it to `events`, which logs it and counts it in the metrics.

use std::time::{Duration, Instant};

use crate::events::{self, FileOutcome, Records};
use crate::jobs::ChunkCounts;

use super::task::FileTask;

/// How a file ended in this pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Failed(String),
    Skipped(String),
    /// Another worker holds the file and `--no-wait` was given: not done.
    Busy(String),
    /// Another worker took the file over; our uncommitted chunk was rolled back.
    LeaseLost,
}

/// One file's outcome and what this pass committed of it.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub display: String,
    pub outcome: Outcome,
    pub counts: ChunkCounts,
    pub elapsed: Duration,
    /// The object was ingested again as a new version, its old rows replaced.
    pub replaced: bool,
}

impl FileReport {
    pub(super) fn new(task: &FileTask, outcome: Outcome, started: Instant) -> Self {
        Self {
            display: task.display.clone(),
            outcome,
            counts: ChunkCounts::default(),
            elapsed: started.elapsed(),
            replaced: false,
        }
    }
}

impl FileReport {
    /// Logs the file's one line and counts it in the metrics (`events::file_finished`).
    pub fn record(&self) {
        let outcome = match &self.outcome {
            Outcome::Completed => FileOutcome::Completed,
            Outcome::Failed(error) => FileOutcome::Failed(error),
            Outcome::Skipped(reason) => FileOutcome::Skipped(reason),
            Outcome::Busy(reason) => FileOutcome::Busy(reason),
            Outcome::LeaseLost => FileOutcome::LeaseLost,
        };
        let c = self.counts;
        let records = Records {
            ingested: c.ingested,
            rejected: c.rejected,
            filtered: c.filtered,
        };
        events::file_finished(&self.display, outcome, records, self.elapsed, self.replaced);
    }
}
