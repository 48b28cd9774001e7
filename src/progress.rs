//! Live progress of long work: a progress bar on a terminal (files done / total, records and
//! bytes per second, ETA), or one status line in the logs every interval when stderr is not
//! a terminal (or with `--json` / `--quiet`): never escape codes where no one sees them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// A bar on stderr (a terminal).
    Bar,
    /// A log line every interval.
    Lines(Duration),
}

impl ProgressMode {
    /// A bar when stderr is a terminal and the output is for people; log lines otherwise.
    pub fn choose(machine_output: bool, interval: Duration) -> Self {
        if !machine_output && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Self::Bar
        } else {
            Self::Lines(interval)
        }
    }
}

/// Files known and done, shared with the reporter.
#[derive(Debug, Default)]
pub struct FileCounts {
    pub total: AtomicU64,
    pub done: AtomicU64,
}

impl FileCounts {
    /// `n` more files to do.
    pub fn add_total(&self, n: u64) {
        self.total.fetch_add(n, Ordering::Relaxed);
    }

    /// One more file done.
    pub fn add_done(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// The running reporter; stop it with [`Reporter::finish`].
pub struct Reporter {
    task: tokio::task::JoinHandle<()>,
    bar: Option<ProgressBar>,
}

/// Records ingested and bytes read by the process so far.
fn snapshot() -> (u64, u64) {
    crate::events::totals()
}

/// The estimated time left from the files done so far, or `unknown` when there is nothing
/// to estimate from: no file done yet, or none done for `stalled` (an estimate that only
/// grows while nothing moves says nothing).
fn eta(
    done: u64,
    total: u64,
    elapsed: Duration,
    since_last_done: Duration,
    stalled: Duration,
) -> String {
    if total <= done {
        return "-".into();
    }
    if done == 0 || since_last_done > stalled {
        return "unknown".into();
    }
    let left = elapsed.mul_f64((total - done) as f64 / done as f64);
    format!("{}s", left.as_secs())
}

impl Reporter {
    /// Starts reporting on `files`.
    pub fn start(mode: ProgressMode, files: Arc<FileCounts>) -> Self {
        let started = Instant::now();
        let (base_records, base_bytes) = snapshot();
        let bar = (mode == ProgressMode::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} files  {msg}")
                    .expect("valid template"),
            );
            bar
        });
        let shown = bar.clone();
        if let Ok(mut active) = ACTIVE_BAR.lock() {
            active.clone_from(&bar);
        }
        let every = match mode {
            ProgressMode::Bar => Duration::from_millis(250),
            ProgressMode::Lines(interval) => interval,
        };
        // No file done for this long: the estimate is unknown.
        let stalled = (every * 3).max(Duration::from_secs(30));
        let task = tokio::spawn(async move {
            let (mut last_done, mut last_change) = (0, Instant::now());
            loop {
                tokio::time::sleep(every).await;
                let elapsed = started.elapsed();
                let (records, bytes) = snapshot();
                let (records, bytes) = (records - base_records, bytes - base_bytes);
                let secs = elapsed.as_secs_f64().max(1e-3);
                let total = files.total.load(Ordering::Relaxed);
                let done = files.done.load(Ordering::Relaxed);
                let records_rate = records as f64 / secs;
                let mb_rate = bytes as f64 / secs / 1e6;
                if done != last_done {
                    (last_done, last_change) = (done, Instant::now());
                }
                let eta = eta(done, total, elapsed, last_change.elapsed(), stalled);
                match &shown {
                    Some(bar) => {
                        bar.set_length(total);
                        bar.set_position(done);
                        bar.set_message(format!(
                            "{records} records  {records_rate:.0} rec/s  {mb_rate:.1} MB/s  ETA {eta}"
                        ));
                    }
                    None => tracing::info!(
                        files_done = done,
                        files_total = total,
                        records,
                        records_per_sec = records_rate as u64,
                        mb_per_sec = format!("{mb_rate:.1}"),
                        eta = %eta,
                        "progress"
                    ),
                }
            }
        });
        Self { task, bar }
    }

    /// Stops reporting and clears the bar.
    pub fn finish(self) {
        self.task.abort();
        if let Ok(mut active) = ACTIVE_BAR.lock() {
            *active = None;
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The bar being drawn, if any: log lines are printed around it instead of through it.
static ACTIVE_BAR: std::sync::Mutex<Option<ProgressBar>> = std::sync::Mutex::new(None);

/// A log line writer for `tracing`: writes to stderr, hiding the progress bar meanwhile so
/// that log lines and the bar do not overwrite each other.
#[derive(Default)]
pub struct LogWriter {
    line: Vec<u8>,
}

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        // Field values come from outside (keys, file names, errors): no raw control
        // characters reach the terminal.
        let line = crate::text::printable_line(&self.line);
        let write = || {
            let _ = std::io::Write::write_all(&mut std::io::stderr(), &line);
        };
        let bar = ACTIVE_BAR.lock().ok().and_then(|bar| bar.clone());
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15 item 4: an estimate is only shown while files are being done.
    #[test]
    fn the_eta_is_unknown_while_nothing_moves() {
        let s = Duration::from_secs;
        assert_eq!(eta(1, 4, s(10), s(1), s(30)), "30s");
        assert_eq!(eta(0, 4, s(10), s(10), s(30)), "unknown");
        assert_eq!(eta(1, 4, s(100), s(60), s(30)), "unknown");
        assert_eq!(eta(4, 4, s(10), s(1), s(30)), "-");
    }
}
