//! Resumable reads of one object from an object store.
//!
//! One GET per object would put a total time limit on reading it: object_store gives each
//! request a timeout (`--s3-timeout-secs`, 30 s by default) and resumes a broken body only
//! within one request's retry budget (10 retries, 3 minutes), so a large object read slowly
//! (a rate limit, a slow consumer) could never finish. This reader remembers how many bytes
//! it handed on and the version of the first response (etag, last-modified, size, version
//! id); when the body stream fails or ends before the announced size, it continues with a
//! ranged GET from the first byte not yet handed on, pinned to that version (`If-Match`, or
//! `If-Unmodified-Since` without an etag), feeding the same consumer. A body cut by the
//! network is therefore a transient fault that is resumed, never taken for the object's
//! end. An object that changed meanwhile is an error that says so ([`ReadError::Changed`]);
//! [`STALLED_RESUMES`] resumes in a row without a byte of progress end the read
//! ([`ReadError::Stalled`]) with the byte offset and the last cause.
//!
//! The reader hands on the `Bytes` of the responses as they come: no copies.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, GetResult, GetResultPayload, ObjectMeta, ObjectStore};

/// Resumes in a row that may deliver no byte before the read fails.
pub const STALLED_RESUMES: u32 = 6;

/// Wait before the n-th resume in a row without progress (the first after progress is
/// immediate: object_store already backs off within each request).
fn pause(stalled: u32) -> Duration {
    Duration::from_millis(200u64 << stalled.saturating_sub(1).min(5)).min(Duration::from_secs(5))
}

/// Why an object could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The object was replaced or deleted while it was being read.
    #[error("object changed while being read: {object} at byte {offset} of {size}: {detail}")]
    Changed {
        object: String,
        offset: u64,
        size: u64,
        detail: String,
    },
    /// Resuming made no progress [`STALLED_RESUMES`] times in a row.
    #[error(
        "cannot read {object} past byte {offset} of {size}: {attempts} resumed reads in a row \
         made no progress; last cause: {cause}"
    )]
    Stalled {
        object: String,
        offset: u64,
        size: u64,
        attempts: u32,
        cause: String,
    },
}

impl From<ReadError> for std::io::Error {
    fn from(error: ReadError) -> Self {
        let kind = match error {
            ReadError::Changed { .. } => std::io::ErrorKind::Other,
            ReadError::Stalled { .. } => std::io::ErrorKind::TimedOut,
        };
        std::io::Error::new(kind, error)
    }
}

/// The version a ranged GET must match to continue a read.
#[derive(Debug, Clone)]
struct Pin {
    etag: Option<String>,
    last_modified: DateTime<Utc>,
    version: Option<String>,
    size: u64,
}

impl Pin {
    fn options(&self, range: std::ops::Range<u64>) -> GetOptions {
        GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: self.etag.clone(),
            // Without an etag the last-modified time is all there is (second resolution).
            if_unmodified_since: self.etag.is_none().then_some(self.last_modified),
            version: self.version.clone(),
            ..Default::default()
        }
    }

    /// What differs between the pinned version and a response (None: the same version).
    fn differs(&self, result: &GetResult) -> Option<String> {
        let meta = &result.meta;
        match (&self.etag, &meta.e_tag) {
            (Some(pinned), Some(now)) if pinned != now => {
                return Some(format!("etag {pinned} became {now}"));
            }
            _ => {}
        }
        (meta.size != self.size).then(|| format!("size {} became {}", self.size, meta.size))
    }
}

/// The read of one object: where it is, how far it got, the version it is pinned to.
struct Resumable {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    pin: Pin,
    /// Bytes handed on so far: the next ranged GET starts here.
    consumed: u64,
    body: BoxStream<'static, object_store::Result<Bytes>>,
    /// Resumes in a row without progress, and where the last one started.
    stalled: u32,
    resumed_at: u64,
    done: bool,
}

impl Resumable {
    fn object(&self) -> String {
        format!("{}", self.path)
    }

    fn changed(&self, detail: String) -> ReadError {
        ReadError::Changed {
            object: self.object(),
            offset: self.consumed,
            size: self.pin.size,
            detail,
        }
    }

    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        if self.done {
            return None;
        }
        loop {
            let cause = match self.body.next().await {
                Some(Ok(bytes)) => {
                    self.consumed += bytes.len() as u64;
                    return Some(Ok(bytes));
                }
                // Every byte arrived: an error after the last one (a timeout while waiting
                // for the end of the body) loses nothing.
                _ if self.consumed >= self.pin.size => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => e.to_string(),
                None => format!(
                    "the response ended at byte {} of {}",
                    self.consumed, self.pin.size
                ),
            };
            if let Err(e) = self.resume(cause).await {
                self.done = true;
                return Some(Err(e.into()));
            }
        }
    }

    /// Replaces the broken body by a ranged GET from `consumed`, pinned to the version.
    async fn resume(&mut self, mut cause: String) -> Result<(), ReadError> {
        loop {
            if self.consumed > self.resumed_at {
                self.stalled = 0;
            }
            self.resumed_at = self.consumed;
            self.stalled += 1;
            if self.stalled > STALLED_RESUMES {
                return Err(ReadError::Stalled {
                    object: self.object(),
                    offset: self.consumed,
                    size: self.pin.size,
                    attempts: STALLED_RESUMES,
                    cause,
                });
            }
            if self.stalled > 1 {
                tokio::time::sleep(pause(self.stalled - 1)).await;
            }
            tracing::info!(
                object = %self.path,
                offset = self.consumed,
                size = self.pin.size,
                %cause,
                "resuming the read with a ranged GET"
            );
            let options = self.pin.options(self.consumed..self.pin.size);
            match self.store.get_opts(&self.path, options).await {
                Ok(result) => {
                    if let Some(detail) = self.pin.differs(&result) {
                        return Err(self.changed(detail));
                    }
                    match result.payload {
                        GetResultPayload::Stream(body) => {
                            self.body = body;
                            return Ok(());
                        }
                        GetResultPayload::File(..) => {
                            cause = "a ranged read returned a local file".into();
                        }
                    }
                }
                Err(object_store::Error::Precondition { .. }) => {
                    return Err(self.changed("it no longer matches the version being read".into()));
                }
                Err(object_store::Error::NotFound { .. }) => {
                    return Err(self.changed("it was deleted".into()));
                }
                Err(e) => cause = e.to_string(),
            }
        }
    }
}

/// `body`, the streamed response to a GET of the whole object `path` in `store` described
/// by `meta`, as a stream that resumes where it broke off.
pub fn resumable(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    meta: &ObjectMeta,
    body: BoxStream<'static, object_store::Result<Bytes>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let pin = Pin {
        etag: meta.e_tag.clone(),
        last_modified: meta.last_modified,
        version: meta.version.clone(),
        size: meta.size,
    };
    let read = Resumable {
        store,
        path,
        pin,
        consumed: 0,
        body,
        stalled: 0,
        resumed_at: 0,
        done: false,
    };
    futures::stream::unfold(read, |mut read| async move {
        let item = read.next().await?;
        Some((item, read))
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_and_are_capped() {
        assert_eq!(pause(1), Duration::from_millis(200));
        assert_eq!(pause(2), Duration::from_millis(400));
        assert_eq!(pause(30), Duration::from_secs(5));
    }
}
