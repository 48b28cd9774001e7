//! Reading an S3 object whose key object_store's `Path` cannot name (`a//b`, control
//! characters, a leading `/`): a read-only [`ObjectStore`] for that one key, sending our own
//! signed GETs (see [`super::s3`]). Only reads are implemented (`get_opts` with ranges, HEAD
//! and conditions), which is all the pipeline asks of a source; the `Path` it is given only
//! serves for display and the file's extension.
//!
//! Keys with a `.` or `..` segment cannot be read this way either (HTTP clients normalise
//! such URL paths, so another object would be fetched): [`super::Listing::source`] refuses
//! them.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::header::{
    CONTENT_LENGTH, CONTENT_RANGE, ETAG, IF_MATCH, IF_MODIFIED_SINCE, IF_NONE_MATCH,
    IF_UNMODIFIED_SINCE, LAST_MODIFIED, RANGE,
};
use object_store::path::Path;
use object_store::{
    Attributes, CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult,
    MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};

use super::s3::{Failure, S3Lister};

const NAME: &str = "S3 (raw key)";

/// One object of an S3 bucket, by its raw key.
#[derive(Debug)]
pub struct RawKeyStore {
    lister: Arc<S3Lister>,
    key: String,
}

impl RawKeyStore {
    pub fn new(lister: Arc<S3Lister>, key: &str) -> RawKeyStore {
        RawKeyStore {
            lister,
            key: key.into(),
        }
    }

    fn error(&self, cause: String) -> object_store::Error {
        object_store::Error::Generic {
            store: NAME,
            source: format!("{:?}: {cause}", self.key).into(),
        }
    }
}

impl std::fmt::Display for RawKeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RawKeyStore({:?})", self.key)
    }
}

fn not_implemented(operation: &str) -> object_store::Error {
    object_store::Error::NotImplemented {
        operation: operation.into(),
        implementer: NAME.into(),
    }
}

fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[async_trait]
impl ObjectStore for RawKeyStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Err(not_implemented("put"))
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(not_implemented("put_multipart"))
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let mut headers = Vec::new();
        if let Some(range) = &options.range {
            let value = match range {
                GetRange::Bounded(r) => format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
                GetRange::Offset(start) => format!("bytes={start}-"),
                GetRange::Suffix(n) => format!("bytes=-{n}"),
            };
            headers.push((RANGE, value));
        }
        if let Some(tag) = &options.if_match {
            headers.push((IF_MATCH, tag.clone()));
        }
        if let Some(tag) = &options.if_none_match {
            headers.push((IF_NONE_MATCH, tag.clone()));
        }
        if let Some(at) = options.if_modified_since {
            headers.push((IF_MODIFIED_SINCE, http_date(at)));
        }
        if let Some(at) = options.if_unmodified_since {
            headers.push((IF_UNMODIFIED_SINCE, http_date(at)));
        }
        let url = self.lister.key_url(&self.key);
        let method = if options.head {
            http::Method::HEAD
        } else {
            http::Method::GET
        };
        let mut retry = self.lister.retry();
        let response = loop {
            match self.lister.send(method.clone(), &url, &headers).await {
                Ok(response) => break response,
                Err(Failure::Transient(cause)) if retry.again() => {
                    tracing::warn!(key = ?self.key, %cause, "GET failed; retrying");
                    retry.wait().await;
                }
                Err(Failure::Transient(cause) | Failure::Permanent(cause)) => {
                    return Err(self.error(cause));
                }
                Err(Failure::NotFound) => {
                    return Err(object_store::Error::NotFound {
                        path: format!("{:?}", self.key),
                        source: "no such key".into(),
                    });
                }
                Err(Failure::NotModified) => {
                    return Err(object_store::Error::NotModified {
                        path: format!("{:?}", self.key),
                        source: "not modified".into(),
                    });
                }
                Err(Failure::Precondition(cause)) => {
                    return Err(object_store::Error::Precondition {
                        path: format!("{:?}", self.key),
                        source: cause.into(),
                    });
                }
            }
        };
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v: &http::HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let length: u64 = header(CONTENT_LENGTH)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default();
        let (range, size) = match header(CONTENT_RANGE)
            .as_deref()
            .and_then(parse_content_range)
        {
            Some((start, end, size)) => (start..end, size),
            None => (0..length, length),
        };
        let last_modified = header(LAST_MODIFIED)
            .and_then(|v| DateTime::parse_from_rfc2822(&v).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        let meta = ObjectMeta {
            location: location.clone(),
            last_modified,
            size,
            e_tag: header(ETAG),
            version: None,
        };
        let key = self.key.clone();
        let stream: BoxStream<'static, Result<Bytes>> = if options.head {
            futures::stream::empty().boxed()
        } else {
            response
                .into_body()
                .bytes_stream()
                .map_err(move |e| object_store::Error::Generic {
                    store: NAME,
                    source: format!("{key:?}: {e}").into(),
                })
                .boxed()
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(stream),
            meta,
            range,
            attributes: Attributes::default(),
        })
    }

    fn delete_stream(
        &self,
        _: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        futures::stream::once(async { Err(not_implemented("delete")) }).boxed()
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        futures::stream::once(async { Err(not_implemented("list")) }).boxed()
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> Result<ListResult> {
        Err(not_implemented("list_with_delimiter"))
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> Result<()> {
        Err(not_implemented("copy"))
    }
}

/// `bytes START-END/SIZE` as (START, END + 1, SIZE).
fn parse_content_range(value: &str) -> Option<(u64, u64, u64)> {
    let rest = value.strip_prefix("bytes ")?;
    let (range, size) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((
        start.parse().ok()?,
        end.parse::<u64>().ok()? + 1,
        size.parse().ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("bytes 10-19/100"), Some((10, 20, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
    }
}
