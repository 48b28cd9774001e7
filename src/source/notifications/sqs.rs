//! A small client of SQS's JSON protocol: a POST to the service endpoint with
//! `X-Amz-Target: AmazonSQS.<Action>` and a JSON body naming the queue, signed for service
//! `sqs` and sent by [`SignedClient`] (object_store's signer, credentials and HTTP client).
//! Transient failures (connection errors, 5xx, throttling) are retried with backoff.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method};
use serde_json::{Value, json};

use crate::source::signed::{Failure, SignedClient};

/// Long polling waits this long at most (SQS's limit).
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// Messages per receive and entries per batch request at most (SQS's limit).
pub const MAX_BATCH: usize = 10;

/// Why an SQS request failed (after retries).
#[derive(Debug, thiserror::Error)]
pub enum SqsError {
    #[error("SQS {action} on {queue}: {cause}")]
    Request {
        action: String,
        queue: String,
        cause: String,
    },
    #[error("SQS {action} on {queue}: unexpected response: {cause}")]
    Response {
        action: String,
        queue: String,
        cause: String,
    },
    #[error("cannot set up the SQS client: {0}")]
    Client(#[from] object_store::Error),
}

/// One received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// What deletes it or changes its visibility (valid for this receipt only).
    pub receipt: String,
    pub body: String,
}

/// A queue, and where its requests go.
#[derive(Debug)]
pub struct SqsClient {
    client: SignedClient,
    /// The URL requests are posted to (the service endpoint).
    endpoint: String,
    queue_url: String,
}

impl SqsClient {
    /// A client of `queue_url`, its requests posted to `endpoint` (the queue URL's scheme
    /// and host when None).
    pub fn new(
        client: SignedClient,
        queue_url: &str,
        endpoint: Option<&str>,
    ) -> Result<SqsClient, SqsError> {
        let endpoint = match endpoint {
            Some(endpoint) => endpoint.trim_end_matches('/').to_string(),
            None => origin(queue_url).ok_or_else(|| SqsError::Request {
                action: "setup".into(),
                queue: queue_url.into(),
                cause: "the queue URL is not http(s)://HOST/...".into(),
            })?,
        };
        Ok(SqsClient {
            client,
            endpoint: format!("{endpoint}/"),
            queue_url: queue_url.into(),
        })
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// One action (`ReceiveMessage`, `CreateQueue`...) with `body`, retried while it fails
    /// transiently; the response's JSON.
    pub async fn call(&self, action: &str, body: &Value) -> Result<Value, SqsError> {
        let headers = [
            (
                HeaderName::from_static("x-amz-target"),
                format!("AmazonSQS.{action}"),
            ),
            (
                http::header::CONTENT_TYPE,
                "application/x-amz-json-1.0".to_string(),
            ),
        ];
        let body = Bytes::from(body.to_string());
        let error = |cause: String| SqsError::Request {
            action: action.into(),
            queue: self.queue_url.clone(),
            cause,
        };
        let mut retry = self.client.retry();
        loop {
            let sent = self
                .client
                .send("sqs", Method::POST, &self.endpoint, &headers, body.clone())
                .await;
            let failure = match sent {
                Ok(response) => match response.into_body().bytes().await {
                    Ok(bytes) if bytes.is_empty() => return Ok(json!({})),
                    Ok(bytes) => {
                        return serde_json::from_slice(&bytes).map_err(|e| SqsError::Response {
                            action: action.into(),
                            queue: self.queue_url.clone(),
                            cause: e.to_string(),
                        });
                    }
                    Err(e) => Failure::Transient(format!("reading the response: {e}")),
                },
                // SQS says "throttled" with a 400.
                Err(Failure::Permanent(cause)) if cause.contains("Throttl") => {
                    Failure::Transient(cause)
                }
                Err(failure) => failure,
            };
            match failure {
                Failure::Transient(cause) if retry.again() => {
                    tracing::warn!(queue = %self.queue_url, action, %cause, "SQS request failed; retrying");
                    retry.wait().await;
                }
                Failure::Transient(cause) | Failure::Permanent(cause) => return Err(error(cause)),
                Failure::Precondition(cause) => return Err(error(cause)),
                Failure::NotFound => return Err(error("not found".into())),
                Failure::NotModified => return Err(error("not modified".into())),
            }
        }
    }

    /// Up to `max` messages (at most 10), waiting up to `wait` (at most 20 s) for one.
    pub async fn receive(&self, max: usize, wait: Duration) -> Result<Vec<Message>, SqsError> {
        let response = self
            .call(
                "ReceiveMessage",
                &json!({
                    "QueueUrl": self.queue_url,
                    "MaxNumberOfMessages": max.clamp(1, MAX_BATCH),
                    "WaitTimeSeconds": wait.min(MAX_WAIT).as_secs(),
                }),
            )
            .await?;
        let Some(messages) = response.get("Messages") else {
            return Ok(Vec::new());
        };
        let bad = |cause: &str| SqsError::Response {
            action: "ReceiveMessage".into(),
            queue: self.queue_url.clone(),
            cause: cause.into(),
        };
        let messages = messages.as_array().ok_or_else(|| bad("Messages"))?;
        messages
            .iter()
            .map(|m| {
                let field = |name: &str| {
                    m.get(name)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| bad(&format!("a message without {name}")))
                };
                Ok(Message {
                    id: field("MessageId")?,
                    receipt: field("ReceiptHandle")?,
                    body: field("Body").unwrap_or_default(),
                })
            })
            .collect()
    }

    /// Deletes `messages` (at most 10 at a time); returns the ids of those SQS did not
    /// delete, with why.
    pub async fn delete(&self, messages: &[&Message]) -> Result<Vec<(String, String)>, SqsError> {
        let mut failed = Vec::new();
        for batch in messages.chunks(MAX_BATCH) {
            let entries: Vec<Value> = batch
                .iter()
                .enumerate()
                .map(|(i, m)| json!({"Id": i.to_string(), "ReceiptHandle": m.receipt}))
                .collect();
            let response = self
                .call(
                    "DeleteMessageBatch",
                    &json!({"QueueUrl": self.queue_url, "Entries": entries}),
                )
                .await?;
            failed.extend(batch_failures(&response, batch));
        }
        Ok(failed)
    }

    /// Makes `messages` invisible for `timeout` from now (while they are being worked on);
    /// returns the ids of those whose visibility did not change, with why.
    pub async fn extend(
        &self,
        messages: &[&Message],
        timeout: Duration,
    ) -> Result<Vec<(String, String)>, SqsError> {
        let mut failed = Vec::new();
        for batch in messages.chunks(MAX_BATCH) {
            let entries: Vec<Value> = batch
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    json!({
                        "Id": i.to_string(),
                        "ReceiptHandle": m.receipt,
                        "VisibilityTimeout": timeout.as_secs(),
                    })
                })
                .collect();
            let response = self
                .call(
                    "ChangeMessageVisibilityBatch",
                    &json!({"QueueUrl": self.queue_url, "Entries": entries}),
                )
                .await?;
            failed.extend(batch_failures(&response, batch));
        }
        Ok(failed)
    }

    /// The queue's attributes (`VisibilityTimeout`, `ApproximateNumberOfMessages`...), as
    /// SQS gives them (strings).
    pub async fn attributes(&self) -> Result<serde_json::Map<String, Value>, SqsError> {
        let response = self
            .call(
                "GetQueueAttributes",
                &json!({"QueueUrl": self.queue_url, "AttributeNames": ["All"]}),
            )
            .await?;
        Ok(response
            .get("Attributes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default())
    }

    /// The queue's visibility timeout (SQS's default of 30 s when it does not say).
    pub async fn visibility_timeout(&self) -> Result<Duration, SqsError> {
        let attributes = self.attributes().await?;
        let secs = attributes
            .get("VisibilityTimeout")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(30);
        Ok(Duration::from_secs(secs))
    }
}

/// The failed entries of a batch response: the message id and SQS's reason.
fn batch_failures(response: &Value, batch: &[&Message]) -> Vec<(String, String)> {
    let Some(failed) = response.get("Failed").and_then(Value::as_array) else {
        return Vec::new();
    };
    failed
        .iter()
        .map(|entry| {
            let message = entry
                .get("Id")
                .and_then(Value::as_str)
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| batch.get(i))
                .map_or_else(|| "?".to_string(), |m| m.id.clone());
            let why = entry
                .get("Message")
                .or_else(|| entry.get("Code"))
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_string();
            (message, why)
        })
        .collect()
}

/// `scheme://host[:port]` of an http(s) URL.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let host = rest.split('/').next().filter(|h| !h.is_empty())?;
    Some(format!("{scheme}://{host}"))
}

/// The region of an AWS queue URL (`https://sqs.REGION.amazonaws.com/...`, or the legacy
/// `https://REGION.queue.amazonaws.com/...`); None for other hosts.
pub fn region_of(queue_url: &str) -> Option<String> {
    let origin = origin(queue_url)?;
    let host = origin.split_once("://")?.1.split(':').next()?;
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        ["sqs", region, "amazonaws", ..] => Some(region.to_string()),
        [region, "queue", "amazonaws", ..] => Some(region.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_urls_origin_and_region() {
        let aws = "https://sqs.eu-west-1.amazonaws.com/123456789012/logs";
        assert_eq!(
            origin(aws).as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com")
        );
        assert_eq!(region_of(aws).as_deref(), Some("eu-west-1"));
        assert_eq!(
            region_of("https://us-east-2.queue.amazonaws.com/1/q").as_deref(),
            Some("us-east-2")
        );
        let local = "http://127.0.0.1:4566/000000000000/q";
        assert_eq!(origin(local).as_deref(), Some("http://127.0.0.1:4566"));
        assert_eq!(region_of(local), None);
        assert_eq!(origin("sqs://q"), None);
    }

    #[test]
    fn failed_batch_entries_name_their_message() {
        let message = |id: &str| Message {
            id: id.into(),
            receipt: format!("r-{id}"),
            body: String::new(),
        };
        let (a, b) = (message("a"), message("b"));
        let response = json!({
            "Successful": [{"Id": "0"}],
            "Failed": [{"Id": "1", "Code": "ReceiptHandleIsInvalid", "Message": "stale", "SenderFault": true}],
        });
        assert_eq!(
            batch_failures(&response, &[&a, &b]),
            vec![("b".to_string(), "stale".to_string())]
        );
    }
}
