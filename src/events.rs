//! Owns the events worth telling: one function per event writes its log line (where the
//! event has one) and counts it in the metrics, so that the logs and `/metrics` never disagree.
//!
//! Callers pass plain values (this is a bottom module: it knows no pipeline or job types).
//! Events are per chunk, per file, per read buffer or per key, never per record. The two
//! totals the progress reporter shows as rates are also kept here ([`totals`]), since the
//! `metrics` crate's counters cannot be read back.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::instruments;

/// How a file ended in an attempt, as the log line and `ingestor_files_total` tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileOutcome<'a> {
    Completed,
    /// With the error.
    Failed(&'a str),
    /// With the reason.
    Skipped(&'a str),
    /// Another worker holds the file (`--no-wait`), with the reason; counted as skipped.
    Busy(&'a str),
    /// Another worker took the file over; the uncommitted chunk was rolled back.
    LeaseLost,
}

impl FileOutcome<'_> {
    /// The `outcome` label of `ingestor_files_total` (an index of `metrics::FILE_OUTCOMES`).
    fn label_index(self) -> usize {
        match self {
            Self::Completed => 0,
            Self::Failed(_) => 1,
            Self::Skipped(_) | Self::Busy(_) => 2,
            Self::LeaseLost => 3,
        }
    }
}

/// Records committed (of a chunk, or of a file in this attempt).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Records {
    pub ingested: u64,
    pub rejected: u64,
    pub filtered: u64,
}

/// A file's attempt ended: its one log line, `ingestor_files_total{outcome}`,
/// `ingestor_files_replaced_total`, and `ingestor_file_duration_seconds` for a file that
/// ended COMPLETED or FAILED.
pub fn file_finished(
    file: &str,
    outcome: FileOutcome<'_>,
    records: Records,
    elapsed: Duration,
    replaced: bool,
) {
    let m = instruments();
    m.files[outcome.label_index()].increment(1);
    if replaced {
        m.files_replaced.increment(1);
    }
    if matches!(outcome, FileOutcome::Completed | FileOutcome::Failed(_)) {
        m.file_duration_seconds.record(elapsed.as_secs_f64());
    }
    let Records {
        ingested,
        rejected,
        filtered,
    } = records;
    let ms = elapsed.as_millis() as u64;
    match outcome {
        FileOutcome::Completed => {
            tracing::info!(
                file = %file,
                records = ingested,
                rejected,
                filtered,
                duration_ms = ms,
                "COMPLETED"
            )
        }
        FileOutcome::Failed(error) => {
            tracing::error!(file = %file, records = ingested, rejected, duration_ms = ms, %error, "FAILED")
        }
        FileOutcome::Skipped(reason) => tracing::info!(file = %file, %reason, "skipped"),
        FileOutcome::Busy(reason) => tracing::warn!(file = %file, %reason, "busy"),
        FileOutcome::LeaseLost => {
            tracing::warn!(
                file = %file,
                records = ingested,
                "lease lost: another worker took the file over"
            )
        }
    }
}

/// A chunk transaction committed after `elapsed` (from its first piece to COMMIT):
/// `ingestor_copy_chunks_total`, `ingestor_copy_seconds_total`,
/// `ingestor_chunk_commit_seconds` and the chunk's records; the run loop moved (readiness).
pub fn chunk_committed(elapsed: Duration, records: Records) {
    let m = instruments();
    m.copy_chunks.increment(1);
    m.copy_seconds.add(elapsed);
    m.chunk_commit_seconds.record(elapsed.as_secs_f64());
    m.records_ingested.increment(records.ingested);
    m.records_rejected.increment(records.rejected);
    m.records_filtered.increment(records.filtered);
    TOTALS
        .records_ingested
        .fetch_add(records.ingested, Ordering::Relaxed);
    crate::health::progressed(crate::health::Progress::Commit);
}

/// A record whose row the database refused was stored in `rejected_records`, in a
/// transaction of its own.
pub fn lone_row_rejected() {
    instruments().records_rejected.increment(1);
}

/// `n` bytes were read from a source (as stored: compressed when compressed).
pub fn bytes_read(n: u64) {
    instruments().read_bytes.increment(n);
    TOTALS.bytes_read.fetch_add(n, Ordering::Relaxed);
}

/// A listed key cannot be stored as a job: logged, and counted in
/// `ingestor_keys_skipped_total`.
pub fn key_skipped(key: &str, reason: &str) {
    instruments().keys_skipped.increment(1);
    tracing::warn!(key = ?key, reason, "key skipped");
}

/// A walk skipped a local entry (a link not followed, a FIFO, a name that is not text...):
/// logged, and counted in `ingestor_keys_skipped_total`.
pub fn entry_skipped(path: &Path, reason: &str, detail: Option<&str>) {
    instruments().keys_skipped.increment(1);
    // Debug formatting escapes control characters and shows non-UTF-8 bytes as escapes.
    match detail {
        Some(detail) => tracing::warn!(path = ?path, reason, detail, "skipped"),
        None => tracing::warn!(path = ?path, reason, "skipped"),
    }
}

/// A full listing found `n` new objects that nothing else could have: keys sorting before
/// the listing mark, which listings of the keys after the mark could not see, or, with
/// notifications, objects no notification reported
/// (`ingestor_objects_found_by_full_listing_total`).
pub fn found_by_full_listing(n: u64) {
    instruments().found_by_full_listing.increment(n);
}

/// A notification message reported objects the run takes, now recorded as jobs
/// (`ingestor_notifications_total{outcome="registered"}`); deleted next.
pub fn notification_registered(message_id: &str) {
    instruments().notifications[0].increment(1);
    tracing::debug!(message_id, "notification registered");
}

/// A notification message about nothing the run takes (S3's test event, another bucket, a
/// key outside the prefix, an event other than a creation): logged with why, counted
/// (`ingestor_notifications_total{outcome="ignored"}`), and deleted.
pub fn notification_ignored(message_id: &str, why: &str) {
    instruments().notifications[1].increment(1);
    tracing::info!(message_id, why, "notification ignored; deleting it");
}

/// A notification message that cannot be read: logged with its id and the cause, counted
/// (`ingestor_notifications_total{outcome="unreadable"}`), and left in the queue (its
/// redrive policy moves it to a dead-letter queue after a few receives).
pub fn notification_unreadable(message_id: &str, cause: &str) {
    instruments().notifications[2].increment(1);
    tracing::warn!(
        message_id,
        cause = %crate::text::printable(cause),
        "notification cannot be read; left in the queue (for its dead-letter queue)"
    );
}

/// An attempt after a file's first one started (`ingestor_retries_total`).
pub fn retry() {
    instruments().retries.increment(1);
}

/// A file was claimed from a worker whose lease had expired
/// (`ingestor_lease_takeovers_total`).
pub fn lease_takeover() {
    instruments().lease_takeovers.increment(1);
}

/// An object's Parquet files were published to the lake.
pub fn parquet_published(files: u64, bytes: u64) {
    let m = instruments();
    m.parquet_files.increment(files);
    m.parquet_bytes.increment(bytes);
}

/// An object was committed `lag` after its upload: the `ingestor_ingestion_lag_seconds`
/// histogram and, beside it, the older pair of counters (sum and count).
pub fn ingestion_lag(lag: Duration) {
    let m = instruments();
    m.ingestion_lag_seconds.record(lag.as_secs_f64());
    m.lag_seconds.add(lag);
    m.lag_count.increment(1);
}

/// Process-wide totals the progress reporter reads back.
struct Totals {
    records_ingested: AtomicU64,
    bytes_read: AtomicU64,
}

static TOTALS: Totals = Totals {
    records_ingested: AtomicU64::new(0),
    bytes_read: AtomicU64::new(0),
};

/// Records ingested and bytes read by this process so far (what
/// `ingestor_records_ingested_total` and `ingestor_read_bytes_total` count).
pub fn totals() -> (u64, u64) {
    (
        TOTALS.records_ingested.load(Ordering::Relaxed),
        TOTALS.bytes_read.load(Ordering::Relaxed),
    )
}

#[cfg(test)]
mod tests {
    //! The process's metrics are shared by the tests of this binary: deltas are checked with
    //! values no other test records (hours-long files and chunks, days of lag).

    use super::*;
    use crate::metrics::test_value as value;

    fn beyond(histogram: &str, le: &str) -> f64 {
        value(&format!("{histogram}_bucket{{le=\"+Inf\"}}"))
            - value(&format!("{histogram}_bucket{{le=\"{le}\"}}"))
    }

    #[test]
    fn a_finished_file_is_counted_by_outcome_and_timed_when_it_ended() {
        let files =
            |outcome: &str| value(&format!("ingestor_files_total{{outcome=\"{outcome}\"}}"));
        let duration = "ingestor_file_duration_seconds";
        let (completed, skipped, lost) =
            (files("completed"), files("skipped"), files("lease_lost"));
        let replaced = value("ingestor_files_replaced_total");
        let (sum, long) = (value(&format!("{duration}_sum")), beyond(duration, "3600"));
        let records = Records {
            ingested: 3,
            rejected: 1,
            filtered: 0,
        };
        let hours = |h: u64| Duration::from_secs(h * 3600);
        file_finished("a.json", FileOutcome::Completed, records, hours(2), true);
        file_finished(
            "b.json",
            FileOutcome::Skipped("done"),
            records,
            hours(5),
            false,
        );
        file_finished(
            "c.json",
            FileOutcome::Busy("held"),
            records,
            hours(5),
            false,
        );
        file_finished("d.json", FileOutcome::LeaseLost, records, hours(5), false);
        assert!(files("completed") >= completed + 1.0);
        assert!(files("skipped") >= skipped + 2.0, "busy counts as skipped");
        assert!(files("lease_lost") >= lost + 1.0);
        assert!(value("ingestor_files_replaced_total") >= replaced + 1.0);
        // The completed file's two hours are timed; the others' five hours are not.
        let timed = value(&format!("{duration}_sum")) - sum;
        assert!((7200.0..5.0 * 3600.0).contains(&timed), "{timed} s timed");
        assert_eq!(beyond(duration, "3600"), long + 1.0);
    }

    #[test]
    fn a_committed_chunk_counts_its_records_and_its_latency() {
        let names = [
            "ingestor_copy_chunks_total",
            "ingestor_copy_seconds_total",
            "ingestor_records_ingested_total",
            "ingestor_records_rejected_total",
            "ingestor_records_filtered_total",
        ];
        let before = names.map(value);
        let (ingested, _) = totals();
        let slow = beyond("ingestor_chunk_commit_seconds", "60");
        let records = Records {
            ingested: 70,
            rejected: 2,
            filtered: 5,
        };
        chunk_committed(Duration::from_secs(90), records);
        let grown: Vec<f64> = names
            .iter()
            .zip(before)
            .map(|(n, b)| value(n) - b)
            .collect();
        assert!(grown[0] >= 1.0, "{grown:?}");
        assert!(grown[1] >= 90.0, "{grown:?}");
        assert!(
            grown[2] >= 70.0 && grown[3] >= 2.0 && grown[4] >= 5.0,
            "{grown:?}"
        );
        assert!(totals().0 >= ingested + 70, "progress sees the records");
        assert_eq!(beyond("ingestor_chunk_commit_seconds", "60"), slow + 1.0);
    }

    #[test]
    fn an_ingestion_lag_feeds_the_histogram_and_the_old_counters() {
        let lag = "ingestor_ingestion_lag_seconds";
        let (sum, count) = (
            value("ingestor_ingestion_lag_seconds_total"),
            value("ingestor_ingestion_lag_count_total"),
        );
        let (week, hist_count) = (beyond(lag, "604800"), value(&format!("{lag}_count")));
        ingestion_lag(Duration::from_secs(10 * 86400));
        assert!(value("ingestor_ingestion_lag_seconds_total") >= sum + 864000.0);
        assert!(value("ingestor_ingestion_lag_count_total") >= count + 1.0);
        assert!(value(&format!("{lag}_count")) >= hist_count + 1.0);
        assert_eq!(beyond(lag, "604800"), week + 1.0);
    }

    #[test]
    fn bytes_read_reach_the_metric_and_the_progress_totals() {
        let (metric, (_, bytes)) = (value("ingestor_read_bytes_total"), totals());
        bytes_read(4096);
        assert!(value("ingestor_read_bytes_total") >= metric + 4096.0);
        assert!(totals().1 >= bytes + 4096);
    }
}
