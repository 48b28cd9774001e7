//! What a listing yields: listed objects, in pages, and the keys it skips.

use crate::metrics::{self, METRICS};

/// One listed object, as discovery records it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// Keys per page handed to discovery.
pub const PAGE_KEYS: usize = 1000;

/// Counts and logs a listed key that cannot be stored as a job.
pub fn skip_key(key: &str, reason: &str) {
    metrics::add(&METRICS.keys_skipped, 1);
    tracing::warn!(key = ?key, reason, "key skipped");
}
