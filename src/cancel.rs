//! Stopping on a signal: the flag every stage checks between chunks, and what the stop cut
//! short (for the exit status).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Set when the process is asked to stop: files stop between chunks and release their lease.
/// Remembers the signal (for the exit status, 128 + its number) and whether it cut work
/// short (a file released, or not started).
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelState>);

#[derive(Debug, Default)]
struct CancelState {
    cancelled: AtomicBool,
    /// Wakes whoever waits (instead of polling the flag).
    token: CancellationToken,
    signal: std::sync::atomic::AtomicI32,
    cut_short: std::sync::atomic::AtomicU64,
}

impl Cancel {
    pub fn cancel(&self) {
        self.0.cancelled.store(true, Ordering::SeqCst);
        self.0.token.cancel();
    }

    /// Waits `duration`, or less if the stop comes first. True when it came.
    pub async fn sleep(&self, duration: Duration) -> bool {
        tokio::select! {
            _ = self.0.token.cancelled() => true,
            _ = tokio::time::sleep(duration) => self.is_cancelled(),
        }
    }

    /// Waits for the stop.
    pub async fn cancelled(&self) {
        self.0.token.cancelled().await
    }

    /// Cancels because of signal number `signal` (2 SIGINT, 15 SIGTERM).
    pub fn cancel_by(&self, signal: i32) {
        self.0.signal.store(signal, Ordering::SeqCst);
        self.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Counts `n` files the stop left undone (released, or never started).
    pub fn left(&self, n: u64) {
        self.0.cut_short.fetch_add(n, Ordering::SeqCst);
    }

    /// Files the stop left undone so far.
    pub fn files_left(&self) -> u64 {
        self.0.cut_short.load(Ordering::SeqCst)
    }

    /// The exit status a signal that cut work short asks for: 130 (SIGINT), 143 (SIGTERM).
    pub fn exit_code(&self) -> Option<i32> {
        let signal = self.0.signal.load(Ordering::SeqCst);
        (self.is_cancelled() && signal > 0).then_some(128 + signal)
    }
}
