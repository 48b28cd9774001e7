//! One file's journey: claim -> read -> decompress -> frame and decode (blocking thread)
//! -> transform and encode -> chunk transactions (COPY + checkpoint) -> COMPLETED.
//!
//! Delivery policy, enforced in [`commit`]: a chunk's rows, its rejected records and the
//! file's checkpoint commit in one transaction guarded by the lease token. After a crash,
//! the next claim resumes at the checkpoint by skipping that many records, so every record
//! lands exactly once without `ON CONFLICT` or a dedup table. A file counts as done only
//! when the transaction that marks it COMPLETED has committed.
//!
//! With a Parquet sink ([`crate::lake`]) the transform's output also feeds a writer stage,
//! and a file is one chunk: its Parquet files are published, and recorded in the job, in the
//! transaction that marks it COMPLETED (`lake_stage`).
//!
//! Stages are joined by bounded channels, so memory is bounded by the batch size and the
//! number of files in flight, never by the size of a file.

mod commit;
mod decode_stage;
mod file;
mod lake_stage;
mod preview;
mod reject_spool;

use std::time::Duration;

pub use file::{
    Cancel, FatalError, FileError, FileOptions, FileReport, FileTask, Ingest, Outcome, Resume,
    ingest_file, ingest_file_with, process_claimed,
};
pub use preview::{Preview, preview};

use crate::jobs::ChunkCounts;

/// Tuning of the pipeline. Defaults are the measured sweet spots; see README.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Records per Arrow batch (decode and transform). Default 4,096.
    pub batch_records: usize,
    /// Bytes of JSON after which a batch is cut even with fewer records. Default 64 MiB.
    /// Keeps a batch's memory bounded when records are large, and its text within Arrow's
    /// 32-bit string offsets.
    pub batch_bytes: usize,
    /// Records per chunk transaction (COPY + checkpoint). Default 50,000.
    pub chunk_records: usize,
    /// Bytes of JSON after which a chunk is cut even with fewer records. Default 64 MiB.
    /// Chunks stream into their COPY batch by batch, so this sets transaction size (and
    /// the work redone after a crash), not memory.
    pub chunk_bytes: usize,
    /// How long a claim stays valid without a heartbeat. Default 60 s.
    pub lease: Duration,
    /// Wait before a failed file may be tried again by `run`, doubled per attempt.
    /// Default 30 s.
    pub retry_after: Duration,
    /// Longest wait between attempts. Default one hour.
    pub retry_cap: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_records: 4096,
            batch_bytes: 64 << 20,
            chunk_records: 50_000,
            chunk_bytes: 64 << 20,
            lease: Duration::from_secs(60),
            retry_after: Duration::from_secs(30),
            retry_cap: Duration::from_secs(3600),
        }
    }
}

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
