//! Owns the process's Prometheus metrics: names, help texts, histogram buckets, the recorder
//! of the `metrics` crate that holds the values, and their text ([`render`]), which
//! `crate::endpoint` serves on `/metrics` (`--metrics-addr`).
//!
//! Values are recorded by `crate::events` (one call per event: its log line and its count),
//! per chunk or per file, never per record. The exposition is the classic Prometheus text
//! format (`version=0.0.4`) rendered by `metrics-exporter-prometheus`. Its counters are
//! integers, so the two counters of seconds (`ingestor_copy_seconds_total`,
//! `ingestor_ingestion_lag_seconds_total`) are kept in microseconds here and appended to its
//! text as fractional counters, as they always were served.

use std::fmt::Write as _;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::{Counter, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// The outcomes `ingestor_files_total` is labelled with, all present from the start.
pub const FILE_OUTCOMES: [&str; 4] = ["completed", "failed", "skipped", "lease_lost"];

/// `ingestor_files_total`.
const FILES: &str = "ingestor_files_total";

/// The outcomes `ingestor_notifications_total` is labelled with (received messages):
/// `registered` (it reported objects the run takes; deleted once they were recorded),
/// `ignored` (a test event, another bucket, a key outside the prefix...: deleted),
/// `unreadable` (left in the queue).
pub const NOTIFICATION_OUTCOMES: [&str; 3] = ["registered", "ignored", "unreadable"];

/// `ingestor_notifications_total`.
const NOTIFICATIONS: &str = "ingestor_notifications_total";

/// A histogram: name, help text, upper bounds of its buckets (seconds).
struct HistogramSpec {
    name: &'static str,
    help: &'static str,
    buckets: &'static [f64],
}

/// `ingestor_chunk_commit_seconds`: one chunk transaction, from its first piece to COMMIT.
const CHUNK_COMMIT_SECONDS: &str = "ingestor_chunk_commit_seconds";
/// `ingestor_file_duration_seconds`: one file's processing in one attempt.
const FILE_DURATION_SECONDS: &str = "ingestor_file_duration_seconds";
/// `ingestor_ingestion_lag_seconds`: from an object's upload (last-modified) to its commit.
const INGESTION_LAG_SECONDS: &str = "ingestor_ingestion_lag_seconds";

const HISTOGRAMS: [HistogramSpec; 3] = [
    HistogramSpec {
        name: CHUNK_COMMIT_SECONDS,
        help: "Chunk transactions (COPY + rejects + checkpoint), from the chunk's first piece to COMMIT.",
        buckets: &[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ],
    },
    HistogramSpec {
        name: FILE_DURATION_SECONDS,
        help: "Processing time of a file that ended COMPLETED or FAILED in an attempt.",
        buckets: &[
            0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            3600.0,
        ],
    },
    HistogramSpec {
        name: INGESTION_LAG_SECONDS,
        help: "Lag between an object's upload (last-modified) and the commit of its last chunk.",
        buckets: &[
            1.0, 5.0, 15.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0,
            86400.0, 604800.0,
        ],
    },
];

/// A counter of seconds with a fraction, kept in microseconds (the exporter's counters are
/// integers) and rendered by [`render`] after the exporter's text.
pub struct SecondsCounter {
    name: &'static str,
    help: &'static str,
    micros: AtomicU64,
}

impl SecondsCounter {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            micros: AtomicU64::new(0),
        }
    }

    pub fn add(&self, elapsed: Duration) {
        self.micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let name = self.name;
        let seconds = self.micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "# HELP {name} {}\n# TYPE {name} counter\n{name} {seconds:.6}\n",
            self.help
        );
    }
}

/// The handles events record into. Every series exists (at 0) as soon as this is built.
pub struct Instruments {
    /// `ingestor_files_total{outcome}`, in the order of [`FILE_OUTCOMES`].
    pub files: [Counter; 4],
    pub files_replaced: Counter,
    /// `ingestor_notifications_total{outcome}`, in the order of [`NOTIFICATION_OUTCOMES`].
    pub notifications: [Counter; 3],
    pub records_ingested: Counter,
    pub records_rejected: Counter,
    pub records_filtered: Counter,
    /// Bytes read from sources (as stored: compressed when the file is).
    pub read_bytes: Counter,
    pub copy_chunks: Counter,
    /// Time spent in chunk transactions (COPY + checkpoint).
    pub copy_seconds: SecondsCounter,
    /// Attempts after the first one (files claimed again after a failure or a takeover).
    pub retries: Counter,
    /// Claims of files whose previous lease had expired (stuck jobs taken over).
    pub lease_takeovers: Counter,
    /// New objects a full listing found before the listing mark.
    pub found_by_full_listing: Counter,
    pub parquet_files: Counter,
    pub parquet_bytes: Counter,
    /// Sum and count of the lags between an object's last-modified time and its completion.
    pub lag_seconds: SecondsCounter,
    pub lag_count: Counter,
    /// Keys and local entries discovery skipped (links not followed, FIFOs, names that are
    /// not text, keys that cannot be stored).
    pub keys_skipped: Counter,
    pub chunk_commit_seconds: Histogram,
    pub file_duration_seconds: Histogram,
    pub ingestion_lag_seconds: Histogram,
    handle: PrometheusHandle,
}

static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Histogram samples wait in the recorder until they are folded into the buckets, by a
/// render or by this upkeep: without a scrape they would pile up.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| {
    let mut builder = PrometheusBuilder::new();
    for spec in &HISTOGRAMS {
        builder = builder
            .set_buckets_for_metric(Matcher::Full(spec.name.into()), spec.buckets)
            .expect("buckets are not empty");
    }
    let recorder = builder.build_recorder();
    // Each series is described (HELP) and registered (served at 0 from now on) at once.
    let counter = |name: &'static str, help: &'static str| {
        recorder.describe_counter(name.into(), None, help.into());
        recorder.register_counter(&Key::from_static_name(name), &METADATA)
    };
    recorder.describe_counter(FILES.into(), None, "Files processed, by outcome.".into());
    let files = FILE_OUTCOMES.map(|outcome| {
        let key = Key::from_parts(FILES, vec![Label::new("outcome", outcome)]);
        recorder.register_counter(&key, &METADATA)
    });
    recorder.describe_counter(
        NOTIFICATIONS.into(),
        None,
        "Bucket notification messages received, by outcome.".into(),
    );
    let notifications = NOTIFICATION_OUTCOMES.map(|outcome| {
        let key = Key::from_parts(NOTIFICATIONS, vec![Label::new("outcome", outcome)]);
        recorder.register_counter(&key, &METADATA)
    });
    let [
        chunk_commit_seconds,
        file_duration_seconds,
        ingestion_lag_seconds,
    ] = HISTOGRAMS.map(|spec| {
        recorder.describe_histogram(spec.name.into(), None, spec.help.into());
        recorder.register_histogram(&Key::from_static_name(spec.name), &METADATA)
    });
    let instruments = Instruments {
        files,
        notifications,
        files_replaced: counter(
            "ingestor_files_replaced_total",
            "Objects ingested again as a new version, their old rows replaced.",
        ),
        records_ingested: counter(
            "ingestor_records_ingested_total",
            "Records written to the target table.",
        ),
        records_rejected: counter(
            "ingestor_records_rejected_total",
            "Records kept in rejected_records.",
        ),
        records_filtered: counter(
            "ingestor_records_filtered_total",
            "Records removed by the transform.",
        ),
        read_bytes: counter(
            "ingestor_read_bytes_total",
            "Bytes read from sources, as stored.",
        ),
        copy_chunks: counter(
            "ingestor_copy_chunks_total",
            "Chunk transactions committed (COPY + checkpoint).",
        ),
        copy_seconds: SecondsCounter::new(
            "ingestor_copy_seconds_total",
            "Time spent in chunk transactions.",
        ),
        retries: counter(
            "ingestor_retries_total",
            "Attempts after a file's first one.",
        ),
        lease_takeovers: counter(
            "ingestor_lease_takeovers_total",
            "Files taken over from a worker whose lease expired.",
        ),
        found_by_full_listing: counter(
            "ingestor_objects_found_by_full_listing_total",
            "New objects only a full listing found: keys sorting before the listing mark (invisible to incremental listings), or, with notifications, objects no notification reported.",
        ),
        parquet_files: counter(
            "ingestor_parquet_files_total",
            "Parquet files published to the lake.",
        ),
        parquet_bytes: counter(
            "ingestor_parquet_bytes_total",
            "Bytes of the Parquet files published to the lake.",
        ),
        lag_seconds: SecondsCounter::new(
            "ingestor_ingestion_lag_seconds_total",
            "Sum of the lags between an object's upload and its ingestion.",
        ),
        lag_count: counter(
            "ingestor_ingestion_lag_count_total",
            "Objects whose ingestion lag is in the sum.",
        ),
        keys_skipped: counter(
            "ingestor_keys_skipped_total",
            "Keys and local entries discovery skipped (symlinks, FIFOs, names that are not text).",
        ),
        chunk_commit_seconds,
        file_duration_seconds,
        ingestion_lag_seconds,
        handle: recorder.handle(),
    };
    // The handles above record into this recorder whatever the global one is; installing
    // it also takes the `metrics::counter!` family of macros, should any code use them.
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::debug!("another metrics recorder is installed; ingestor's metrics are kept apart");
    }
    let handle = instruments.handle.clone();
    let upkeep = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = upkeep {
        tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms are folded on each scrape only");
    }
    instruments
});

/// The process's instruments, built and installed on first use (once per process).
pub fn instruments() -> &'static Instruments {
    &INSTRUMENTS
}

/// Builds and installs the recorder now, so that every series is served from the start.
pub fn install() {
    LazyLock::force(&INSTRUMENTS);
}

/// The Prometheus text exposition format.
pub fn render() -> String {
    let instruments = instruments();
    let mut out = instruments.handle.render();
    instruments.copy_seconds.render(&mut out);
    instruments.lag_seconds.render(&mut out);
    out
}

/// The value of one series (`name` or `name{labels}`) in a text exposition.
#[cfg(test)]
pub(crate) fn value_in(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        line.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The value of one series as `/metrics` serves it now.
#[cfg(test)]
pub(crate) fn test_value(series: &str) -> f64 {
    let body = render();
    value_in(&body, series).unwrap_or_else(|| panic!("{series} missing in:\n{body}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every name the README lists (dashboards depend on them), with its type and help.
    const OLD_COUNTERS: [&str; 14] = [
        "ingestor_files_replaced_total",
        "ingestor_records_ingested_total",
        "ingestor_records_rejected_total",
        "ingestor_records_filtered_total",
        "ingestor_read_bytes_total",
        "ingestor_copy_chunks_total",
        "ingestor_copy_seconds_total",
        "ingestor_retries_total",
        "ingestor_lease_takeovers_total",
        "ingestor_parquet_files_total",
        "ingestor_parquet_bytes_total",
        "ingestor_ingestion_lag_seconds_total",
        "ingestor_ingestion_lag_count_total",
        "ingestor_keys_skipped_total",
    ];

    #[test]
    fn every_series_is_served_from_the_start_with_its_type_and_help() {
        install();
        let body = render();
        assert!(
            body.contains("# TYPE ingestor_files_total counter\n"),
            "{body}"
        );
        assert!(
            body.contains("# HELP ingestor_files_total Files processed, by outcome.\n"),
            "{body}"
        );
        for outcome in FILE_OUTCOMES {
            let series = format!("ingestor_files_total{{outcome=\"{outcome}\"}}");
            assert!(value_in(&body, &series).is_some(), "{series} in:\n{body}");
        }
        for outcome in NOTIFICATION_OUTCOMES {
            let series = format!("ingestor_notifications_total{{outcome=\"{outcome}\"}}");
            assert!(value_in(&body, &series).is_some(), "{series} in:\n{body}");
        }
        for name in OLD_COUNTERS {
            assert!(
                body.contains(&format!("# TYPE {name} counter\n")),
                "{name}:\n{body}"
            );
            assert!(body.contains(&format!("# HELP {name} ")), "{name}:\n{body}");
            assert!(value_in(&body, name).is_some(), "{name}:\n{body}");
        }
        for spec in &HISTOGRAMS {
            let name = spec.name;
            assert!(
                body.contains(&format!("# TYPE {name} histogram\n")),
                "{name}:\n{body}"
            );
            assert!(
                body.contains(&format!("# HELP {name} {}\n", spec.help)),
                "{body}"
            );
            for le in spec.buckets {
                let series = format!("{name}_bucket{{le=\"{le}\"}}");
                assert!(value_in(&body, &series).is_some(), "{series} in:\n{body}");
            }
            for series in [
                format!("{name}_bucket{{le=\"+Inf\"}}"),
                format!("{name}_sum"),
                format!("{name}_count"),
            ] {
                assert!(value_in(&body, &series).is_some(), "{series} in:\n{body}");
            }
        }
    }

    #[test]
    fn seconds_counters_keep_their_fraction() {
        let counter = SecondsCounter::new("ingestor_test_seconds_total", "A test.");
        counter.add(Duration::from_micros(1_500_250));
        counter.add(Duration::from_millis(2));
        let mut out = String::new();
        counter.render(&mut out);
        assert_eq!(
            out,
            "# HELP ingestor_test_seconds_total A test.\n\
             # TYPE ingestor_test_seconds_total counter\n\
             ingestor_test_seconds_total 1.502250\n\n"
        );
    }

    #[test]
    fn install_is_idempotent() {
        install();
        install();
        let handle = &instruments().handle;
        assert!(std::ptr::eq(handle, &instruments().handle));
        assert!(render().contains("ingestor_copy_chunks_total"));
    }
}
