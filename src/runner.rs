//! `run`: passes over a bucket. A pass takes pending and retryable jobs first, then lists the
//! bucket (streamed page by page) and records unknown keys as PENDING, then takes those,
//! oldest first. Any number of processes on any number of machines can run passes over the
//! same bucket at once: claims are atomic (`FOR UPDATE SKIP LOCKED`) and every commit is
//! fenced by the claim's lease token.
//!
//! Discovery never skips a key it has not seen: a pass lists the whole prefix, or with
//! `--follow` the keys after the listing mark and the whole prefix every
//! `--reconcile-interval`, so an object uploaded late — whatever its timestamps — is
//! ingested. With `--notifications` ([`notifications`]) a background task records the
//! objects the bucket's notifications report as they come, and passes list nothing between
//! the reconciliations (full listings), which find what no notification reported.
//! Keys are listed as plain strings ([`crate::source::listing`]): an odd key never stops
//! discovery; one that cannot be read ends FAILED with the cause, without retries.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use anyhow::Context;
use globset::GlobSet;
use tokio::task::JoinSet;

use crate::events;
use crate::health::{self, Progress};
use crate::jobs::{self, ClaimRules, ClaimedFile, Lease, LeaseKeeper, Listed, Prefix, Reconnect};
use crate::pipeline::{self, Cancel, FatalError, FileReport, FileTask, Ingest, Outcome, Summary};
use crate::progress::FileCounts;
use crate::source::listing::{Listing, Pages};

mod notifications;
mod probe;

pub use notifications::Consumer;
pub use probe::probe_database;

/// A pass waits for a failed file's retry only when it is due within this: a pass (a cron
/// backfill, a CI job) never sleeps on a retry minutes away; it ends, and a later pass (the
/// next one with `--follow`) takes the file when due.
pub const MAX_RETRY_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Files up to this size (as stored) are small: ingested in groups (`--group-files`).
pub const SMALL_FILE_BYTES: u64 = 256 << 10;

/// Stored bytes of one group at most: what a group holds in memory is bounded like a
/// file's chunk.
pub const GROUP_BYTES: u64 = pipeline::GROUP_BYTES;

/// What a task of a pass hands back: each file it took, with its report.
type Done = Vec<(String, anyhow::Result<FileReport>)>;

/// A file's one-file path, ready in case it is needed (it does nothing until awaited).
type OneFile = std::pin::Pin<Box<dyn Future<Output = (String, anyhow::Result<FileReport>)> + Send>>;

/// A claimed small file waiting for its group's task (see [`Runner::queue`]).
struct Queued {
    file: ClaimedFile,
    /// Its place in a group, reading; None when it goes the one-file way.
    member: Option<pipeline::Member>,
    keeper: LeaseKeeper,
    one: OneFile,
}

/// One bucket's passes.
pub struct Runner {
    pub ingest: Arc<Ingest>,
    /// How the bucket is listed and its objects read.
    pub listing: Listing,
    pub bucket: String,
    pub prefix: Prefix,
    pub include: GlobSet,
    pub rules: ClaimRules,
    pub concurrency: usize,
    /// How logs and errors name an object: `s3://bucket` or the local folder.
    pub display_root: String,
    pub cancel: Cancel,
    /// How long a lost database connection is retried before the pass gives up.
    pub reconnect: Reconnect,
    /// Files claimed and done, for progress.
    pub files: Arc<FileCounts>,
    /// What to do with a COMPLETED object whose version changed.
    pub on_change: OnChange,
    /// How discovery lists the prefix.
    pub discovery: Discovery,
    /// With `--notifications`: notified when they recorded objects. A drain with a free
    /// slot claims at once instead of waiting for a running file to end, and `run
    /// --follow` starts the next pass without waiting for `--interval`.
    pub wake: Option<Arc<tokio::sync::Notify>>,
}

/// How discovery lists a prefix, pass after pass.
#[derive(Debug, Default)]
pub struct Discovery {
    /// `--follow`'s `--reconcile-interval`: a pass lists only the keys after the prefix's
    /// mark (the greatest key listed so far, kept in `listing_marks` for every worker), and
    /// the whole prefix once the last full listing is older than this. None (a single
    /// pass, or an interval of 0): every pass lists the whole prefix.
    pub incremental: Option<std::time::Duration>,
    /// `--full-scan`: the next pass lists the whole prefix whatever the mark says.
    pub full_scan: std::sync::atomic::AtomicBool,
    /// `--notifications`: notifications record new objects as they come ([`Consumer`]), so
    /// passes list nothing between full listings (every `incremental` interval), and a full
    /// listing counts every new object it finds as one only it found.
    pub notifications: bool,
}

/// What one discovery did.
#[derive(Debug, Default)]
struct Discovered {
    found: jobs::Discovered,
    /// Listed entries skipped (odd keys, links not followed).
    skipped: u64,
    /// It listed the whole prefix (not only the keys after the mark).
    full: bool,
    /// New keys only a full listing could find: those sorting before the mark, which
    /// incremental listings could not see (uploaded late under an earlier name); with
    /// notifications, every new key it found (no notification reported it).
    before_mark: u64,
}

/// What `run` does with a COMPLETED object that was replaced by a new version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OnChange {
    /// Ingest the new version, replacing the old version's rows.
    #[default]
    Reingest,
    /// Keep the old version's rows; the new version is not ingested.
    Ignore,
}

/// One object `run --dry-run` would ingest.
#[derive(Debug, Clone)]
pub struct Planned {
    pub key: String,
    pub size: u64,
    /// `new`, `pending` or `retry`.
    pub why: &'static str,
}

impl Runner {
    /// One pass; the summary counts each file once, by its last outcome in the pass.
    pub async fn pass(&self) -> anyhow::Result<Summary> {
        // Progress counts this pass's files, each once however many attempts it takes.
        self.files
            .total
            .store(0, std::sync::atomic::Ordering::Relaxed);
        self.files
            .done
            .store(0, std::sync::atomic::Ordering::Relaxed);
        // `--follow` runs for days: each pass creates the days ahead (known ones cost
        // nothing). A failure is logged: each chunk creates the days it needs anyway.
        if let Some(days) = &self.ingest.partitions
            && let Err(e) = days.prepare(chrono::Utc::now().date_naive()).await
        {
            tracing::warn!(error = %e, "cannot create the days ahead");
        }
        let mut reports = HashMap::new();
        self.drain(&mut reports).await?;
        if !self.cancel.is_cancelled()
            && let Some(done) = self.discover_reconnecting().await?
        {
            tracing::info!(
                bucket = %self.bucket,
                prefix = %self.prefix,
                listing = if done.full { "full" } else { "incremental" },
                new_objects = done.found.new,
                replaced_objects = done.found.replaced,
                skipped = done.skipped,
                found_by_full_listing = done.before_mark,
                "discovery done"
            );
            if done.before_mark > 0 {
                events::found_by_full_listing(done.before_mark);
            }
            self.drain(&mut reports).await?;
        }
        let mut summary = Summary::default();
        for report in reports.values() {
            summary.add(report);
        }
        health::progressed(Progress::Pass);
        Ok(summary)
    }

    /// Discovery, started over once the database answers again if its connection failed
    /// (recording listed keys is idempotent). None: nothing to list in this pass.
    async fn discover_reconnecting(&self) -> anyhow::Result<Option<Discovered>> {
        loop {
            match self.discover().await {
                Err(error) if jobs::caused_by_connection(&error) && !self.cancel.is_cancelled() => {
                    tracing::warn!(error = %format!("{error:#}"), "discovery lost its database connection; starting it over");
                    self.reconnect
                        .retry("record listed objects", || async {
                            sqlx::query("SELECT 1").execute(&self.ingest.pool).await
                        })
                        .await?;
                }
                result => return result,
            }
        }
    }

    /// Claims and processes files until none is eligible, `concurrency` at a time. Failed
    /// files with attempts left are retried within the pass once their backoff elapsed, if
    /// that is within [`MAX_RETRY_WAIT`]; later ones are left to a later pass.
    ///
    /// Small files are claimed ahead, in groups, and read as soon as they are claimed
    /// ([`pipeline::read_ahead`]): while `concurrency` tasks write groups, the next groups
    /// are being read.
    async fn drain(&self, reports: &mut HashMap<String, FileReport>) -> anyhow::Result<()> {
        let mut running = JoinSet::new();
        let group_files = self.ingest.settings.group_files;
        // A Parquet lake publishes each object's own files: no groups. A Delta table takes a
        // group's objects in one commit.
        let grouping = group_files > 1 && self.ingest.lake.is_none();
        // Claimed small files, read ahead, in groups waiting for a task. Kept at two
        // groups' worth beyond the running ones: what they hold is bounded by
        // (`concurrency` + 2) groups of at most GROUP_BYTES stored.
        let mut queued: VecDeque<Vec<Queued>> = VecDeque::new();
        let read_ahead = 2 * group_files;
        loop {
            let queued_files: usize = queued.iter().map(Vec::len).sum();
            let mut gave_up_lost = false;
            if !self.cancel.is_cancelled() && grouping && queued_files < read_ahead {
                self.give_up_lost(reports).await?;
                gave_up_lost = true;
                let want = read_ahead - queued_files
                    + group_files * self.concurrency.saturating_sub(running.len());
                let small = self
                    .reconnect
                    .retry("claim small files", || {
                        jobs::claim_small_page(
                            &self.ingest.pool,
                            &self.bucket,
                            &self.prefix,
                            want,
                            self.rules,
                            SMALL_FILE_BYTES,
                        )
                    })
                    .await
                    .context("cannot claim files")?;
                for file in &small {
                    self.count_claim(file, reports);
                }
                for group in groups(small, group_files, GROUP_BYTES) {
                    queued.push_back(group.into_iter().map(|f| self.queue(f)).collect());
                }
            }
            while running.len() < self.concurrency
                && let Some(group) = queued.pop_front()
            {
                running.spawn(self.process_group(group));
            }
            if !self.cancel.is_cancelled() && running.len() < self.concurrency {
                if !gave_up_lost {
                    self.give_up_lost(reports).await?;
                }
                let free = self.concurrency - running.len();
                let claimed = self
                    .reconnect
                    .retry("claim files", || {
                        jobs::claim_page(
                            &self.ingest.pool,
                            &self.bucket,
                            &self.prefix,
                            free,
                            self.rules,
                        )
                    })
                    .await
                    .context("cannot claim files")?;
                for file in claimed {
                    self.count_claim(&file, reports);
                    let one = self.process(file);
                    running.spawn(async move { vec![one.await] });
                }
            }
            // With a free slot, objects notifications just recorded are claimed at once.
            let free = !running.is_empty() && running.len() < self.concurrency;
            let joined = match &self.wake {
                Some(wake) if free && !self.cancel.is_cancelled() => tokio::select! {
                    joined = running.join_next() => joined,
                    _ = wake.notified() => continue,
                },
                _ => running.join_next().await,
            };
            let Some(done) = joined else {
                if self.cancel.is_cancelled() || !self.wait_for_retry().await? {
                    return Ok(());
                }
                continue;
            };
            for (key, report) in done.context("a file task panicked")? {
                let mut report = report?;
                if !reports.contains_key(&key) {
                    self.files.add_done();
                }
                report.record();
                if let Some(earlier) = reports.remove(&key) {
                    report.counts.ingested += earlier.counts.ingested;
                    report.counts.rejected += earlier.counts.rejected;
                    report.counts.filtered += earlier.counts.filtered;
                }
                reports.insert(key, report);
            }
        }
    }

    /// Counts a claimed file for progress (once per pass) and a takeover in the metrics.
    fn count_claim(&self, file: &ClaimedFile, reports: &HashMap<String, FileReport>) {
        // A retry of a file this pass already counted is not another file.
        if !reports.contains_key(&file.key) {
            self.files.add_total(1);
        }
        if file.takeover {
            events::lease_takeover();
        }
    }

    /// A claimed small file, waiting for its group's task: its claim renewed from now on,
    /// its reading started when it can join a group (it starts from its first record).
    fn queue(&self, file: ClaimedFile) -> Queued {
        let fresh = file.checkpoint == 0 && file.version.is_none() && !file.start_over;
        Queued {
            member: fresh.then(|| self.member(&file)).flatten(),
            keeper: LeaseKeeper::start(self.ingest.pool.clone(), self.lease(&file)),
            one: Box::pin(self.process(file.clone())),
            file,
        }
    }

    /// Ingests a group of small files. A file that cannot be ingested in its group (see
    /// [`pipeline::ingest_group`]), or that does not start from its first record, is
    /// ingested alone.
    fn process_group(&self, group: Vec<Queued>) -> impl Future<Output = Done> + Send + 'static {
        let ingest = Arc::clone(&self.ingest);
        let cancel = self.cancel.clone();
        async move {
            let mut done = Done::new();
            let mut members = Vec::new();
            let mut in_group = Vec::new();
            let mut alone = Vec::new();
            for queued in group {
                match queued.member {
                    Some(member) => {
                        members.push(member);
                        in_group.push(Some((queued.file, queued.keeper, queued.one)));
                    }
                    None => alone.push((queued.keeper, queued.one)),
                }
            }
            if !members.is_empty() {
                let result = pipeline::ingest_group(&ingest, &mut members, &cancel).await;
                for (i, report) in result.completed {
                    let (file, keeper, _) = in_group[i].take().expect("each file reported once");
                    keeper.stop();
                    record_lag(&file, &report);
                    done.push((file.key, Ok(report)));
                }
                alone.extend(
                    in_group
                        .into_iter()
                        .flatten()
                        .map(|(_, keeper, one)| (keeper, one)),
                );
            }
            for (keeper, one) in alone {
                keeper.stop();
                done.push(one.await);
            }
            done
        }
    }

    /// A claimed file as a member of a group, None when its key cannot be read.
    fn member(&self, file: &ClaimedFile) -> Option<pipeline::Member> {
        let source = self.listing.source(&file.key).ok()?;
        let task = FileTask {
            bucket: self.bucket.clone(),
            key: file.key.clone(),
            display: self.display(&file.key),
            source,
            size: file.size,
        };
        Some(pipeline::Member {
            read: pipeline::read_ahead(&self.ingest, &task),
            task,
            lease: self.lease(file),
        })
    }

    fn display(&self, key: &str) -> String {
        format!("{}/{}", self.display_root, crate::text::printable(key))
    }

    fn lease(&self, file: &ClaimedFile) -> Lease {
        Lease {
            bucket: self.bucket.clone(),
            key: file.key.clone(),
            token: file.token,
            duration: self.ingest.settings.lease,
            attempts: file.attempts,
        }
    }

    /// Fails the files whose worker was lost on their last attempt (see
    /// [`jobs::give_up_lost`]); they count as FAILED in this pass.
    async fn give_up_lost(&self, reports: &mut HashMap<String, FileReport>) -> anyhow::Result<()> {
        let lost = self
            .reconnect
            .retry("fail files whose worker was lost", || {
                jobs::give_up_lost(
                    &self.ingest.pool,
                    &self.bucket,
                    &self.prefix,
                    self.rules.max_attempts,
                )
            })
            .await
            .context("cannot fail files whose worker was lost")?;
        for (key, error) in lost {
            let report = FileReport {
                display: format!("{}/{}", self.display_root, key),
                outcome: Outcome::Failed(error),
                counts: Default::default(),
                elapsed: Default::default(),
                replaced: false,
            };
            report.record();
            let earlier = reports.remove(&key).map(|r| r.counts).unwrap_or_default();
            reports.insert(
                key,
                FileReport {
                    counts: earlier,
                    ..report
                },
            );
        }
        Ok(())
    }

    /// Sleeps until the next retryable file may be tried, if that is within
    /// [`MAX_RETRY_WAIT`]; false when there is none that soon (the pass ends, a later pass
    /// takes it when due).
    async fn wait_for_retry(&self) -> anyhow::Result<bool> {
        let next = self
            .reconnect
            .retry("read pending retries", || {
                jobs::next_retry(
                    &self.ingest.pool,
                    &self.bucket,
                    &self.prefix,
                    self.rules.max_attempts,
                )
            })
            .await
            .context("cannot read pending retries")?;
        let Some(at) = next else { return Ok(false) };
        let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
        if wait > MAX_RETRY_WAIT {
            tracing::info!(
                due_in_secs = wait.as_secs(),
                "the next retry of a failed file is not due soon: left to a later pass"
            );
            return Ok(false);
        }
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "waiting to retry failed files"
        );
        let stopped = self
            .cancel
            .sleep(wait + std::time::Duration::from_millis(10))
            .await;
        Ok(!stopped)
    }

    fn process(
        &self,
        file: ClaimedFile,
    ) -> impl Future<Output = (String, anyhow::Result<FileReport>)> + Send + 'static {
        let ingest = Arc::clone(&self.ingest);
        let cancel = self.cancel.clone();
        let reconnect = self.reconnect.clone();
        let display = self.display(&file.key);
        let source = self.listing.source(&file.key);
        let lease = self.lease(&file);
        let resume = pipeline::Resume {
            checkpoint: file.checkpoint,
            version: file.version.clone(),
            start_over: file.start_over,
            replaced: false,
        };
        async move {
            let source = match source {
                Ok(source) => source,
                Err(unreadable) => {
                    let report =
                        fail_unreadable(&ingest, &lease, display, &unreadable.to_string()).await;
                    return (file.key, report);
                }
            };
            let task = FileTask {
                bucket: lease.bucket.clone(),
                key: file.key.clone(),
                display,
                source,
                size: file.size,
            };
            let report = pipeline::process_claimed(&ingest, &task, &lease, resume, &cancel).await;
            let report = match report {
                Err(fatal) => recover(&ingest.pool, &reconnect, fatal).await,
                Ok(report) => Ok(report),
            };
            if let Ok(report) = &report {
                record_lag(&file, report);
            }
            (file.key, report)
        }
    }

    /// What a pass would ingest now, without writing: listed objects that are new, PENDING,
    /// or FAILED with attempts left. Lists with the same lister as discovery.
    pub async fn dry_run(&self) -> anyhow::Result<Vec<Planned>> {
        let mut pages = self.listing.pages(self.prefix.as_str());
        let mut planned = Vec::new();
        while let Some(page) = self.next_page(&mut pages).await? {
            let page: Vec<(String, u64)> = self
                .included(page)
                .into_iter()
                .map(|o| (o.key, o.size))
                .collect();
            if !page.is_empty() {
                self.plan_page(&page, &mut planned).await?;
            }
        }
        if pages.skipped() > 0 {
            tracing::warn!(
                skipped = pages.skipped(),
                "keys skipped by the listing (see the warnings above)"
            );
        }
        Ok(planned)
    }

    /// The next listed page, without the keys the include globs do not take.
    /// The next page of the listing, every key of it (see [`Runner::included`]).
    async fn next_page(&self, pages: &mut Pages) -> anyhow::Result<Option<Vec<Listed>>> {
        pages
            .next_page()
            .await
            .with_context(|| format!("cannot list {}/{}", self.display_root, self.prefix))
    }

    /// The keys of `page` that `--include` takes.
    fn included(&self, mut page: Vec<Listed>) -> Vec<Listed> {
        page.retain(|o| self.include.is_match(&o.key));
        page
    }

    async fn plan_page(
        &self,
        page: &[(String, u64)],
        planned: &mut Vec<Planned>,
    ) -> anyhow::Result<()> {
        let keys: Vec<String> = page.iter().map(|(key, _)| key.clone()).collect();
        let known: HashMap<String, jobs::Known> = jobs::known_statuses(
            &self.ingest.pool,
            &self.bucket,
            &keys,
            self.rules.max_attempts,
        )
        .await?
        .into_iter()
        .map(|known| (known.key.clone(), known))
        .collect();
        for (key, size) in page {
            // The same eligibility as the claims (`ingestor_claimable`).
            let why = match known.get(key) {
                None => "new",
                Some(job) if !job.claimable => continue,
                Some(job) if job.status == "PENDING" => "pending",
                Some(job) if job.status == "PROCESSING" => "takeover",
                Some(_) => "retry",
            };
            planned.push(Planned {
                key: key.clone(),
                size: *size,
                why,
            });
        }
        Ok(())
    }

    /// Lists the prefix page by page and records unknown keys as PENDING, and new versions
    /// of known ones (see `sql/jobs/discover.sql`); also returns how many listed entries
    /// were skipped.
    ///
    /// With `--follow` ([`Discovery::incremental`]) only the keys after the prefix's mark
    /// are listed, until the last full listing is older than `--reconcile-interval` (or
    /// `--full-scan` asks for one): then the whole prefix is, and the new keys it finds
    /// before the mark are counted. Either way the mark moves to the greatest key listed.
    ///
    /// With notifications, a pass lists nothing (None) until the last full listing is older
    /// than `--reconcile-interval`, and every new key a full listing finds is counted as
    /// found by it: no notification reported it.
    async fn discover(&self) -> anyhow::Result<Option<Discovered>> {
        use std::sync::atomic::Ordering;
        let prefix = self.prefix.as_str();
        let pool = &self.ingest.pool;
        let mark = jobs::listing_mark(pool, &self.bucket, prefix).await?;
        let forced = self.discovery.full_scan.load(Ordering::Relaxed);
        let after = match (self.discovery.incremental, &mark) {
            (Some(interval), Some(mark)) if !forced => mark
                .full_listed_at
                .filter(|at| (chrono::Utc::now() - *at).to_std().unwrap_or_default() < interval)
                .map(|_| mark.greatest_key.clone()),
            _ => None,
        };
        if self.discovery.notifications && after.is_some() {
            return Ok(None);
        }
        let mut done = Discovered {
            full: after.is_none(),
            ..Default::default()
        };
        let earlier = mark.map(|mark| mark.greatest_key);
        let mut pages = self.listing.pages_after(prefix, after.as_deref());
        let mut greatest: Option<String> = None;
        while let Some(page) = self.next_page(&mut pages).await? {
            if let Some(last) = page.iter().map(|o| &o.key).max()
                && greatest.as_ref().is_none_or(|g| last > g)
            {
                greatest = Some(last.clone());
            }
            let page = self.included(page);
            // Keys up to the mark, and those after it: what a full listing finds before the
            // mark, incremental listings could not have seen.
            let (before, rest): (Vec<Listed>, Vec<Listed>) = match (&earlier, done.full) {
                // The first full listing finds what was there before; later ones find
                // what no notification reported.
                (Some(_), true) if self.discovery.notifications => (page, Vec::new()),
                (Some(mark), true) => page.into_iter().partition(|o| &o.key <= mark),
                _ => (Vec::new(), page),
            };
            if !before.is_empty() {
                let mut found = jobs::Discovered::default();
                self.record_page(&before, &mut found).await?;
                done.before_mark += found.new;
                done.found.new += found.new;
                done.found.replaced += found.replaced;
            }
            if !rest.is_empty() {
                self.record_page(&rest, &mut done.found).await?;
            }
        }
        done.skipped = pages.skipped();
        if greatest.is_some() || done.full {
            let greatest = greatest.unwrap_or_default();
            jobs::advance_mark(pool, &self.bucket, prefix, &greatest, done.full).await?;
        }
        if forced {
            self.discovery.full_scan.store(false, Ordering::Relaxed);
        }
        Ok(Some(done))
    }

    async fn record_page(
        &self,
        page: &[Listed],
        found: &mut jobs::Discovered,
    ) -> anyhow::Result<()> {
        let replace = self.on_change == OnChange::Reingest;
        let page = jobs::discover(&self.ingest.pool, &self.bucket, page, replace).await?;
        health::progressed(Progress::ListingPage);
        found.new += page.new;
        found.replaced += page.replaced;
        Ok(())
    }
}

/// Counts a completed file's ingestion lag: from its upload to now.
fn record_lag(file: &ClaimedFile, report: &FileReport) {
    if let Some(modified) = file.last_modified
        && report.outcome == Outcome::Completed
    {
        // An upload time ahead of this machine's clock counts as no lag.
        let lag = (chrono::Utc::now() - modified).to_std().unwrap_or_default();
        events::ingestion_lag(lag);
    }
}

/// Splits claimed small files into groups of at most `files` files and `bytes` stored
/// bytes (a file larger than `bytes` is a group of its own), in claim order.
fn groups(claimed: Vec<ClaimedFile>, files: usize, bytes: u64) -> Vec<Vec<ClaimedFile>> {
    let mut out: Vec<Vec<ClaimedFile>> = Vec::new();
    let mut held = 0;
    for file in claimed {
        let size = file.size.unwrap_or(bytes);
        match out.last_mut() {
            Some(group) if group.len() < files && held + size <= bytes => {
                held += size;
                group.push(file);
            }
            _ => {
                held = size;
                out.push(vec![file]);
            }
        }
    }
    out
}

/// A file whose database connection failed mid-way (`fatal`): once the database answers
/// again (within the reconnect bound), its claim is given back as a transient failure due
/// at once, so the next claim takes it up at its checkpoint. The attempt counts, so a file
/// that brings the connection down every time ends FAILED after `--max-attempts`.
pub(crate) async fn recover(
    pool: &sqlx::PgPool,
    reconnect: &Reconnect,
    fatal: FatalError,
) -> anyhow::Result<FileReport> {
    if !jobs::is_connection_error(&fatal.source) {
        return Err(fatal.into());
    }
    let cause = format!("database connection lost: {}", fatal.source);
    tracing::warn!(file = %fatal.display, error = %fatal.source, "database connection lost; the file is given back once the database answers");
    reconnect
        .retry("reach the database", || async {
            sqlx::query("SELECT 1").execute(pool).await
        })
        .await
        .with_context(|| fatal.display.clone())?;
    if let Some(lease) = &fatal.lease {
        let given_back = reconnect
            .retry("give a file back", || {
                lease.fail(pool, &cause, false, std::time::Duration::ZERO)
            })
            .await
            .with_context(|| fatal.display.clone())?;
        if !given_back {
            tracing::info!(file = %fatal.display, "lease lost while the database was away: another worker has the file");
        }
    }
    Ok(FileReport {
        display: fatal.display,
        outcome: Outcome::Failed(cause),
        counts: Default::default(),
        elapsed: Default::default(),
        replaced: false,
    })
}

/// Marks a claimed file whose key cannot be read FAILED for good (a permanent fault: not
/// due again until `jobs retry` or a new version).
async fn fail_unreadable(
    ingest: &Ingest,
    lease: &Lease,
    display: String,
    cause: &str,
) -> anyhow::Result<FileReport> {
    let started = std::time::Instant::now();
    let failed = lease
        .fail(&ingest.pool, cause, true, std::time::Duration::ZERO)
        .await
        .with_context(|| display.clone())?;
    Ok(FileReport {
        display,
        outcome: if failed {
            Outcome::Failed(cause.to_string())
        } else {
            Outcome::LeaseLost
        },
        counts: Default::default(),
        elapsed: started.elapsed(),
        replaced: false,
    })
}
