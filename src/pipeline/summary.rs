//! The totals of a pass, for the summary line and the exit status.

use crate::jobs::ChunkCounts;

use super::report::{FileReport, Outcome};

/// Totals of a pass, for the summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub files_completed: u64,
    pub files_failed: u64,
    pub files_skipped: u64,
    pub records_ingested: u64,
    pub records_rejected: u64,
    pub records_filtered: u64,
    /// Objects ingested again as a new version, their old rows replaced.
    pub files_replaced: u64,
    /// Files another worker held (`ingest-file --no-wait`): not done.
    pub files_busy: u64,
    /// Records the transform read, shown for whole-file plans (see [`Summary::shown`]),
    /// whose rows written are not the records read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_read: Option<u64>,
    #[serde(skip)]
    read: u64,
}

impl Summary {
    pub fn add(&mut self, report: &FileReport) {
        match report.outcome {
            Outcome::Completed => self.files_completed += 1,
            Outcome::Failed(_) => self.files_failed += 1,
            Outcome::Skipped(_) | Outcome::LeaseLost => self.files_skipped += 1,
            Outcome::Busy(_) => self.files_busy += 1,
        }
        if report.replaced {
            self.files_replaced += 1;
        }
        self.add_counts(report.counts);
    }

    fn add_counts(&mut self, counts: ChunkCounts) {
        self.records_ingested += counts.ingested;
        self.records_rejected += counts.rejected;
        self.records_filtered += counts.filtered;
        self.read += counts.read;
    }

    pub fn merge(&mut self, other: &Summary) {
        self.files_completed += other.files_completed;
        self.files_failed += other.files_failed;
        self.files_skipped += other.files_skipped;
        self.files_replaced += other.files_replaced;
        self.files_busy += other.files_busy;
        self.records_ingested += other.records_ingested;
        self.records_rejected += other.records_rejected;
        self.records_filtered += other.records_filtered;
        self.read += other.read;
    }

    /// The summary as shown: `records_read` added for a whole-file plan.
    pub fn shown(mut self, kind: &crate::transform::PlanKind) -> Self {
        self.records_read = kind.is_whole_file().then_some(self.read);
        self
    }

    /// The process exit status for this pass: 0, or 3 when a file failed or was left
    /// busy.
    pub fn exit_code(&self) -> i32 {
        if self.files_failed > 0 || self.files_busy > 0 {
            3
        } else {
            0
        }
    }
}
