//! Listing an S3 bucket with our own ListObjectsV2 requests: keys stay plain strings (the
//! response is asked for URL-encoded keys, so control characters survive XML), one page of
//! at most 1,000 keys at a time, following continuation tokens. Requests are signed and sent
//! by [`crate::source::signed`] (object_store's signer, credentials and HTTP client), so
//! endpoint, credentials and TLS behave as for reads. Transient failures (connection
//! errors, 5xx, throttling, a body cut short) are retried with backoff, as object_store does.
//! The same signed requests read the objects whose keys object_store's `Path` cannot name
//! ([`super::raw_key`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::Method;
use object_store::aws::AmazonS3;
use object_store::client::HttpResponse;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::listed::Listed;
use crate::events;
use crate::source::signed::SignedClient;
pub(crate) use crate::source::signed::{Failure, Retry};

/// Request settings shared with the object store (`--s3-timeout-secs`,
/// `INGESTOR_S3_RETRIES`).
#[derive(Debug, Clone, Copy)]
pub struct ListOptions {
    /// Per request (object_store's default of 30 s when None).
    pub timeout: Option<Duration>,
    /// Retries of a request that failed transiently (object_store's default is 10).
    pub retries: usize,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            timeout: None,
            retries: 10,
        }
    }
}

/// Everything but RFC 3986's unreserved characters is encoded, as SigV4 wants.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A key in a URL path: everything but unreserved characters and `/` encoded.
const KEY_PATH: &AsciiSet = &QUERY_VALUE.remove(b'/');

/// Why listing failed.
#[derive(Debug, thiserror::Error)]
pub enum S3ListError {
    #[error("cannot list s3://{bucket}/{prefix}: {cause}")]
    Request {
        bucket: String,
        prefix: String,
        cause: String,
    },
    #[error("cannot set up the S3 client for listing: {0}")]
    Client(#[from] object_store::Error),
}

/// How to list one bucket.
#[derive(Debug)]
pub struct S3Lister {
    client: SignedClient,
    /// `https://bucket.s3.region.amazonaws.com` or `ENDPOINT/bucket` (path style).
    bucket_url: String,
    bucket: String,
}

impl S3Lister {
    /// A lister for `bucket` using `store`'s credentials; `endpoint` as configured (path
    /// style), else AWS's virtual-hosted URL in `region`; `timeout` per request
    /// (object_store's default of 30 s when None).
    pub fn new(
        store: &AmazonS3,
        bucket: &str,
        region: Option<String>,
        endpoint: Option<String>,
        options: ListOptions,
    ) -> Result<S3Lister, S3ListError> {
        let region = region.unwrap_or_else(|| "us-east-1".into());
        let bucket_url = match &endpoint {
            Some(endpoint) => format!("{}/{bucket}", endpoint.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{region}.amazonaws.com"),
        };
        let client = SignedClient::new(
            Arc::clone(store.credentials()),
            region,
            bucket_url.starts_with("http://"),
            options.timeout,
            options.retries,
        )?;
        Ok(S3Lister {
            client,
            bucket_url,
            bucket: bucket.into(),
        })
    }

    /// Backoff for one request, as many retries as configured.
    pub(crate) fn retry(&self) -> Retry {
        self.client.retry()
    }

    /// The URL of `key` (path-style or virtual-hosted as configured), the key encoded byte
    /// for byte so that `//` and control characters reach S3 as they are.
    pub(crate) fn key_url(&self, key: &str) -> String {
        format!("{}/{}", self.bucket_url, utf8_percent_encode(key, KEY_PATH))
    }

    /// One ListObjectsV2 request, retried while the failure is transient.
    async fn list_page(
        &self,
        prefix: &str,
        token: Option<&str>,
        start_after: Option<&str>,
    ) -> Result<ListBucketResult, S3ListError> {
        // Sorted by name, as the signature wants them.
        let mut query = vec![
            ("continuation-token", token.unwrap_or_default()),
            ("encoding-type", "url"),
            ("list-type", "2"),
            ("max-keys", "1000"),
            ("prefix", prefix),
            ("start-after", start_after.unwrap_or_default()),
        ];
        query.retain(|(_, v)| !v.is_empty());
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, QUERY_VALUE)))
            .collect();
        let url = format!("{}/?{}", self.bucket_url, query.join("&"));
        let request_error = |cause| S3ListError::Request {
            bucket: self.bucket.clone(),
            prefix: prefix.into(),
            cause,
        };
        let mut retry = self.retry();
        loop {
            let result = match self.send(Method::GET, &url, &[]).await {
                Ok(response) => parse_list(response).await,
                Err(failure) => Err(failure),
            };
            match result {
                Ok(result) => return Ok(result),
                Err(Failure::Transient(cause)) if retry.again() => {
                    tracing::warn!(bucket = %self.bucket, prefix, %cause, "listing request failed; retrying");
                    retry.wait().await;
                }
                Err(
                    Failure::Transient(cause)
                    | Failure::Permanent(cause)
                    | Failure::Precondition(cause),
                ) => {
                    return Err(request_error(cause));
                }
                Err(Failure::NotFound) => return Err(request_error("no such bucket".into())),
                Err(Failure::NotModified) => return Err(request_error("not modified".into())),
            }
        }
    }

    /// Sends one signed request (GET or HEAD) of `url` with `headers`; a response that is
    /// not a success is a failure (transient for 5xx, 408 and 429).
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(http::HeaderName, String)],
    ) -> Result<HttpResponse, Failure> {
        self.client
            .send("s3", method, url, headers, bytes::Bytes::new())
            .await
    }
}

async fn parse_list(response: HttpResponse) -> Result<ListBucketResult, Failure> {
    let body = response
        .into_body()
        .bytes()
        .await
        .map_err(|e| Failure::Transient(format!("reading the response: {e}")))?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| Failure::Transient(format!("response is not UTF-8: {e}")))?;
    // A body cut short does not parse: ask again.
    quick_xml::de::from_str(text)
        .map_err(|e| Failure::Transient(format!("unreadable ListObjectsV2 response: {e}")))
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    next_continuation_token: Option<String>,
    #[serde(default)]
    encoding_type: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    size: u64,
    last_modified: DateTime<Utc>,
    #[serde(rename = "ETag", default)]
    e_tag: Option<String>,
}

/// One listing in progress.
pub struct Pages {
    lister: Arc<S3Lister>,
    prefix: String,
    /// Only keys after this one (the first request's `start-after`; the continuation
    /// tokens carry it on).
    start_after: Option<String>,
    token: Option<String>,
    done: bool,
    skipped: u64,
}

impl Pages {
    pub fn new(lister: Arc<S3Lister>, prefix: &str, start_after: Option<String>) -> Pages {
        Pages {
            lister,
            prefix: prefix.into(),
            start_after,
            token: None,
            done: false,
            skipped: 0,
        }
    }

    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The next page (possibly empty when every key of a page was skipped); None at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Listed>>, S3ListError> {
        if self.done {
            return Ok(None);
        }
        let start_after = match self.token {
            None => self.start_after.as_deref(),
            Some(_) => None,
        };
        let result = self
            .lister
            .list_page(&self.prefix, self.token.as_deref(), start_after)
            .await?;
        self.token = result.next_continuation_token.filter(|t| !t.is_empty());
        self.done = self.token.is_none();
        let encoded = result.encoding_type.as_deref() == Some("url");
        let mut page = Vec::with_capacity(result.contents.len());
        for object in result.contents {
            let key = if encoded {
                match decode_key(&object.key) {
                    Some(key) => key,
                    None => {
                        self.skipped += 1;
                        events::key_skipped(&object.key, "key is not valid UTF-8 once decoded");
                        continue;
                    }
                }
            } else {
                object.key
            };
            if key.contains('\0') {
                self.skipped += 1;
                events::key_skipped(&key, "a NUL character cannot be stored as text");
                continue;
            }
            page.push(Listed {
                key,
                size: object.size,
                etag: object.e_tag,
                last_modified: object.last_modified,
            });
        }
        Ok(Some(page))
    }
}

/// A key of a listing with `encoding-type=url`, or of an S3 event notification (S3 writes
/// a space as `+`, a `+` as `%2B`); None when the bytes are not UTF-8.
pub(crate) fn decode_key(encoded: &str) -> Option<String> {
    let plus_as_space = encoded.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8()
        .ok()
        .map(|key| key.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoded_keys_are_decoded() {
        assert_eq!(decode_key("a%2F%2Fb+c%2B.json").unwrap(), "a//b c+.json");
        assert_eq!(decode_key("x%09y%01.json").unwrap(), "x\ty\u{1}.json");
        assert!(decode_key("bad%FF.json").is_none());
    }

    #[test]
    fn a_list_response_parses() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix></Prefix>
<KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>
<Contents><Key>a%2F..%2Fb.json</Key><LastModified>2024-11-05T10:00:00.000Z</LastModified>
<ETag>&quot;abc&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>
<NextContinuationToken>tok+/=</NextContinuationToken></ListBucketResult>"#;
        let result: ListBucketResult = quick_xml::de::from_str(xml).unwrap();
        assert_eq!(result.contents.len(), 1);
        assert_eq!(result.contents[0].key, "a%2F..%2Fb.json");
        assert_eq!(result.contents[0].e_tag.as_deref(), Some("\"abc\""));
        assert_eq!(result.next_continuation_token.as_deref(), Some("tok+/="));
    }
}
