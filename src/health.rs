//! Owns whether the process is alive and ready, as `/healthz` and `/readyz` on the metrics
//! address tell an orchestrator (Kubernetes probes, a load balancer, systemd's watchers).
//!
//! - Alive (`/healthz`): from the start until the process begins to stop (a signal, or the
//!   end of its work). A restart would not help a process that is stopping, and would cut
//!   short the chunks it is finishing.
//! - Ready (`/readyz`): `run` watches two things ([`Health::watch`]): the database answered
//!   a probe within the last `--interval` (1 s at least, 60 s at most: a day-long interval
//!   must not hide an outage for a day), and the run loop moved within three `--interval`s
//!   (10 s at least): a pass or a notification poll finished, or — inside a long pass — a
//!   chunk committed or a listing page was recorded. A pass that takes an hour to back
//!   fill a bucket is busy, not stuck; one that commits nothing for that long is.
//!
//! The state is one per process (like the metrics), marked by plain calls from the run loop,
//! the notification task, the database probe and `events`; every check takes `now`, so the
//! tests move the clock instead of sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the run loop did last (named in `/readyz`'s reason).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The loop started watching (the first pass is under way).
    Started,
    /// A pass over the bucket finished.
    Pass,
    /// A receive of bucket notifications finished.
    NotificationPoll,
    /// A chunk transaction committed.
    Commit,
    /// A page of a listing was recorded.
    ListingPage,
}

impl Progress {
    fn describe(self) -> &'static str {
        match self {
            Self::Started => "the run started",
            Self::Pass => "a pass finished",
            Self::NotificationPoll => "a notification poll finished",
            Self::Commit => "a chunk committed",
            Self::ListingPage => "a listing page was recorded",
        }
    }
}

/// What readiness asks of a run with `--interval` `interval`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Checks {
    /// `--interval`.
    pub interval: Duration,
}

impl Checks {
    /// The database must have answered within this: `--interval`, 1 s to 60 s.
    pub fn database_within(&self) -> Duration {
        self.interval
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// The run loop must have moved within this: three `--interval`s, 10 s at least.
    pub fn progress_within(&self) -> Duration {
        (self.interval * 3).max(Duration::from_secs(10))
    }

    /// How often the database is probed: four times per [`Checks::database_within`], so
    /// that one slow answer does not flip readiness.
    pub fn probe_every(&self) -> Duration {
        self.database_within() / 4
    }

    /// How long one probe may take: half of [`Checks::database_within`].
    pub fn probe_timeout(&self) -> Duration {
        self.database_within() / 2
    }
}

#[derive(Debug)]
struct State {
    stopping: bool,
    checks: Option<Checks>,
    database_answered: Option<Instant>,
    database_error: Option<String>,
    progressed: Option<(Instant, Progress)>,
}

/// The process's health.
#[derive(Debug)]
pub struct Health {
    state: Mutex<State>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub const fn new() -> Self {
        Self {
            state: Mutex::new(State {
                stopping: false,
                checks: None,
                database_answered: None,
                database_error: None,
                progressed: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain values: still readable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the readiness checks of a run (from `now`).
    pub fn watch(&self, checks: Checks, now: Instant) {
        let mut state = self.state();
        state.checks = Some(checks);
        state.progressed = Some((now, Progress::Started));
    }

    /// The database answered a probe at `now`.
    pub fn database_answered(&self, now: Instant) {
        let mut state = self.state();
        state.database_answered = Some(now);
        state.database_error = None;
    }

    /// A probe of the database failed with `error` (one line, no password).
    pub fn database_failed(&self, error: &str) {
        self.state().database_error = Some(error.to_string());
    }

    /// The run loop moved at `now`.
    pub fn progressed(&self, what: Progress, now: Instant) {
        self.state().progressed = Some((now, what));
    }

    /// The process begins to stop: neither alive nor ready from now on.
    pub fn shutting_down(&self) {
        self.state().stopping = true;
    }

    /// `/healthz`: Ok, or why not.
    pub fn liveness(&self) -> Result<(), String> {
        if self.state().stopping {
            return Err("shutting down".into());
        }
        Ok(())
    }

    /// `/readyz` at `now`: Ok, or the reason in one line.
    pub fn readiness(&self, now: Instant) -> Result<(), String> {
        let state = self.state();
        if state.stopping {
            return Err("shutting down".into());
        }
        let Some(checks) = state.checks else {
            return Err("no readiness checks in this command: `run` serves them".into());
        };
        let within = checks.database_within();
        let last_error = state.database_error.as_deref();
        match state.database_answered {
            None => {
                return Err(match last_error {
                    Some(error) => format!("database: no answer yet (last error: {error})"),
                    None => "database: no answer yet".into(),
                });
            }
            Some(at) if now.saturating_duration_since(at) > within => {
                let cause = last_error
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default();
                return Err(format!(
                    "database: no answer for {} (allowed {}: --interval within 1-60 s{cause})",
                    secs(now.saturating_duration_since(at)),
                    secs(within),
                ));
            }
            Some(_) => {}
        }
        let within = checks.progress_within();
        if let Some((at, what)) = state.progressed {
            let ago = now.saturating_duration_since(at);
            if ago > within {
                return Err(format!(
                    "run loop: no pass, notification poll, commit or listing page for {} \
                     (allowed {}: three --intervals, at least 10 s; last: {})",
                    secs(ago),
                    secs(within),
                    what.describe(),
                ));
            }
        }
        Ok(())
    }
}

/// `12.3 s`.
fn secs(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

static HEALTH: Health = Health::new();

/// The process's health.
pub fn health() -> &'static Health {
    &HEALTH
}

/// Marks progress of the run loop now.
pub fn progressed(what: Progress) {
    health().progressed(what, Instant::now());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watched(interval: f64) -> (Health, Instant) {
        let health = Health::new();
        let start = Instant::now();
        health.watch(
            Checks {
                interval: Duration::from_secs_f64(interval),
            },
            start,
        );
        (health, start)
    }

    #[test]
    fn the_windows_follow_the_interval_within_bounds() {
        let checks = |secs: f64| Checks {
            interval: Duration::from_secs_f64(secs),
        };
        assert_eq!(checks(30.0).database_within(), Duration::from_secs(30));
        assert_eq!(checks(0.1).database_within(), Duration::from_secs(1));
        assert_eq!(checks(86_400.0).database_within(), Duration::from_secs(60));
        assert_eq!(checks(30.0).progress_within(), Duration::from_secs(90));
        assert_eq!(checks(0.5).progress_within(), Duration::from_secs(10));
        assert!(checks(30.0).probe_every() < checks(30.0).database_within());
        assert!(checks(0.1).probe_timeout() <= Duration::from_millis(500));
    }

    #[test]
    fn alive_until_it_stops() {
        let health = Health::new();
        assert_eq!(health.liveness(), Ok(()));
        health.shutting_down();
        assert_eq!(health.liveness(), Err("shutting down".into()));
        assert_eq!(
            health.readiness(Instant::now()),
            Err("shutting down".into())
        );
    }

    #[test]
    fn not_ready_without_checks_or_before_the_database_answered() {
        let health = Health::new();
        let reason = health.readiness(Instant::now()).unwrap_err();
        assert!(reason.contains("`run` serves them"), "{reason}");
        let (health, start) = watched(30.0);
        health.database_failed("connection refused");
        let reason = health.readiness(start).unwrap_err();
        assert_eq!(
            reason,
            "database: no answer yet (last error: connection refused)"
        );
    }

    #[test]
    fn ready_while_the_database_answers_and_the_loop_moves() {
        let (health, start) = watched(30.0);
        health.database_answered(start);
        assert_eq!(health.readiness(start + Duration::from_secs(29)), Ok(()));

        // The database stopped answering: not ready past the interval, with the cause.
        health.database_failed("connection refused");
        let reason = health
            .readiness(start + Duration::from_secs(31))
            .unwrap_err();
        assert_eq!(
            reason,
            "database: no answer for 31.0 s (allowed 30.0 s: --interval within 1-60 s; \
             last error: connection refused)"
        );
        assert!(!reason.contains('\n'));

        // It answers again: ready again, without a restart.
        health.database_answered(start + Duration::from_secs(40));
        health.progressed(Progress::Pass, start + Duration::from_secs(40));
        assert_eq!(health.readiness(start + Duration::from_secs(41)), Ok(()));
    }

    #[test]
    fn a_loop_that_stopped_moving_is_not_ready() {
        let (health, start) = watched(30.0);
        let later = start + Duration::from_secs(95);
        health.database_answered(later);
        let reason = health.readiness(later).unwrap_err();
        assert!(reason.starts_with("run loop: "), "{reason}");
        assert_eq!(
            reason,
            "run loop: no pass, notification poll, commit or listing page for 95.0 s \
             (allowed 90.0 s: three --intervals, at least 10 s; last: the run started)"
        );

        // A commit inside a long pass counts as moving.
        health.progressed(Progress::Commit, later);
        health.database_answered(later + Duration::from_secs(89));
        assert_eq!(health.readiness(later + Duration::from_secs(89)), Ok(()));
        health.database_answered(later + Duration::from_secs(100));
        let reason = health
            .readiness(later + Duration::from_secs(100))
            .unwrap_err();
        assert!(reason.ends_with("last: a chunk committed)"), "{reason}");
    }
}
