//! Requests to AWS services signed with object_store's own SigV4 signer and credential
//! provider and sent through its HTTP client, so that endpoint, credentials and TLS behave
//! as for reads: S3 listings and odd-key reads ([`super::listing::s3`]) and SQS
//! ([`super::notifications::sqs`]). Transient failures (connection errors, 5xx, throttling)
//! are retried by the callers with [`Retry`]'s backoff, as object_store does.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpRequestBody, HttpResponse, ReqwestConnector,
};

/// An HTTP client whose requests are signed for one region.
#[derive(Debug)]
pub struct SignedClient {
    client: HttpClient,
    credentials: AwsCredentialProvider,
    region: String,
    retries: usize,
}

impl SignedClient {
    /// A client signing with `credentials` for `region`; plain HTTP allowed when `http`;
    /// `timeout` per request (object_store's default of 30 s when None); `retries` of a
    /// request that failed transiently.
    pub fn new(
        credentials: AwsCredentialProvider,
        region: String,
        http: bool,
        timeout: Option<Duration>,
        retries: usize,
    ) -> Result<SignedClient, object_store::Error> {
        let mut options = ClientOptions::new().with_allow_http(http);
        if let Some(timeout) = timeout {
            options = options.with_timeout(timeout);
        }
        Ok(SignedClient {
            client: ReqwestConnector::default().connect(&options)?,
            credentials,
            region,
            retries,
        })
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// Backoff for one request, as many retries as configured.
    pub(crate) fn retry(&self) -> Retry {
        Retry {
            retries_left: self.retries,
            delay: Duration::from_millis(100),
        }
    }

    /// Sends one request to `service` (`s3`, `sqs`), signed, with `headers` and `body`; a
    /// response that is not a success is a failure (transient for 5xx, 408 and 429).
    pub(crate) async fn send(
        &self,
        service: &str,
        method: Method,
        url: &str,
        headers: &[(http::HeaderName, String)],
        body: Bytes,
    ) -> Result<HttpResponse, Failure> {
        let credential = self
            .credentials
            .get_credential()
            .await
            .map_err(|e| Failure::Transient(format!("credentials: {e}")))?;
        let mut builder = http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let body = if body.is_empty() {
            HttpRequestBody::empty()
        } else {
            HttpRequestBody::from(body)
        };
        let mut request = builder
            .body(body)
            .map_err(|e| Failure::Permanent(e.to_string()))?;
        AwsAuthorizer::new(&credential, service, &self.region).authorize(&mut request, None);
        let response = self
            .client
            .execute(request)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.into_body().bytes().await.unwrap_or_default();
        let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
        let cause = format!("HTTP {status}: {text}");
        Err(match status.as_u16() {
            408 | 429 | 500..=599 => Failure::Transient(cause),
            304 => Failure::NotModified,
            404 => Failure::NotFound,
            412 => Failure::Precondition(cause),
            _ => Failure::Permanent(cause),
        })
    }
}

/// Backoff between attempts of one request: 100 ms doubling up to 10 s.
#[derive(Debug)]
pub(crate) struct Retry {
    retries_left: usize,
    delay: Duration,
}

impl Retry {
    /// True when another attempt is allowed.
    pub(crate) fn again(&self) -> bool {
        self.retries_left > 0
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_secs(10));
        self.retries_left -= 1;
    }
}

/// How one request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    Transient(String),
    Permanent(String),
    NotFound,
    NotModified,
    Precondition(String),
}
