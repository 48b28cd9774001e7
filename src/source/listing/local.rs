//! Listing a local bucket folder (`run --local-buckets`): the walk of [`crate::source::walk`]
//! on a blocking thread, handed over in pages through a small channel, so memory holds a
//! page or two and one directory's names, never the whole folder.
//!
//! A key is the file's path relative to the folder with `/` separators; a file reached
//! through a followed link is keyed by its real path, so each real file is listed under one
//! key. Size, last-modified time and ETag are those object_store's `LocalFileSystem` gives
//! (ETag `{inode:x}-{mtime_us:x}-{size:x}`), so jobs recorded by earlier versions keep
//! matching.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::listed::{Listed, PAGE_KEYS};
use crate::source::walk::{Found, SkipReason, Walk};

/// A folder of a local bucket that cannot be walked.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct LocalListError {
    pub path: std::path::PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// One walk of a bucket folder in progress.
pub struct Pages {
    receiver: mpsc::Receiver<Result<Vec<Listed>, LocalListError>>,
    skipped: Arc<AtomicU64>,
}

impl Pages {
    /// Starts walking `root` (canonical) for keys starting with `prefix` and sorting after
    /// `after` (byte by byte) when given.
    pub fn start(
        root: PathBuf,
        follow_symlinks: bool,
        prefix: &str,
        after: Option<String>,
    ) -> Pages {
        let (sender, receiver) = mpsc::channel(1);
        let skipped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&skipped);
        let prefix = prefix.to_string();
        tokio::task::spawn_blocking(move || {
            let keys = Keys {
                prefix: &prefix,
                after: after.as_deref(),
            };
            walk(&root, follow_symlinks, keys, &sender, &counter);
        });
        Pages { receiver, skipped }
    }

    pub async fn next_page(&mut self) -> Result<Option<Vec<Listed>>, LocalListError> {
        self.receiver.recv().await.transpose()
    }

    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// The keys a walk lists.
#[derive(Clone, Copy)]
struct Keys<'a> {
    prefix: &'a str,
    after: Option<&'a str>,
}

impl Keys<'_> {
    fn take(&self, key: &str) -> bool {
        key.starts_with(self.prefix) && self.after.is_none_or(|after| key > after)
    }
}

fn walk(
    root: &Path,
    follow_symlinks: bool,
    keys: Keys<'_>,
    sender: &mpsc::Sender<Result<Vec<Listed>, LocalListError>>,
    skipped: &AtomicU64,
) {
    let mut walk = match Walk::new(root, follow_symlinks, keys.prefix) {
        Ok(walk) => walk,
        Err(source) => {
            let path = root.to_path_buf();
            let _ = sender.blocking_send(Err(LocalListError { path, source }));
            return;
        }
    };
    let mut page = Vec::with_capacity(PAGE_KEYS);
    let mut extra = crate::source::walk::WalkStats::default();
    while let Some(found) = walk.next() {
        match key_of(root, &found) {
            Some(key) if keys.take(&key) => page.push(listed(key, &found)),
            Some(_) => {}
            None => extra.skip(&found.path, SkipReason::NotUtf8, None),
        }
        skipped.store(walk.stats().skipped() + extra.skipped(), Ordering::Relaxed);
        if page.len() == PAGE_KEYS {
            let full = std::mem::replace(&mut page, Vec::with_capacity(PAGE_KEYS));
            if sender.blocking_send(Ok(full)).is_err() {
                return;
            }
        }
    }
    skipped.store(walk.stats().skipped() + extra.skipped(), Ordering::Relaxed);
    if !page.is_empty() {
        let _ = sender.blocking_send(Ok(page));
    }
}

/// The key of a found file: its path relative to `root`, through links its real one.
fn key_of(root: &Path, found: &Found) -> Option<String> {
    match &found.real {
        None => Some(found.relative.clone()),
        Some(real) => real.strip_prefix(root).ok()?.to_str().map(str::to_string),
    }
}

fn listed(key: String, found: &Found) -> Listed {
    use std::os::unix::fs::MetadataExt;
    let meta = &found.meta;
    let modified = meta.modified().ok();
    let micros = modified
        .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    Listed {
        key,
        size: meta.len(),
        etag: Some(format!("{:x}-{micros:x}-{:x}", meta.ino(), meta.len())),
        last_modified: modified.map(DateTime::<Utc>::from).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    use object_store::local::LocalFileSystem;

    use super::*;

    #[tokio::test]
    async fn keys_and_metadata_match_object_stores_local_listing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("logs/2024")).unwrap();
        for name in [
            "logs/2024/a.json",
            "logs/2024/b c.json.gz",
            "logs/x%y.log",
            "top.json",
        ] {
            std::fs::write(root.join(name), name).unwrap();
        }
        let store = LocalFileSystem::new_with_prefix(&root).unwrap();
        let mut theirs: Vec<_> = store
            .list(None)
            .map_ok(|m| (m.location.to_string(), m.size, m.e_tag, m.last_modified))
            .try_collect()
            .await
            .unwrap();
        theirs.sort();
        let mut pages = Pages::start(root.clone(), false, "", None);
        let mut ours = Vec::new();
        while let Some(page) = pages.next_page().await.unwrap() {
            ours.extend(
                page.into_iter()
                    .map(|l| (l.key, l.size, l.etag, l.last_modified)),
            );
        }
        ours.sort();
        assert_eq!(ours, theirs);
        let mut pages = Pages::start(root, false, "logs/2024/b", None);
        let page = pages.next_page().await.unwrap().unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].key, "logs/2024/b c.json.gz");
        assert!(pages.next_page().await.unwrap().is_none());
    }
}
