//! The version of an object or file: what an attempt read, so that records of two versions
//! are never mixed. A checkpoint belongs to the version it counted records of; an attempt
//! that finds another version starts the object over.

use chrono::{DateTime, Utc};

/// One version of an object (S3: its ETag; a local file: its size and modification time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub etag: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
    pub size: u64,
}

impl ObjectVersion {
    /// A text that differs between versions: the ETag where there is one, else size and
    /// modification time (to the nanosecond).
    pub fn id(&self) -> String {
        match &self.etag {
            Some(etag) => format!("etag:{etag}"),
            None => format!(
                "size:{};modified:{}",
                self.size,
                self.last_modified
                    .map_or_else(|| "unknown".into(), |t| t.to_rfc3339())
            ),
        }
    }

    /// The version of a local file.
    pub fn of_file(metadata: &std::fs::Metadata) -> Self {
        Self {
            etag: None,
            last_modified: metadata.modified().ok().map(DateTime::<Utc>::from),
            size: metadata.len(),
        }
    }

    /// The version an object store reports.
    pub fn of_meta(meta: &object_store::ObjectMeta) -> Self {
        Self {
            etag: meta.e_tag.clone(),
            last_modified: Some(meta.last_modified),
            size: meta.size,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_differ_by_etag_or_by_size_and_time() {
        let at = DateTime::from_timestamp(1_700_000_000, 5).unwrap();
        let v = |etag: Option<&str>, size| ObjectVersion {
            etag: etag.map(str::to_string),
            last_modified: Some(at),
            size,
        };
        assert_ne!(v(Some("a"), 1).id(), v(Some("b"), 1).id());
        assert_eq!(v(Some("a"), 1).id(), v(Some("a"), 2).id());
        assert_ne!(v(None, 1).id(), v(None, 2).id());
        let later = ObjectVersion {
            last_modified: Some(at + chrono::Duration::nanoseconds(1)),
            ..v(None, 1)
        };
        assert_ne!(v(None, 1).id(), later.id());
    }
}
