//! The pipeline's tuning: batch and chunk sizes, the lease, retries.

use std::time::Duration;

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
    /// Small files ingested in one transaction by `run` at most. Default 64; 1 ingests
    /// each file alone.
    pub group_files: usize,
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
            group_files: 64,
            retry_cap: Duration::from_secs(3600),
        }
    }
}
