//! S3 object stores, bucket listers and the SQS client of notifications, configured from
//! the environment (AWS_REGION, AWS_ENDPOINT, AWS_ENDPOINT_URL_SQS, credentials) and
//! `--s3-timeout-secs`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use object_store::aws::AmazonS3Builder;
use object_store::{ClientOptions, ObjectStore};

/// An S3 store for `bucket` from AWS_REGION, AWS_ENDPOINT (http allowed, path-style),
/// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; `timeout_secs` bounds each request
/// (`--s3-timeout-secs`; object_store's 30 s when None). `INGESTOR_S3_RETRIES` sets
/// object_store's retries per request (10 by default).
pub fn s3_store(bucket: &str, timeout_secs: Option<u64>) -> anyhow::Result<Arc<dyn ObjectStore>> {
    Ok(Arc::new(
        s3_builder(bucket, timeout_secs)?
            .build()
            .with_context(|| format!("cannot configure S3 for bucket {bucket}"))?,
    ))
}

/// The store for `bucket` and discovery's lister for it (same endpoint, credentials and
/// request timeout).
pub fn s3_listing(
    bucket: &str,
    timeout_secs: Option<u64>,
) -> anyhow::Result<super::listing::Listing> {
    use object_store::aws::AmazonS3ConfigKey;
    let builder = s3_builder(bucket, timeout_secs)?;
    let region = builder.get_config_value(&AmazonS3ConfigKey::Region);
    let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint);
    let store = builder
        .build()
        .with_context(|| format!("cannot configure S3 for bucket {bucket}"))?;
    let options = super::listing::s3::ListOptions {
        timeout: timeout_secs.map(Duration::from_secs),
        retries: s3_retries()?.unwrap_or(object_store::RetryConfig::default().max_retries),
    };
    let lister = super::listing::s3::S3Lister::new(&store, bucket, region, endpoint, options)?;
    Ok(super::listing::Listing::S3 {
        lister: Arc::new(lister),
        store: Arc::new(store),
    })
}

/// The client of the SQS queue at `queue_url` that `run --notifications` receives the
/// notifications of `bucket` from: the same credentials as the bucket's store; requests go
/// to AWS_ENDPOINT_URL_SQS if set, else AWS_ENDPOINT / AWS_ENDPOINT_URL, else the queue
/// URL's host; signed for the queue URL's region (AWS_REGION, else us-east-1, for other
/// hosts). Each request may take `wait` (long polling) and 15 s more.
pub fn sqs_client(
    bucket: &str,
    queue_url: &str,
    wait: Duration,
) -> anyhow::Result<super::notifications::SqsClient> {
    use super::notifications::sqs;
    use object_store::aws::AmazonS3ConfigKey;
    let builder = s3_builder(bucket, None)?;
    let region = sqs::region_of(queue_url)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Region))
        .unwrap_or_else(|| "us-east-1".into());
    let store = builder
        .build()
        .with_context(|| format!("cannot configure S3 credentials for bucket {bucket}"))?;
    let endpoint = ["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()));
    let http = endpoint
        .as_deref()
        .unwrap_or(queue_url)
        .starts_with("http://");
    let retries = s3_retries()?.unwrap_or(object_store::RetryConfig::default().max_retries);
    let client = super::signed::SignedClient::new(
        Arc::clone(store.credentials()),
        region,
        http,
        Some(wait + Duration::from_secs(15)),
        retries,
    )?;
    sqs::SqsClient::new(client, queue_url, endpoint.as_deref())
        .with_context(|| format!("cannot configure SQS for {queue_url}"))
}

/// `INGESTOR_S3_RETRIES`: retries per S3 request (None: object_store's default).
fn s3_retries() -> anyhow::Result<Option<usize>> {
    match std::env::var("INGESTOR_S3_RETRIES") {
        Ok(retries) => Ok(Some(retries.parse().with_context(|| {
            format!("INGESTOR_S3_RETRIES={retries}: expected a number")
        })?)),
        Err(_) => Ok(None),
    }
}

fn s3_builder(bucket: &str, timeout_secs: Option<u64>) -> anyhow::Result<AmazonS3Builder> {
    let mut client = ClientOptions::new();
    if let Some(secs) = timeout_secs {
        client = client.with_timeout(Duration::from_secs(secs));
    }
    // Client options first: the builder's other settings (allow_http) amend them.
    let mut builder = AmazonS3Builder::new()
        .with_client_options(client)
        .with_bucket_name(bucket);
    if let Some(max_retries) = s3_retries()? {
        builder = builder.with_retry(object_store::RetryConfig {
            max_retries,
            ..Default::default()
        });
    }
    if let Ok(region) = std::env::var("AWS_REGION") {
        builder = builder.with_region(region);
    }
    if let Ok(endpoint) =
        std::env::var("AWS_ENDPOINT").or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
    {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    check_credentials()?;
    if let Ok(key) = std::env::var("AWS_ACCESS_KEY_ID") {
        builder = builder.with_access_key_id(key);
    }
    if let Ok(secret) = std::env::var("AWS_SECRET_ACCESS_KEY") {
        builder = builder.with_secret_access_key(secret);
    }
    if let Ok(token) = std::env::var("AWS_SESSION_TOKEN") {
        builder = builder.with_token(token);
    }
    Ok(builder)
}

/// Fails early, saying so, when no AWS credentials can be found: no keys in the
/// environment, no web identity or container credentials, and the instance metadata
/// service turned off (`AWS_EC2_METADATA_DISABLED=true`). Otherwise the first request
/// would fail with an unrelated-looking error from the metadata address.
fn check_credentials() -> anyhow::Result<()> {
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty());
    let keys = set("AWS_ACCESS_KEY_ID");
    if keys && !set("AWS_SECRET_ACCESS_KEY") {
        bail!("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both");
    }
    let other_sources = [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ];
    let metadata_disabled =
        std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if !keys && !other_sources.iter().any(|name| set(name)) && metadata_disabled {
        bail!(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
             AWS_SESSION_TOKEN for temporary ones), or AWS_WEB_IDENTITY_TOKEN_FILE, or allow \
             the instance metadata service (AWS_EC2_METADATA_DISABLED is true)"
        );
    }
    Ok(())
}
