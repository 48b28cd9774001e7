//! Process-wide counters and their Prometheus text exposition (`--metrics-addr`).
//!
//! Counters are updated per chunk or per file, never per record. Names follow
//! `ingestor_<noun>_<unit>_total`; the only label is a file's outcome (low cardinality).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub files_completed: AtomicU64,
    pub files_failed: AtomicU64,
    pub files_skipped: AtomicU64,
    pub files_lease_lost: AtomicU64,
    /// Objects ingested again as a new version.
    pub files_replaced: AtomicU64,
    pub records_ingested: AtomicU64,
    pub records_rejected: AtomicU64,
    pub records_filtered: AtomicU64,
    /// Bytes read from sources (as stored: compressed when gzipped).
    pub bytes_read: AtomicU64,
    pub copy_chunks: AtomicU64,
    /// Time spent in chunk transactions (COPY + checkpoint), in microseconds.
    pub copy_micros: AtomicU64,
    /// Attempts after the first one (files claimed again after a failure or a takeover).
    pub retries: AtomicU64,
    /// Claims of files whose previous lease had expired (stuck jobs taken over).
    pub lease_takeovers: AtomicU64,
    /// Sum and count of the lag between an object's last-modified time and its completion.
    pub lag_millis_sum: AtomicU64,
    pub lag_count: AtomicU64,
    /// Parquet files published to the lake, and their bytes.
    pub parquet_files: AtomicU64,
    pub parquet_bytes: AtomicU64,
    /// Keys and local entries discovery skipped (links not followed, FIFOs, names that are
    /// not text, keys that cannot be stored).
    pub keys_skipped: AtomicU64,
}

/// The process's counters.
pub static METRICS: Metrics = Metrics {
    files_completed: AtomicU64::new(0),
    files_failed: AtomicU64::new(0),
    files_skipped: AtomicU64::new(0),
    files_lease_lost: AtomicU64::new(0),
    files_replaced: AtomicU64::new(0),
    records_ingested: AtomicU64::new(0),
    records_rejected: AtomicU64::new(0),
    records_filtered: AtomicU64::new(0),
    bytes_read: AtomicU64::new(0),
    copy_chunks: AtomicU64::new(0),
    copy_micros: AtomicU64::new(0),
    retries: AtomicU64::new(0),
    lease_takeovers: AtomicU64::new(0),
    lag_millis_sum: AtomicU64::new(0),
    lag_count: AtomicU64::new(0),
    parquet_files: AtomicU64::new(0),
    parquet_bytes: AtomicU64::new(0),
    keys_skipped: AtomicU64::new(0),
};

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Adds `n` to `counter`.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Metrics {
    /// Records one chunk transaction.
    pub fn chunk(&self, elapsed: Duration) {
        add(&self.copy_chunks, 1);
        add(&self.copy_micros, elapsed.as_micros() as u64);
    }

    /// The Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let files = [
            ("completed", &self.files_completed),
            ("failed", &self.files_failed),
            ("skipped", &self.files_skipped),
            ("lease_lost", &self.files_lease_lost),
        ];
        let _ = writeln!(
            out,
            "# HELP ingestor_files_total Files processed, by outcome."
        );
        let _ = writeln!(out, "# TYPE ingestor_files_total counter");
        for (outcome, value) in files {
            let _ = writeln!(
                out,
                "ingestor_files_total{{outcome=\"{outcome}\"}} {}",
                get(value)
            );
        }
        let seconds = |micros: u64| format!("{:.6}", micros as f64 / 1e6);
        let counters = [
            (
                "ingestor_files_replaced_total",
                "Objects ingested again as a new version, their old rows replaced.",
                get(&self.files_replaced).to_string(),
            ),
            (
                "ingestor_records_ingested_total",
                "Records written to the target table.",
                get(&self.records_ingested).to_string(),
            ),
            (
                "ingestor_records_rejected_total",
                "Records kept in rejected_records.",
                get(&self.records_rejected).to_string(),
            ),
            (
                "ingestor_records_filtered_total",
                "Records removed by the transform.",
                get(&self.records_filtered).to_string(),
            ),
            (
                "ingestor_read_bytes_total",
                "Bytes read from sources, as stored.",
                get(&self.bytes_read).to_string(),
            ),
            (
                "ingestor_copy_chunks_total",
                "Chunk transactions committed (COPY + checkpoint).",
                get(&self.copy_chunks).to_string(),
            ),
            (
                "ingestor_copy_seconds_total",
                "Time spent in chunk transactions.",
                seconds(get(&self.copy_micros)),
            ),
            (
                "ingestor_retries_total",
                "Attempts after a file's first one.",
                get(&self.retries).to_string(),
            ),
            (
                "ingestor_lease_takeovers_total",
                "Files taken over from a worker whose lease expired.",
                get(&self.lease_takeovers).to_string(),
            ),
            (
                "ingestor_parquet_files_total",
                "Parquet files published to the lake.",
                get(&self.parquet_files).to_string(),
            ),
            (
                "ingestor_parquet_bytes_total",
                "Bytes of the Parquet files published to the lake.",
                get(&self.parquet_bytes).to_string(),
            ),
            (
                "ingestor_ingestion_lag_seconds_total",
                "Sum of the lags between an object's upload and its ingestion.",
                seconds(get(&self.lag_millis_sum) * 1000),
            ),
            (
                "ingestor_ingestion_lag_count_total",
                "Objects whose ingestion lag is in the sum.",
                get(&self.lag_count).to_string(),
            ),
            (
                "ingestor_keys_skipped_total",
                "Keys and local entries discovery skipped (symlinks, FIFOs, names that are not text).",
                get(&self.keys_skipped).to_string(),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        }
        out
    }
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(addr: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await;
                let body = METRICS.render();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok(local)
}
