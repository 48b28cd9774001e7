//! What a listing yields: listed objects, in pages (a key it skips is an `events::key_skipped`).

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
