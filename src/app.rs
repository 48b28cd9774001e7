//! The commands: each resolves its configuration, does its work, and returns the exit
//! status (0 all good, 3 a file FAILED); errors are fatal (exit 1).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;

use crate::cli::{
    Cli, Command, GenerateArgs, IngestFileArgs, JobsCommand, LakeCommand, MigrateArgs, PartitionBy,
    PreviewArgs, RetentionArgs, RunArgs,
};
use crate::config;
use crate::decode::SourceName;
use crate::pipeline::{self, FileReport, FileTask, Ingest, Summary};
use crate::progress::{FileCounts, ProgressMode, Reporter};
use crate::sample::{SampleConfig, SampleLayout, write_sample_dir};
use crate::source::SourceRef;
use crate::source::local::{default_include, expand_paths, include_set};
use crate::text::printable;
use crate::transform::{TransformSql, pretty};

/// Writes a line to stdout. A reader that closed the pipe early (`ingestor jobs list |
/// head -1`) is not an error: the process ends quietly with status 0, as ripgrep does.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            $crate::app::stdout_failed(e);
        }
    }};
}

/// Ends the process after a failed write to stdout: quietly (0) when the reader went away.
pub fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {error}");
    std::process::exit(1);
}

/// `processed_files.bucket` of files ingested by `ingest-file`.
pub const LOCAL_BUCKET: &str = "local";

/// Runs the command; the exit status on success.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Migrate(args) => migrate(cli.database_url.as_deref(), args).await,
        Command::IngestFile(args) => ingest_files(cli.database_url.as_deref(), args).await,
        Command::Preview(args) => preview(args).await,
        Command::Run(args) => run_bucket(cli.database_url.as_deref(), args).await,
        Command::Jobs(command) => jobs_command(cli.database_url.as_deref(), command).await,
        Command::Generate(args) => generate(args),
        Command::Lake(command) => lake_command(command).await,
        Command::Retention(args) => retention(cli.database_url.as_deref(), args).await,
    }
}

/// `migrate [--partition-by day]`.
async fn migrate(database_url: Option<&str>, args: MigrateArgs) -> anyhow::Result<i32> {
    use crate::sink::postgres::partitions::{Converted, DayPartitions, partition_by_day};
    let pool = config::connect(database_url, 2).await?;
    let Some(PartitionBy::Day) = args.partition_by else {
        out!("migrations applied");
        return Ok(0);
    };
    let (converted, layout) = partition_by_day(&pool, "logs").await?;
    let days = DayPartitions::new(&pool, layout);
    days.prepare(chrono::Utc::now().date_naive()).await?;
    match converted {
        Converted::Rebuilt => out!("migrations applied; table logs rebuilt, partitioned by day"),
        Converted::Already => out!("migrations applied; table logs is partitioned by day"),
    }
    Ok(0)
}

/// `lake optimize|vacuum URL`: upkeep of a Delta table.
async fn lake_command(command: LakeCommand) -> anyhow::Result<i32> {
    use crate::sink::delta;
    match command {
        LakeCommand::Optimize {
            url,
            target_mib,
            json,
            s3_timeout_secs,
        } => {
            let done = delta::optimize(&url, u64::from(target_mib) << 20, s3_timeout_secs).await?;
            if json {
                out!("{}", serde_json::to_string(&done)?);
            } else {
                out!(
                    "{url}: {} files compacted into {} in {} partitions (table version {})",
                    done.files_removed,
                    done.files_added,
                    done.partitions_optimized,
                    done.table_version
                );
            }
        }
        LakeCommand::Vacuum {
            url,
            retention_hours,
            dry_run,
            json,
            s3_timeout_secs,
        } => {
            let retention = std::time::Duration::from_secs_f64(retention_hours * 3600.0);
            let done = delta::vacuum(&url, retention, dry_run, s3_timeout_secs).await?;
            if json {
                out!("{}", serde_json::to_string(&done)?);
            } else if dry_run {
                out!("{url}: {} files would be deleted", done.files_deleted);
            } else {
                out!("{url}: {} files deleted", done.files_deleted);
            }
        }
    }
    Ok(0)
}

/// `retention`: archives (optionally) and drops the days before the cut. Exit status 0
/// when every day before the cut is gone, 3 when some day was kept (still being written
/// into, a lock that was not granted, a failed step: the next run takes it up).
async fn retention(database_url: Option<&str>, args: RetentionArgs) -> anyhow::Result<i32> {
    use crate::retention::{Cut, Outcome, Retention};
    use crate::sink::TargetTable;
    let lock_timeout = std::time::Duration::from_secs_f64(args.lock_timeout_secs);
    let pool = config::connect_retention(database_url, lock_timeout).await?;
    let table = TargetTable::load(&pool, &args.table).await?;
    if table.layout.by_day().is_none() {
        anyhow::bail!(
            "table {} is not partitioned by day: retention drops whole days of a table made by \
             `ingestor migrate --partition-by day` (RANGE (id) on a uuid id, no DEFAULT partition)",
            args.table
        );
    }
    let archive = match &args.archive {
        Some(arg) => Some(config::archive(arg, &table, args.s3_timeout_secs).await?),
        None => None,
    };
    let cut = match (args.before, args.older_than) {
        (Some(date), _) => Cut::before(date),
        (None, Some(age)) => Cut::older_than(age, chrono::Utc::now()),
        (None, None) => unreachable!("clap requires one"),
    };
    let retention = Retention {
        pool,
        table,
        cut,
        archive,
        retry: crate::sink::postgres::partitions::Retry::default(),
    };
    let planned = retention.plan().await?;
    let days = if args.dry_run {
        retention.dry_run(planned).await?
    } else {
        retention.run(planned).await?
    };
    let (mut dropped, mut kept, mut given_back, mut failed, mut rows) = (0, 0, 0, 0, 0u64);
    for day in &days {
        let (what, detail) = match &day.outcome {
            Outcome::Dropped { archived } => {
                dropped += 1;
                rows += archived.unwrap_or(0);
                let what = if args.dry_run {
                    "would drop"
                } else {
                    "dropped"
                };
                let detail = match (archived, &retention.archive) {
                    (Some(rows), Some(archive)) => {
                        format!("{rows} rows archived to {}", archive.display())
                    }
                    (None, Some(archive)) if args.dry_run => {
                        format!(
                            "~{} rows to archive to {}",
                            day.planned.estimated_rows,
                            archive.display()
                        )
                    }
                    _ => format!("~{} rows", day.planned.estimated_rows),
                };
                (what, detail)
            }
            Outcome::Kept(why) => {
                kept += 1;
                (
                    if args.dry_run { "would keep" } else { "kept" },
                    why.clone(),
                )
            }
            Outcome::GivenBack(why) => {
                given_back += 1;
                let what = if args.dry_run {
                    "would give back"
                } else {
                    "given back"
                };
                (what, why.clone())
            }
            Outcome::Failed(why) => {
                failed += 1;
                ("failed", why.clone())
            }
        };
        out!(
            "{what}\t{}\t{}\t{}: {}",
            day.planned.slot,
            printable(&day.planned.name),
            day.planned.state.describe(),
            printable(&detail)
        );
    }
    if args.json {
        out!(
            "{}",
            serde_json::json!({
                "dry_run": args.dry_run,
                "days_dropped": dropped,
                "days_kept": kept,
                "days_given_back": given_back,
                "days_failed": failed,
                "rows_archived": rows,
                "first_day_kept": retention.cut.first_kept().to_string(),
            })
        );
    } else {
        out!(
            "table {}: {dropped} day(s) {}, {} kept, days from {} on untouched{}",
            printable(&retention.table.name),
            if args.dry_run {
                "would be dropped"
            } else {
                "dropped"
            },
            kept + given_back + failed,
            retention.cut.first_kept(),
            if args.dry_run {
                " (dry run: nothing changed)"
            } else {
                ""
            }
        );
    }
    Ok(if kept + given_back + failed == 0 {
        0
    } else {
        3
    })
}

async fn run_bucket(database_url: Option<&str>, args: RunArgs) -> anyhow::Result<i32> {
    let patterns = if args.include.is_empty() {
        default_include()
    } else {
        args.include.clone()
    };
    let include = include_set(&patterns)?;
    let concurrency = usize::from(args.pipeline.concurrency);
    let (listing, display_root) = config::bucket_listing(
        &args.bucket,
        args.local_buckets.as_deref(),
        args.follow_symlinks,
        args.pipeline.s3_timeout_secs,
    )?;
    let pool = config::connect_worker(
        database_url,
        concurrency as u32 * 2 + 2,
        args.pipeline.lease_secs,
        args.pipeline.reconnect_secs,
    )
    .await?;
    let cancel = pipeline::Cancel::default();
    // Readiness is watched when someone can ask for it (`/readyz` on --metrics-addr).
    let probe = args.pipeline.metrics_addr.as_ref().map(|_| {
        let checks = crate::health::Checks {
            interval: std::time::Duration::from_secs_f64(args.interval),
        };
        crate::health::health().watch(checks, std::time::Instant::now());
        let options = (*pool.connect_options()).clone();
        tokio::spawn(crate::runner::probe_database(
            options,
            checks,
            cancel.clone(),
        ))
    });
    start_metrics(&args.pipeline).await?;
    let mut ingest = config::ingest(pool, &args.pipeline).await?;
    ingest.settings.retry_after = std::time::Duration::from_secs_f64(args.retry_base_secs.max(0.0));
    spawn_signal_handler(cancel.clone());
    let runner = crate::runner::Runner {
        rules: crate::jobs::ClaimRules {
            lease_secs: ingest.settings.lease.as_secs_f64(),
            max_attempts: args.max_attempts,
        },
        ingest: Arc::new(ingest),
        listing,
        bucket: args.bucket.clone(),
        prefix: args.prefix.clone(),
        include,
        concurrency,
        display_root,
        cancel: cancel.clone(),
        reconnect: reconnect(&args.pipeline, &cancel),
        files: Arc::new(FileCounts::default()),
        on_change: args.on_change,
        discovery: crate::runner::Discovery {
            incremental: (args.follow && args.reconcile_interval > 0.0)
                .then(|| std::time::Duration::from_secs_f64(args.reconcile_interval)),
            full_scan: args.full_scan.into(),
            notifications: args.notifications.is_some(),
        },
        wake: args
            .notifications
            .is_some()
            .then(|| Arc::new(tokio::sync::Notify::new())),
    };
    if args.dry_run {
        return dry_run(&runner).await;
    }
    if args.force {
        let again = crate::jobs::rewrite_other_destinations(
            &runner.ingest.pool,
            &runner.bucket,
            &runner.prefix,
            &runner.ingest.destinations(),
        )
        .await?;
        tracing::info!(
            objects = again,
            "objects written to other destinations start over"
        );
    } else {
        refuse_other_destinations(
            &runner.ingest,
            &runner.bucket,
            &runner.prefix,
            None,
            "run --force",
        )
        .await?;
    }
    let notifications = match (&args.notifications, &runner.wake) {
        (Some(crate::cli::Notifications::Sqs(queue_url)), Some(wake)) => {
            Some(start_notifications(&runner, &args, queue_url, Arc::clone(wake)).await?)
        }
        _ => None,
    };
    let reporter = Reporter::start(progress_mode(&args.pipeline), Arc::clone(&runner.files));
    let result = passes(&runner, &args, &cancel, runner.wake.as_deref()).await;
    crate::health::health().shutting_down();
    reporter.finish();
    for task in [notifications, probe].into_iter().flatten() {
        task.abort();
    }
    let (total, interrupted) = result?;
    let total = total.shown(&runner.ingest.kind);
    print_summary(&total, args.pipeline.json);
    if interrupted {
        // A signal stopped a pass: say what it left (released files are PENDING again).
        let left = crate::jobs::remaining(
            &runner.ingest.pool,
            &runner.bucket,
            &runner.prefix,
            args.max_attempts,
        )
        .await?;
        cancel.left(left);
    }
    Ok(exit_code(&total, &cancel))
}

/// Starts receiving `--notifications` from the SQS queue at `queue_url` (its visibility
/// timeout read first: a queue that cannot be reached is a configuration error), notifying
/// `wake` when they recorded objects; returns the receiving task.
async fn start_notifications(
    runner: &crate::runner::Runner,
    args: &RunArgs,
    queue_url: &str,
    wake: Arc<tokio::sync::Notify>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let wait = std::time::Duration::from_secs(args.notifications_wait_secs);
    let client = config::sqs_client(&runner.bucket, queue_url, wait)?;
    let visibility = client
        .visibility_timeout()
        .await
        .with_context(|| format!("cannot read the attributes of the queue {queue_url}"))?;
    let consumer = crate::runner::Consumer {
        client: Arc::new(client),
        pool: runner.ingest.pool.clone(),
        bucket: runner.bucket.clone(),
        prefix: runner.prefix.as_str().to_string(),
        include: runner.include.clone(),
        replace_completed: runner.on_change == crate::runner::OnChange::Reingest,
        wait,
        visibility,
        wake,
        cancel: runner.cancel.clone(),
    };
    Ok(tokio::spawn(consumer.run()))
}

fn progress_mode(args: &crate::cli::PipelineArgs) -> ProgressMode {
    let interval = std::time::Duration::from_secs_f64(args.progress_interval.max(0.1));
    ProgressMode::choose(args.json || args.quiet, interval)
}

/// Refuses to start when COMPLETED jobs were written to other destinations than this
/// run's: taking them as done would silently write nothing to the new destination.
async fn refuse_other_destinations(
    ingest: &Ingest,
    bucket: &str,
    prefix: &str,
    keys: Option<&[String]>,
    force: &str,
) -> anyhow::Result<()> {
    let destinations = ingest.destinations();
    let (count, examples) =
        crate::jobs::other_destinations(&ingest.pool, bucket, prefix, keys, &destinations, 5)
            .await?;
    if count == 0 {
        return Ok(());
    }
    anyhow::bail!(
        "{count} object(s) were COMPLETED for other destinations than this run's ({}), e.g. {}: \
         they would not be written here. Write them again with `{force}` (their rows are \
         replaced), or run with the destinations they were written to",
        destinations.join(", "),
        examples.join(", ")
    )
}

/// Installs the metrics recorder (every series at 0 from the start) and serves `/metrics`,
/// `/healthz` and `/readyz` when `--metrics-addr` is given.
async fn start_metrics(args: &crate::cli::PipelineArgs) -> anyhow::Result<()> {
    crate::metrics::install();
    if let Some(addr) = &args.metrics_addr {
        let local = crate::endpoint::serve(addr)
            .await
            .with_context(|| format!("cannot serve metrics on {addr}"))?;
        tracing::info!(%local, "serving Prometheus metrics on /metrics, health on /healthz and /readyz");
    }
    Ok(())
}

async fn dry_run(runner: &crate::runner::Runner) -> anyhow::Result<i32> {
    let planned = runner.dry_run().await?;
    let mut bytes = 0;
    for object in &planned {
        bytes += object.size;
        out!(
            "{}\t{}\t{}",
            object.why,
            object.size,
            printable(&object.key)
        );
    }
    out!(
        "{} object(s), {} bytes would be ingested (dry run: nothing written)",
        planned.len(),
        bytes
    );
    Ok(0)
}

/// How long a lost database connection is retried (`--reconnect-secs`).
fn reconnect(args: &crate::cli::PipelineArgs, cancel: &pipeline::Cancel) -> crate::jobs::Reconnect {
    let bound = std::time::Duration::from_secs_f64(args.reconnect_secs.max(0.0));
    crate::jobs::Reconnect::new(bound, cancel.clone())
}

/// The passes of `run`: one, or with `--follow` until a signal. Returns the totals and
/// whether a signal stopped a pass in its middle (not between passes). A pass that fails for a
/// transient reason (a listing or database hiccup) is tried again after a backoff with
/// `--follow`; configuration errors, a database unreachable past `--reconnect-secs`, and
/// anything else end the command. With notifications, `wake` starts the next pass as soon
/// as they recorded objects, without waiting for `--interval`.
async fn passes(
    runner: &crate::runner::Runner,
    args: &RunArgs,
    cancel: &pipeline::Cancel,
    wake: Option<&tokio::sync::Notify>,
) -> anyhow::Result<(Summary, bool)> {
    let mut total = Summary::default();
    let interval = std::time::Duration::from_secs_f64(args.interval.max(0.1));
    let mut failures = 0u32;
    loop {
        let (wait, wakeable) = match runner.pass().await {
            Ok(summary) => {
                failures = 0;
                total.merge(&summary);
                if cancel.is_cancelled() {
                    return Ok((total, true));
                }
                if !args.follow {
                    break;
                }
                tracing::info!(
                    completed = summary.files_completed,
                    failed = summary.files_failed,
                    records = summary.records_ingested,
                    "pass done; waiting for new objects"
                );
                (interval, true)
            }
            Err(error) if args.follow && !cancel.is_cancelled() && is_transient(&error) => {
                failures += 1;
                let wait = std::time::Duration::from_secs(1u64 << failures.min(6))
                    .min(interval.max(std::time::Duration::from_secs(1)));
                tracing::warn!(
                    error = %format!("{error:#}"),
                    retry_in_secs = wait.as_secs(),
                    "the pass failed; trying again"
                );
                (wait, false)
            }
            Err(error) => return Err(error),
        };
        let stopped = match wake.filter(|_| wakeable) {
            Some(wake) => tokio::select! {
                stopped = cancel.sleep(wait) => stopped,
                _ = wake.notified() => cancel.is_cancelled(),
            },
            None => cancel.sleep(wait).await,
        };
        if stopped {
            break;
        }
    }
    Ok((total, false))
}

/// A pass error that a later pass can get past: the listing failed (object_store already
/// retried it), or the database connection failed (and has not stayed away past the bound).
fn is_transient(error: &anyhow::Error) -> bool {
    let unreachable = crate::jobs::gave_up(error);
    let listing = error.chain().any(|cause| {
        cause.is::<object_store::Error>() || cause.is::<crate::source::listing::ListError>()
    });
    !unreachable && (listing || crate::jobs::caused_by_connection(error))
}

/// SIGINT / SIGTERM: stop claiming, stop files between chunks and release their leases;
/// `/healthz` and `/readyz` answer 503 from now on.
fn spawn_signal_handler(cancel: pipeline::Cancel) {
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    return;
                }
            };
        let signal = tokio::select! {
            _ = tokio::signal::ctrl_c() => 2,
            _ = term.recv() => 15,
        };
        tracing::warn!("stopping: finishing the current chunks and releasing leases");
        crate::health::health().shutting_down();
        cancel.cancel_by(signal);
    });
}

async fn jobs_command(database_url: Option<&str>, command: JobsCommand) -> anyhow::Result<i32> {
    let pool = config::connect(database_url, 2).await?;
    match command {
        JobsCommand::List {
            bucket,
            status,
            prefix,
            since,
            until,
            after,
            limit,
            json,
        } => {
            let filter = crate::jobs::JobFilter {
                bucket,
                status,
                prefix,
                since,
                until,
            };
            let cursor = filter.bucket.as_deref().zip(after.as_deref());
            let page = crate::jobs::list_page(&pool, &filter, cursor, limit).await?;
            print_jobs(&page, filter.bucket.is_some(), json)?;
        }
        JobsCommand::Stats {
            bucket,
            prefix,
            json,
        } => {
            let stats = crate::jobs::stats(&pool, bucket.as_deref(), prefix.as_ref()).await?;
            if json {
                out!("{}", serde_json::to_string(&stats)?);
            } else {
                for (status, count) in &stats.counts {
                    out!("{status}\t{count}");
                }
                match &stats.oldest_pending {
                    Some((bucket, key, since)) => {
                        out!(
                            "oldest pending: {}/{} since {since}",
                            printable(bucket),
                            printable(key)
                        )
                    }
                    None => out!("oldest pending: none"),
                }
                match &stats.last_failure {
                    Some((bucket, key, at, error)) => out!(
                        "last failure: {}/{} at {at}: {}",
                        printable(bucket),
                        printable(key),
                        printable(error.as_deref().unwrap_or(""))
                    ),
                    None => out!("last failure: none"),
                }
            }
        }
        JobsCommand::Retry {
            bucket,
            failed,
            prefix,
            keys,
        } => {
            let count = if failed {
                crate::jobs::retry_failed(&pool, bucket.as_deref(), prefix.as_ref()).await?
            } else {
                crate::jobs::retry_keys(&pool, bucket.as_deref(), &keys).await?
            };
            out!("{count} job(s) back to PENDING");
        }
    }
    Ok(0)
}

/// One page of `jobs list`: a line (or JSON object) per job, then, when more jobs follow,
/// a last line saying how to continue: `next: --after KEY` (with `--bucket`; the key as
/// stored, control characters escaped) or `{"next_after":KEY}`. Without `--bucket` a page
/// spans buckets and cannot be continued by key: the last line says so (`next_after`
/// null).
fn print_jobs(page: &crate::jobs::JobPage, one_bucket: bool, json: bool) -> anyhow::Result<()> {
    for row in &page.rows {
        if json {
            out!("{}", serde_json::to_string(row)?);
        } else {
            out!(
                "{}\t{}\t{}\tattempts={}\trecords={}\trejected={}\t{}",
                row.status,
                printable(&row.bucket),
                printable(&row.s3_key),
                row.attempts,
                row.records_ingested,
                row.records_rejected,
                printable(row.error.as_deref().unwrap_or(""))
            );
        }
    }
    let Some(last) = page.rows.last().filter(|_| page.more) else {
        return Ok(());
    };
    let next = one_bucket.then_some(last.s3_key.as_str());
    if json {
        out!("{}", serde_json::json!({ "next_after": next }));
    } else if let Some(key) = next {
        out!("next: --after {}", printable(key));
    } else {
        out!(
            "next: more jobs than --limit; add --bucket B to page through one bucket with --after KEY"
        );
    }
    Ok(())
}

async fn ingest_files(database_url: Option<&str>, args: IngestFileArgs) -> anyhow::Result<i32> {
    // Folders given to ingest-file are read whole: log files, and Parquet (a lake).
    let mut patterns = default_include();
    patterns.push("*.parquet".into());
    let include = include_set(&patterns)?;
    let expanded = expand_paths(&args.paths, &include, args.follow_symlinks)?;
    let stats = expanded.stats;
    if stats.skipped() > 0 {
        tracing::warn!(
            files = stats.files,
            skipped = stats.skipped(),
            symlinks = stats.symlinks,
            not_regular = stats.not_regular,
            bad_names = stats.bad_names,
            unreadable = stats.unreadable,
            "entries skipped while walking (see the warnings above)"
        );
    }
    let files = expanded.files;
    let concurrency = usize::from(args.pipeline.concurrency);
    let pool = config::connect_worker(
        database_url,
        concurrency as u32 * 2 + 2,
        args.pipeline.lease_secs,
        args.pipeline.reconnect_secs,
    )
    .await?;
    let ingest = config::ingest(pool, &args.pipeline).await?;
    if let Some(plan) = ingest
        .postgres
        .as_ref()
        .filter(|p| args.force && !p.has_source_columns)
    {
        anyhow::bail!(
            "--force needs columns source_bucket and source_key in table {} to find the rows a file produced",
            plan.table.name
        );
    }
    if !args.force {
        let keys: Vec<String> = files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        refuse_other_destinations(
            &ingest,
            LOCAL_BUCKET,
            "",
            Some(&keys),
            "ingest-file --force",
        )
        .await?;
    }
    let mut tasks = Vec::with_capacity(files.len());
    for path in files {
        let size = std::fs::metadata(&path).map(|m| m.len()).ok();
        let key = path.to_string_lossy().into_owned();
        tasks.push(FileTask {
            bucket: LOCAL_BUCKET.into(),
            display: key.clone(),
            key,
            source: SourceRef::Local(path),
            size,
        });
    }
    start_metrics(&args.pipeline).await?;
    let files = Arc::new(FileCounts::default());
    files
        .total
        .store(tasks.len() as u64, std::sync::atomic::Ordering::Relaxed);
    let reporter = Reporter::start(progress_mode(&args.pipeline), Arc::clone(&files));
    let cancel = pipeline::Cancel::default();
    spawn_signal_handler(cancel.clone());
    let options = pipeline::FileOptions {
        force: args.force,
        wait: !args.no_wait,
    };
    let kind = ingest.kind.clone();
    let summary = run_tasks_until(
        Arc::new(ingest),
        tasks,
        options,
        concurrency,
        &files,
        &cancel,
        &reconnect(&args.pipeline, &cancel),
    )
    .await;
    crate::health::health().shutting_down();
    reporter.finish();
    let summary = summary?.shown(&kind);
    print_summary(&summary, args.pipeline.json);
    Ok(exit_code(&summary, &cancel))
}

/// The exit status: 130 / 143 when SIGINT / SIGTERM left files undone (said on stderr),
/// else the summary's.
fn exit_code(summary: &Summary, cancel: &pipeline::Cancel) -> i32 {
    match cancel.exit_code() {
        Some(code) if cancel.files_left() > 0 => {
            tracing::warn!(
                files_left = cancel.files_left(),
                "stopped by a signal: files were left undone (released, their checkpoints kept, or not started); run again to finish them"
            );
            code
        }
        _ => summary.exit_code(),
    }
}

/// Ingests `tasks`, `concurrency` at a time, logging one line per file. A file whose
/// database connection failed is taken up again once the database answers (see
/// [`ingest_reconnecting`]).
pub async fn run_tasks(
    ingest: Arc<Ingest>,
    tasks: Vec<FileTask>,
    force: bool,
    concurrency: usize,
    files: &FileCounts,
) -> anyhow::Result<Summary> {
    let options = pipeline::FileOptions { force, wait: true };
    let cancel = pipeline::Cancel::default();
    let reconnect = crate::jobs::Reconnect::new(DEFAULT_RECONNECT, cancel.clone());
    run_tasks_until(
        ingest,
        tasks,
        options,
        concurrency,
        files,
        &cancel,
        &reconnect,
    )
    .await
}

/// `--reconnect-secs`' default, for callers without options.
const DEFAULT_RECONNECT: std::time::Duration = std::time::Duration::from_secs(300);

/// [`run_tasks`] with options; when `cancel` is set, files stop between chunks and the
/// rest are not started.
pub async fn run_tasks_until(
    ingest: Arc<Ingest>,
    tasks: Vec<FileTask>,
    options: pipeline::FileOptions,
    concurrency: usize,
    files: &FileCounts,
    cancel: &pipeline::Cancel,
    reconnect: &crate::jobs::Reconnect,
) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let mut results = futures::stream::iter(tasks)
        .map(|task| {
            let ingest = Arc::clone(&ingest);
            let cancel = cancel.clone();
            let reconnect = reconnect.clone();
            async move { ingest_reconnecting(&ingest, &reconnect, task, options, &cancel).await }
        })
        .buffer_unordered(concurrency.max(1));
    while let Some(result) = results.next().await {
        let report = result.context("the database failed during the run")?;
        files.add_done();
        report.record();
        summary.add(&report);
    }
    Ok(summary)
}

/// Times one file of `ingest-file` is taken up again after its database connection failed.
const RECONNECTS_PER_FILE: u32 = 5;

/// One file of `ingest-file`: if its database connection fails, the claim is given back
/// once the database answers again (within `--reconnect-secs`) and the file resumes at
/// its checkpoint, up to [`RECONNECTS_PER_FILE`] times.
async fn ingest_reconnecting(
    ingest: &Ingest,
    reconnect: &crate::jobs::Reconnect,
    task: FileTask,
    options: pipeline::FileOptions,
    cancel: &pipeline::Cancel,
) -> anyhow::Result<FileReport> {
    let mut lost = 0;
    loop {
        match pipeline::ingest_file_with(ingest, task.clone(), options, cancel).await {
            Ok(report) => return Ok(report),
            Err(fatal)
                if crate::jobs::is_connection_error(&fatal.source)
                    && lost < RECONNECTS_PER_FILE =>
            {
                lost += 1;
                crate::runner::recover(&ingest.pool, reconnect, fatal).await?;
            }
            Err(fatal) => return Err(fatal.into()),
        }
    }
}

fn print_summary(summary: &Summary, json: bool) {
    if json {
        out!(
            "{}",
            serde_json::to_string(summary).expect("summary serializes")
        );
    } else {
        out!(
            "files: {} completed, {} failed, {} skipped; records: {} ingested, {} rejected, {} filtered",
            summary.files_completed,
            summary.files_failed,
            summary.files_skipped,
            summary.records_ingested,
            summary.records_rejected,
            summary.records_filtered
        );
        if let Some(read) = summary.records_read {
            out!("records read by the transform (it runs once per file): {read}");
        }
    }
}

async fn preview(args: PreviewArgs) -> anyhow::Result<i32> {
    let sql = match &args.transform {
        Some(path) => TransformSql::from_file(path)?,
        None => TransformSql::builtin(),
    };
    let (source, name) = if let Some(rest) = args.source.strip_prefix("s3://") {
        let (bucket, key) = rest
            .split_once('/')
            .with_context(|| format!("{}: expected s3://bucket/key", args.source))?;
        let store = config::s3_store(bucket, args.s3_timeout_secs)?;
        let path = object_store::path::Path::from(key);
        (
            SourceRef::Object { store, path },
            SourceName {
                bucket: bucket.into(),
                key: key.into(),
            },
        )
    } else {
        let path = Path::new(&args.source)
            .canonicalize()
            .with_context(|| format!("{}: cannot open", args.source))?;
        let key = path.to_string_lossy().into_owned();
        (
            SourceRef::Local(path),
            SourceName {
                bucket: LOCAL_BUCKET.into(),
                key: key.into(),
            },
        )
    };
    let shown = pipeline::preview(source, name, &sql, args.limit.max(1))
        .await
        .with_context(|| format!("{}: preview failed", args.source))?;
    if args.explain {
        out!("plan kind: {}", shown.kind);
        out!("{}", shown.plan);
    }
    // Record values may hold control characters: each line is shown escaped.
    for line in pretty(&shown.batches)?.lines() {
        out!("{}", printable(line));
    }
    for reject in &shown.rejects {
        out!(
            "rejected record {} (byte {}): {}",
            reject.index,
            reject.offset,
            printable(&reject.error)
        );
    }
    if let Some(fault) = &shown.fault {
        out!(
            "the file cannot be read to its end: {}",
            printable(&fault.to_string())
        );
        if shown.kind.is_whole_file() {
            out!("nothing would be written: the transform runs once per file, over all of it");
        }
    }
    Ok(0)
}

fn generate(args: GenerateArgs) -> anyhow::Result<i32> {
    let config = SampleConfig {
        seed: args.seed,
        records: args.records,
        layout: if args.ndjson {
            SampleLayout::Ndjson
        } else {
            SampleLayout::Array
        },
        gzip: !args.plain,
        gzip_level: args.gzip_level,
        ..SampleConfig::default()
    };
    let stats = write_sample_dir(&config, &args.out, args.files)
        .with_context(|| format!("cannot write samples into {}", args.out.display()))?;
    out!(
        "wrote {} files, {} records, {} bytes of JSON ({} bytes on disk) into {}",
        args.files,
        stats.records,
        stats.json_bytes,
        stats.file_bytes,
        args.out.display()
    );
    Ok(0)
}
