//! What the user typed: clap structures and validation only. `config` resolves them into
//! live objects; nothing else reads the environment.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "ingestor",
    version,
    about = "Streams JSON log files from S3 or local folders into PostgreSQL, exactly once."
)]
pub struct Cli {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,

    /// Log line format on stderr.
    #[arg(long, env = "INGESTOR_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending database migrations.
    Migrate(MigrateArgs),
    /// Ingest local files or directories (recursive).
    IngestFile(IngestFileArgs),
    /// Print the transform's output for one file, without touching the database.
    Preview(PreviewArgs),
    /// Ingest a bucket: pending and retryable jobs first, then new objects, oldest first.
    Run(RunArgs),
    /// Inspect and retry jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Write deterministic sample pino-style log files (for demos, tests and benchmarks).
    Generate(GenerateArgs),
    /// Upkeep of a Delta table written by `--sink delta=URL` (safe while ingestion runs).
    #[command(subcommand)]
    Lake(LakeCommand),
    /// Archive (optionally) and drop the whole days before a cut of a table partitioned by
    /// day (`migrate --partition-by day`), without stopping ingestion.
    Retention(RetentionArgs),
}

#[derive(Debug, Subcommand)]
pub enum LakeCommand {
    /// Compact the small files of each partition into files of about --target-mib; rows and
    /// partitions do not change.
    Optimize {
        /// The table: a folder or s3://bucket/prefix.
        url: String,
        /// Size of the files written, in MiB.
        #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u32).range(1..=4096))]
        target_mib: u32,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
        /// Seconds each S3 request may take (default 30).
        #[arg(long, env = "INGESTOR_S3_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        s3_timeout_secs: Option<u64>,
    },
    /// Delete files that no table version of the last --retention-hours needs, and files
    /// never committed (left by a writer that died) older than that.
    Vacuum {
        /// The table: a folder or s3://bucket/prefix.
        url: String,
        /// Versions of this many hours stay readable (time travel, readers still running).
        #[arg(long, default_value_t = 168.0, value_parser = hours)]
        retention_hours: f64,
        /// List nothing, delete nothing: count what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Print what was done as JSON.
        #[arg(long)]
        json: bool,
        /// Seconds each S3 request may take (default 30).
        #[arg(long, env = "INGESTOR_S3_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        s3_timeout_secs: Option<u64>,
    },
}

/// Hours, from 0 to ten years.
fn hours(value: &str) -> Result<f64, String> {
    let hours: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number of hours"))?;
    if !(0.0..=87_600.0).contains(&hours) {
        return Err(format!("{value} is out of range: 0 to 87600 hours"));
    }
    Ok(hours)
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// `day`: make `logs` a table partitioned by day (RANGE of its UUIDv7 id, see
    /// docs/partitions.md): an empty plain `logs` is rebuilt, one with rows is refused, one
    /// already partitioned by day is kept; today's and the next days' partitions are
    /// created. Without it, `logs` keeps whichever layout it has.
    #[arg(long, value_enum)]
    pub partition_by: Option<PartitionBy>,
}

/// How `migrate --partition-by` partitions `logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PartitionBy {
    /// One partition per UTC day of the records' time (plus one for records without).
    Day,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("cut").required(true).args(["before", "older_than"])))]
pub struct RetentionArgs {
    /// Drop the days before this UTC date (`YYYY-MM-DD`; the date itself is kept).
    #[arg(long, value_parser = parse_date)]
    pub before: Option<chrono::NaiveDate>,

    /// Drop the whole days that ended at least this long ago: a number and a unit, `30d`,
    /// `12h`, `90m`, `2w`.
    #[arg(long, value_parser = crate::retention::parse_duration)]
    pub older_than: Option<std::time::Duration>,

    /// Write each day's rows to a lake before dropping it: `parquet=URL` (a folder or
    /// s3://bucket/prefix, laid out as `--sink parquet` lays out its files) or `delta=URL`
    /// (a Delta table of the table's columns and `date`, one commit per day).
    #[arg(long, value_parser = parse_archive)]
    pub archive: Option<ArchiveArg>,

    /// Print the days that would be archived and dropped; change nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// The table: one partitioned by day.
    #[arg(long, env = "INGESTOR_TABLE", default_value = "logs")]
    pub table: String,

    /// Seconds a statement (detach, drop) waits for a lock before it gives up and is tried
    /// again (5 tries after the first, pauses doubling from 1 s).
    #[arg(long, default_value_t = 10.0, value_parser = seconds(0.1, 3_600.0))]
    pub lock_timeout_secs: f64,

    /// Seconds each S3 request of the archive may take (default 30).
    #[arg(long, env = "INGESTOR_S3_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub s3_timeout_secs: Option<u64>,

    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where `retention --archive` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchiveArg {
    Parquet(String),
    Delta(String),
}

fn parse_archive(value: &str) -> Result<ArchiveArg, String> {
    match value.split_once('=') {
        Some(("parquet", url)) if !url.is_empty() => Ok(ArchiveArg::Parquet(url.to_string())),
        Some(("delta", url)) if !url.is_empty() => Ok(ArchiveArg::Delta(url.to_string())),
        _ => Err(format!(
            "`{value}`: expected `parquet=URL` or `delta=URL` (a folder or s3://bucket/prefix)"
        )),
    }
}

fn parse_date(value: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .map_err(|e| format!("`{value}` is not a date YYYY-MM-DD: {e}"))
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The bucket (an S3 bucket, or a folder under --local-buckets).
    #[arg(long, env = "INGESTOR_BUCKET")]
    pub bucket: String,

    /// Only keys starting with this string, as in S3 (`logs/2024/`, or `logs/20` for
    /// `logs/2024/...` and `logs/2025/...`); a leading `/` is ignored.
    #[arg(long, env = "INGESTOR_PREFIX", default_value = "", value_parser = crate::jobs::Prefix::parse)]
    pub prefix: crate::jobs::Prefix,

    /// Serve buckets from this local folder (bucket B is the folder DIR/B) instead of S3.
    #[arg(long, env = "INGESTOR_LOCAL_BUCKETS")]
    pub local_buckets: Option<PathBuf>,

    /// Keys to take (glob on the key or the file name; repeatable). Default: *.json,
    /// *.jsonl, *.ndjson, *.log, each also with .gz, .zst, .bz2 or .xz (the compression is
    /// detected from the content).
    #[arg(long = "include", env = "INGESTOR_INCLUDE", value_delimiter = ',', value_parser = parse_glob)]
    pub include: Vec<String>,

    /// With --local-buckets: follow symbolic links met in the bucket folder (never out of
    /// it, never in a loop). Off: links are skipped with a warning.
    #[arg(long, env = "INGESTOR_FOLLOW_SYMLINKS")]
    pub follow_symlinks: bool,

    /// With --follow: the first pass lists the whole prefix, whatever the listing mark says
    /// (a pass without --follow always does).
    #[arg(long, env = "INGESTOR_FULL_SCAN")]
    pub full_scan: bool,

    /// With --follow: passes list only the keys after the greatest one listed so far (kept
    /// per bucket and prefix in the database, shared by every worker), and the whole prefix
    /// once the last full listing is older than this many seconds: it finds objects whose
    /// keys sort before that mark (a late upload under an earlier name) and replaced ones.
    /// 0: every pass lists the whole prefix.
    #[arg(long, env = "INGESTOR_RECONCILE_INTERVAL", default_value_t = 3600.0, value_parser = seconds(0.0, 30.0 * 86_400.0))]
    pub reconcile_interval: f64,

    /// With --follow: objects are recorded as the bucket's event notifications report them,
    /// received from this SQS queue (`sqs=https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE`;
    /// AWS_ENDPOINT_URL_SQS overrides where requests go). Passes then list nothing between
    /// the full listings of --reconcile-interval, which find what no notification reported.
    #[arg(long, env = "INGESTOR_NOTIFICATIONS", value_parser = parse_notifications, requires = "follow", conflicts_with = "local_buckets")]
    pub notifications: Option<Notifications>,

    /// With --notifications: seconds a receive waits for a message (long polling, 0 to 20).
    #[arg(long, env = "INGESTOR_NOTIFICATIONS_WAIT_SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=20))]
    pub notifications_wait_secs: u64,

    /// List what would be ingested (new and retryable objects, with sizes) without writing.
    #[arg(long, env = "INGESTOR_DRY_RUN")]
    pub dry_run: bool,

    /// Keep polling for new objects.
    #[arg(long, env = "INGESTOR_FOLLOW")]
    pub follow: bool,

    /// Objects COMPLETED for other destinations (another table or sink) are written again
    /// for this run's, their rows replaced; without it such objects make the run refuse
    /// to start.
    #[arg(long)]
    pub force: bool,

    /// What to do with a COMPLETED object that was replaced by a new version (another
    /// ETag, size or last-modified): `reingest` its new version, replacing its rows, or
    /// `ignore` it and keep the old rows.
    #[arg(long, env = "INGESTOR_ON_CHANGE", value_enum, default_value_t = crate::runner::OnChange::Reingest)]
    pub on_change: crate::runner::OnChange,

    /// Seconds between passes with --follow.
    #[arg(long, env = "INGESTOR_INTERVAL", default_value_t = 30.0, value_parser = seconds(0.1, 86_400.0))]
    pub interval: f64,

    /// Attempts before a failing file stays FAILED (until `jobs retry`).
    #[arg(long, env = "INGESTOR_MAX_ATTEMPTS", default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..))]
    pub max_attempts: i32,

    /// First retry delay in seconds; doubles per attempt (jittered), capped at one hour.
    #[arg(long, env = "INGESTOR_RETRY_BASE_SECS", default_value_t = 30.0, value_parser = seconds(0.0, 86_400.0))]
    pub retry_base_secs: f64,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// List jobs, ordered by bucket and key, a page at a time (`--limit`); when more follow,
    /// the last line says how to continue (`--after KEY`).
    List {
        #[arg(long)]
        bucket: Option<String>,
        #[arg(long, value_parser = ["PENDING", "PROCESSING", "COMPLETED", "FAILED"])]
        status: Option<String>,
        /// Only keys starting with this string (a leading `/` is ignored).
        #[arg(long, value_parser = crate::jobs::Prefix::parse)]
        prefix: Option<crate::jobs::Prefix>,
        /// Only jobs last updated at or after this time (RFC 3339, e.g.
        /// `2026-12-01T08:00:00Z`, or a date: its midnight UTC).
        #[arg(long, value_parser = parse_time)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only jobs last updated before this time (RFC 3339 or a date, as --since).
        #[arg(long, value_parser = parse_time)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// The next page: keys of --bucket after KEY (the previous page's last line says
        /// which). Pages walk the jobs by key without OFFSET, each job once.
        #[arg(long, value_name = "KEY", requires = "bucket")]
        after: Option<String>,
        /// Jobs per page.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(i64).range(1..=10_000_000))]
        limit: i64,
        /// One JSON object per line; when more jobs follow, a last line
        /// `{"next_after":KEY}` (null without --bucket).
        #[arg(long)]
        json: bool,
    },
    /// Counts by status, oldest pending job, last failure.
    Stats {
        #[arg(long)]
        bucket: Option<String>,
        /// Only keys starting with this string (a leading `/` is ignored).
        #[arg(long, value_parser = crate::jobs::Prefix::parse)]
        prefix: Option<crate::jobs::Prefix>,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Put FAILED jobs back to PENDING (attempts reset; committed records are kept).
    Retry {
        #[arg(long)]
        bucket: Option<String>,
        /// Every FAILED job (of --bucket and --prefix if given), in batches of
        /// 5,000 jobs, one transaction each.
        #[arg(long, conflicts_with = "keys", required_unless_present = "keys")]
        failed: bool,
        /// With --failed: only keys starting with this string (a leading `/` is ignored).
        #[arg(long, conflicts_with = "keys", value_parser = crate::jobs::Prefix::parse)]
        prefix: Option<crate::jobs::Prefix>,
        /// Keys of the jobs to retry (of --bucket, which they require: the same key may
        /// exist in several buckets).
        #[arg(requires = "bucket")]
        keys: Vec<String>,
    },
}

/// Options shared by the commands that write into the database.
#[derive(Debug, Clone, Args)]
pub struct PipelineArgs {
    /// DataFusion SQL over `raw_logs` replacing the built-in sql/transform.sql.
    #[arg(long, env = "INGESTOR_TRANSFORM")]
    pub transform: Option<PathBuf>,

    /// Target table (`name` or `schema.name`, case-sensitive).
    #[arg(long, env = "INGESTOR_TABLE", default_value = "logs")]
    pub table: String,

    /// Where rows go: `postgres` (the table), `parquet=URL` (a folder or
    /// s3://bucket/prefix, Hive-partitioned by day), `delta=URL` (a Delta table there,
    /// partitioned by `date`), or PostgreSQL and one lake (repeat, or separate by commas).
    #[arg(long = "sink", env = "INGESTOR_SINK", value_delimiter = ',', default_value = "postgres", value_parser = parse_sink)]
    pub sinks: Vec<SinkArg>,

    /// Parquet and Delta sinks: rows per row group at most.
    #[arg(long, env = "INGESTOR_PARQUET_ROW_GROUP_ROWS", default_value_t = 131_072, value_parser = clap::value_parser!(u32).range(1..))]
    pub parquet_row_group_rows: u32,

    /// Parquet and Delta sinks: MiB per row group at most (bounds the writer's memory per
    /// open file; the Delta sink's files are about this size).
    #[arg(long, env = "INGESTOR_PARQUET_ROW_GROUP_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub parquet_row_group_mib: u32,

    /// Parquet and Delta sinks: ZSTD compression level (1 fast .. 22 small).
    #[arg(long, env = "INGESTOR_PARQUET_ZSTD_LEVEL", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub parquet_zstd_level: i32,

    /// Files processed at once (each one its own COPY stream).
    #[arg(long, env = "INGESTOR_CONCURRENCY", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,

    /// `run`: small files (up to 256 KiB as stored) are ingested up to this many in one
    /// transaction, each still tracked and completed exactly once; 1 ingests each alone.
    #[arg(long, env = "INGESTOR_GROUP_FILES", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub group_files: u32,

    /// Records per chunk transaction (COPY + checkpoint).
    #[arg(long, env = "INGESTOR_CHUNK_RECORDS", default_value_t = 50_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_records: u32,

    /// MiB of JSON after which a chunk is cut even with fewer records.
    #[arg(long, env = "INGESTOR_CHUNK_MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub chunk_mib: u32,

    /// Records per Arrow batch.
    #[arg(long, env = "INGESTOR_BATCH_RECORDS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_records: u32,

    /// Seconds a claim on a file stays valid without a heartbeat.
    #[arg(long, env = "INGESTOR_LEASE_SECS", default_value_t = 60.0, value_parser = seconds(1.0, 86_400.0))]
    pub lease_secs: f64,

    /// Seconds to keep reconnecting (with backoff) to a database that stopped answering
    /// before giving up with exit status 1.
    #[arg(long, env = "INGESTOR_RECONNECT_SECS", default_value_t = 300.0, value_parser = seconds(0.0, 86_400.0))]
    pub reconnect_secs: f64,

    /// Print the summary as one JSON object on the last line of stdout.
    #[arg(long, env = "INGESTOR_JSON")]
    pub json: bool,

    /// No progress bar (periodic status lines in the logs instead).
    #[arg(long, env = "INGESTOR_QUIET")]
    pub quiet: bool,

    /// Seconds between status lines when there is no progress bar.
    #[arg(long, env = "INGESTOR_PROGRESS_INTERVAL", default_value_t = 10.0, value_parser = seconds(0.1, 86_400.0))]
    pub progress_interval: f64,

    /// Limit across the process: records written per second.
    #[arg(long, env = "INGESTOR_MAX_RECORDS_PER_SEC", value_parser = rate)]
    pub max_records_per_sec: Option<f64>,

    /// Limit across the process: bytes read from sources per second (as stored).
    #[arg(long, env = "INGESTOR_MAX_BYTES_PER_SEC", value_parser = rate)]
    pub max_bytes_per_sec: Option<f64>,

    /// Serve Prometheus metrics on HOST:PORT (path /metrics).
    #[arg(long, env = "INGESTOR_METRICS_ADDR")]
    pub metrics_addr: Option<String>,

    /// Seconds each S3 request may take (default 30). A read cut off by it resumes where it
    /// stopped, so objects of any size and speed finish.
    #[arg(long, env = "INGESTOR_S3_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub s3_timeout_secs: Option<u64>,
}

#[derive(Debug, Args)]
pub struct IngestFileArgs {
    /// Ingest files again even when COMPLETED, replacing the rows they produced before.
    #[arg(long, env = "INGESTOR_FORCE")]
    pub force: bool,

    /// Do not wait for a file another worker holds: report it as busy (`files_busy`,
    /// exit status 3). By default such a file is waited for until that worker finishes or
    /// its lease expires, then ingested.
    #[arg(long, env = "INGESTOR_NO_WAIT")]
    pub no_wait: bool,

    /// Follow symbolic links met while walking a directory (never out of it, never in a
    /// loop). Off: links are skipped with a warning; a path given here is always resolved.
    #[arg(long, env = "INGESTOR_FOLLOW_SYMLINKS")]
    pub follow_symlinks: bool,

    #[command(flatten)]
    pub pipeline: PipelineArgs,

    /// Files or directories.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// DataFusion SQL over `raw_logs` replacing the built-in sql/transform.sql.
    #[arg(long, env = "INGESTOR_TRANSFORM")]
    pub transform: Option<PathBuf>,

    /// Rows to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,

    /// Show the physical plan too.
    #[arg(long)]
    pub explain: bool,

    /// Seconds each S3 request may take (default 30); reads resume after it.
    #[arg(long, env = "INGESTOR_S3_TIMEOUT_SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub s3_timeout_secs: Option<u64>,

    /// A local path or s3://bucket/key.
    pub source: String,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Folder to write into.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of files.
    #[arg(long, default_value_t = 4)]
    pub files: usize,
    /// Records per file.
    #[arg(long, default_value_t = 1000)]
    pub records: u64,
    /// NDJSON instead of one JSON array per file.
    #[arg(long)]
    pub ndjson: bool,
    /// Plain JSON instead of gzip.
    #[arg(long)]
    pub plain: bool,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// gzip level (1 fast .. 9 small).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub gzip_level: u32,
}

/// Where `--notifications` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notifications {
    /// An SQS queue, by its URL.
    Sqs(String),
}

fn parse_notifications(value: &str) -> Result<Notifications, String> {
    match value.split_once('=') {
        Some(("sqs", url)) if url.starts_with("https://") || url.starts_with("http://") => {
            Ok(Notifications::Sqs(url.to_string()))
        }
        _ => Err(format!(
            "`{value}`: expected `sqs=QUEUE_URL` (https://sqs.REGION.amazonaws.com/ACCOUNT/QUEUE)"
        )),
    }
}

/// One `--sink`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkArg {
    /// The target table in PostgreSQL.
    Postgres,
    /// A Parquet lake at this URL.
    Parquet(String),
    /// A Delta table at this URL.
    Delta(String),
}

/// An include glob, checked when parsed (a bad one is a usage error).
fn parse_glob(value: &str) -> Result<String, String> {
    globset::Glob::new(value)
        .map(|_| value.to_string())
        .map_err(|e| format!("`{value}` is not a valid glob: {e}"))
}

/// Seconds as a decimal number within `min..=max`.
fn seconds(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |value: &str| {
        let secs: f64 = value
            .parse()
            .map_err(|_| format!("`{value}` is not a number of seconds"))?;
        if !(min..=max).contains(&secs) {
            return Err(format!("{value} is out of range: {min} to {max} seconds"));
        }
        Ok(secs)
    }
}

/// A point in time: RFC 3339 (`2026-12-01T08:00:00Z`, `2026-12-01T09:00:00+01:00`), or a
/// date (`2026-12-01`), taken as its midnight UTC.
fn parse_time(value: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(time) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(time.with_timezone(&chrono::Utc));
    }
    if let Ok(date) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        return Ok(date.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(format!(
        "`{value}` is not a time: expected RFC 3339 (2026-12-01T08:00:00Z) or a date (2026-12-01)"
    ))
}

/// A rate per second: a positive number up to 10^12 (leave the flag out for no limit).
fn rate(value: &str) -> Result<f64, String> {
    let per_sec: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    if !(per_sec > 0.0 && per_sec <= 1e12) {
        return Err(format!(
            "{value} is out of range: a rate above 0 and at most 10^12 per second (leave the flag out for no limit)"
        ));
    }
    Ok(per_sec)
}

fn parse_sink(value: &str) -> Result<SinkArg, String> {
    match value.split_once('=') {
        None if value == "postgres" => Ok(SinkArg::Postgres),
        Some(("parquet", url)) if !url.is_empty() => Ok(SinkArg::Parquet(url.to_string())),
        Some(("delta", url)) if !url.is_empty() => Ok(SinkArg::Delta(url.to_string())),
        _ => Err(format!(
            "`{value}`: expected `postgres`, `parquet=URL` or `delta=URL` (a folder or \
             s3://bucket/prefix)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_dates_at_midnight_utc() {
        let at = |s: &str| parse_time(s).map(|t| t.to_rfc3339());
        assert_eq!(
            at("2026-12-01T08:00:00Z").unwrap(),
            "2026-12-01T08:00:00+00:00"
        );
        assert_eq!(
            at("2026-12-01T09:30:00+01:00").unwrap(),
            "2026-12-01T08:30:00+00:00"
        );
        assert_eq!(at("2026-12-01").unwrap(), "2026-12-01T00:00:00+00:00");
        let error = at("yesterday").unwrap_err();
        assert!(error.contains("RFC 3339"), "{error}");
        assert!(at("2026-13-01").is_err());
    }

    #[test]
    fn after_needs_a_bucket() {
        let parse = |args: &[&str]| Cli::try_parse_from(args.iter().copied());
        assert!(parse(&["ingestor", "jobs", "list", "--after", "k"]).is_err());
        assert!(parse(&["ingestor", "jobs", "list", "--bucket", "b", "--after", "k"]).is_ok());
        assert!(parse(&["ingestor", "jobs", "list", "--limit", "0"]).is_err());
        assert!(
            parse(&[
                "ingestor", "jobs", "retry", "--prefix", "p", "--bucket", "b", "k"
            ])
            .is_err()
        );
        assert!(parse(&["ingestor", "jobs", "retry", "--failed", "--prefix", "p"]).is_ok());
    }
}
