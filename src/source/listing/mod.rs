//! Discovery's view of a bucket: the keys under a prefix, page by page, as plain strings,
//! never parsed into object_store's `Path` (which refuses `//`, `.`/`..` segments and
//! control characters and so would stop a whole listing at one odd key). S3 is listed with
//! our own signed ListObjectsV2 requests ([`s3`]); a local bucket folder with our own walk
//! ([`local`]), which does not follow symlinks unless asked to. Keys that cannot be stored
//! are skipped with a warning and counted in `ingestor_keys_skipped_total`.
//!
//! [`Listing::source`] says how a listed key is read: through the object store when its
//! `Path` names exactly that key; otherwise directly from disk for a local bucket, by our
//! own signed GET for S3 ([`raw_key`]); keys with `.`/`..` segments cannot be fetched over
//! HTTP at all (the caller records the job FAILED with [`UnreadableKey`]'s cause).

mod listed;
pub mod local;
pub mod raw_key;
pub mod s3;

pub use listed::{Listed, PAGE_KEYS};

use std::path::PathBuf;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::source::SourceRef;

/// Why a listing failed (after retries for S3).
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    S3(#[from] s3::S3ListError),
    #[error(transparent)]
    Local(#[from] local::LocalListError),
}

/// A key that was listed but cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("key cannot be read through object_store: {0}")]
pub struct UnreadableKey(pub String);

/// Where a bucket's keys come from, and how one is read.
#[derive(Debug, Clone)]
pub enum Listing {
    S3 {
        lister: Arc<s3::S3Lister>,
        store: Arc<dyn ObjectStore>,
    },
    Local {
        /// The bucket folder (canonical).
        root: PathBuf,
        follow_symlinks: bool,
        store: Arc<dyn ObjectStore>,
    },
}

impl Listing {
    /// A fresh listing of the keys that start with `prefix` (a plain string prefix).
    pub fn pages(&self, prefix: &str) -> Pages {
        self.pages_after(prefix, None)
    }

    /// A listing of the keys that start with `prefix` and sort after `after` (byte by byte,
    /// as S3 orders keys): S3 is asked to start there (`start-after`), so the requests grow
    /// with the keys after it, not with the prefix; a local folder is walked whole and the
    /// keys up to `after` left out.
    pub fn pages_after(&self, prefix: &str, after: Option<&str>) -> Pages {
        let after = after.map(str::to_string);
        match self {
            Listing::S3 { lister, .. } => {
                Pages::S3(s3::Pages::new(Arc::clone(lister), prefix, after))
            }
            Listing::Local {
                root,
                follow_symlinks,
                ..
            } => Pages::Local(local::Pages::start(
                root.clone(),
                *follow_symlinks,
                prefix,
                after,
            )),
        }
    }

    /// How to read the object `key` listed here.
    pub fn source(&self, key: &str) -> Result<SourceRef, UnreadableKey> {
        let exact = exact_path(key);
        match (self, exact) {
            (Listing::S3 { store, .. } | Listing::Local { store, .. }, Ok(path)) => {
                Ok(SourceRef::Object {
                    store: Arc::clone(store),
                    path,
                })
            }
            (Listing::Local { root, .. }, Err(cause)) => {
                // The walk only lists plain relative names; anything else is not ours.
                let plain = !key.starts_with('/')
                    && key
                        .split('/')
                        .all(|part| !part.is_empty() && part != "." && part != "..");
                if plain {
                    Ok(SourceRef::Local(root.join(key)))
                } else {
                    Err(UnreadableKey(cause))
                }
            }
            (Listing::S3 { lister, .. }, Err(cause)) => {
                // Our own signed GET reads it, unless a `.`/`..` segment would make the HTTP
                // client fetch another object.
                if key.split('/').any(|part| part == "." || part == "..") {
                    return Err(UnreadableKey(format!(
                        "{cause} (a `.` or `..` segment cannot be sent in a URL path)"
                    )));
                }
                Ok(SourceRef::Object {
                    store: Arc::new(raw_key::RawKeyStore::new(Arc::clone(lister), key)),
                    path: ObjectPath::from(key),
                })
            }
        }
    }
}

/// The object_store `Path` that names exactly `key`, or why there is none.
pub fn exact_path(key: &str) -> Result<ObjectPath, String> {
    match ObjectPath::parse(key) {
        Ok(path) if path.as_ref() == key => Ok(path),
        Ok(path) => Err(format!(
            "{key:?} would be read as {:?} (object_store drops a leading or trailing `/`)",
            path.as_ref()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// One listing in progress.
pub enum Pages {
    S3(s3::Pages),
    Local(local::Pages),
}

impl Pages {
    /// The next page of keys (at most [`PAGE_KEYS`]); None at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Listed>>, ListError> {
        match self {
            Pages::S3(pages) => Ok(pages.next_page().await?),
            Pages::Local(pages) => Ok(pages.next_page().await?),
        }
    }

    /// Keys and entries skipped so far.
    pub fn skipped(&self) -> u64 {
        match self {
            Pages::S3(pages) => pages.skipped(),
            Pages::Local(pages) => pages.skipped(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_keys_object_store_names_exactly_are_read_through_it() {
        for key in ["a.json", "logs/2024/a b.json", "x/ü%#.json"] {
            assert_eq!(exact_path(key).unwrap().as_ref(), key);
        }
        for key in [
            "a//b.json",
            "a/../b.json",
            "./b.json",
            "a\tb.json",
            "/a.json",
            "a/",
        ] {
            assert!(exact_path(key).is_err(), "{key}");
        }
    }
}
