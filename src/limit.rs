//! Process-wide limits: rates (`--max-records-per-sec`, `--max-bytes-per-sec`), so a
//! backfill can run next to production traffic without starving the database, and the
//! small files read at once ([`READS_AT_ONCE`]).
//!
//! A limiter hands out time slots: taking `n` units reserves `n / rate` seconds after the
//! previous reservation and waits until that slot has passed, so every file in flight shares
//! one budget and the average over a run stays at or just under the limit.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// One rate (units per second), shared by all tasks.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    next_free: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second,
            next_free: Mutex::new(None),
        }
    }

    /// Waits until `units` fit in the budget.
    pub async fn take(&self, units: u64) {
        if units == 0 {
            return;
        }
        let cost = Duration::from_secs_f64(units as f64 / self.per_second);
        let until = {
            let mut next = self.next_free.lock().expect("limiter lock");
            let now = Instant::now();
            let start = next.filter(|at| *at > now).unwrap_or(now);
            let until = start + cost;
            *next = Some(until);
            until
        };
        tokio::time::sleep_until(until).await;
    }
}

/// Small files read ahead at once in a process, whatever `--concurrency` (the number of
/// COPY streams): enough requests in flight to hide an object store's latency (64 objects
/// of a few KB each per 20 ms round trip are 3,200 objects/s), few enough for its rate
/// limits and for memory (each holds one small file, at most 256 KiB stored).
pub const READS_AT_ONCE: usize = 64;

/// The limits of a process; `None` means unlimited.
#[derive(Debug)]
pub struct Limits {
    pub records: Option<RateLimiter>,
    pub bytes: Option<RateLimiter>,
    /// Small files being read ([`READS_AT_ONCE`] permits).
    pub reads: tokio::sync::Semaphore,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(None, None)
    }
}

impl Limits {
    pub fn new(records_per_sec: Option<f64>, bytes_per_sec: Option<f64>) -> Self {
        let positive = |rate: Option<f64>| rate.filter(|r| *r > 0.0).map(RateLimiter::new);
        Self {
            records: positive(records_per_sec),
            bytes: positive(bytes_per_sec),
            reads: tokio::sync::Semaphore::new(READS_AT_ONCE),
        }
    }

    pub async fn take_records(&self, n: u64) {
        if let Some(limiter) = &self.records {
            limiter.take(n).await;
        }
    }

    pub async fn take_bytes(&self, n: u64) {
        if let Some(limiter) = &self.bytes {
            limiter.take(n).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn holds_the_rate_across_tasks() {
        let limiter = std::sync::Arc::new(RateLimiter::new(10_000.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    for _ in 0..5 {
                        limiter.take(100).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        // 2,000 units at 10,000/s.
        let elapsed = start.elapsed();
        assert!(elapsed >= Duration::from_millis(199), "{elapsed:?}");
        assert!(elapsed < Duration::from_millis(300), "{elapsed:?}");
    }
}
