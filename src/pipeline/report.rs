//! How a file ended, and the one place that logs it and counts it in the metrics.

use std::time::{Duration, Instant};

use crate::jobs::ChunkCounts;
use crate::metrics::{METRICS, add};

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
    /// Counts the file's outcome in the metrics and logs its one line.
    pub fn record(&self) {
        match self.outcome {
            Outcome::Completed => add(&METRICS.files_completed, 1),
            Outcome::Failed(_) => add(&METRICS.files_failed, 1),
            Outcome::Skipped(_) => add(&METRICS.files_skipped, 1),
            Outcome::LeaseLost => add(&METRICS.files_lease_lost, 1),
            Outcome::Busy(_) => add(&METRICS.files_skipped, 1),
        }
        if self.replaced {
            add(&METRICS.files_replaced, 1);
        }
        let c = self.counts;
        let ms = self.elapsed.as_millis() as u64;
        match &self.outcome {
            Outcome::Completed => {
                tracing::info!(file = %self.display, records = c.ingested, rejected = c.rejected, filtered = c.filtered, duration_ms = ms, "COMPLETED")
            }
            Outcome::Failed(error) => {
                tracing::error!(file = %self.display, records = c.ingested, rejected = c.rejected, duration_ms = ms, %error, "FAILED")
            }
            Outcome::Skipped(reason) => tracing::info!(file = %self.display, %reason, "skipped"),
            Outcome::Busy(reason) => tracing::warn!(file = %self.display, %reason, "busy"),
            Outcome::LeaseLost => {
                tracing::warn!(file = %self.display, records = c.ingested, "lease lost: another worker took the file over")
            }
        }
    }
}
