//! What a notification message says: the objects it reports created. Three shapes are read:
//!
//! - S3's own event records (`{"Records":[{"eventName":"ObjectCreated:Put","s3":{...}}]}`),
//!   keys URL-encoded (`+` a space, `%2B` a `+`);
//! - the same, wrapped by SNS (`{"Type":"Notification","Message":"<the records as text>"}`);
//! - EventBridge's (`{"detail-type":"Object Created","detail":{"bucket":{...},"object":{...}}}`),
//!   keys as they are.
//!
//! S3's `s3:TestEvent` (sent when a notification is configured) and events about anything
//! else than a created object are recognised, to be dropped; anything else is an error.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::source::listing::s3::decode_key;

/// An object a notification reports created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The key as stored (decoded).
    pub key: String,
    pub size: u64,
    /// Quoted as listings and reads give it (`"abc"`), whatever the event wrote.
    pub etag: Option<String>,
    /// When the event happened (S3's `eventTime`, EventBridge's `time`).
    pub time: DateTime<Utc>,
}

/// What one message says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notice {
    pub objects: Vec<ObjectCreated>,
    /// Events about something else than a created object (a removal...): their names.
    pub other: Vec<String>,
    /// S3's `s3:TestEvent`.
    pub test: bool,
}

/// Reads a message body; the error says why it cannot be read.
pub fn parse(body: &str) -> Result<Notice, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    parse_value(&value, false)
}

fn parse_value(value: &Value, in_sns: bool) -> Result<Notice, String> {
    let Some(object) = value.as_object() else {
        return Err("not a JSON object".into());
    };
    if object.get("Type").and_then(Value::as_str) == Some("Notification") {
        if in_sns {
            return Err("an SNS notification inside another".into());
        }
        let message = object
            .get("Message")
            .and_then(Value::as_str)
            .ok_or("an SNS notification without a Message string")?;
        let inner: Value = serde_json::from_str(message)
            .map_err(|e| format!("the SNS notification's Message is not JSON: {e}"))?;
        return parse_value(&inner, true);
    }
    if object.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notice {
            test: true,
            ..Notice::default()
        });
    }
    if let Some(records) = object.get("Records") {
        let records = records.as_array().ok_or("Records is not an array")?;
        let mut notice = Notice::default();
        for (i, record) in records.iter().enumerate() {
            s3_record(record, &mut notice).map_err(|e| format!("Records[{i}]: {e}"))?;
        }
        return Ok(notice);
    }
    if let Some(kind) = object.get("detail-type") {
        let kind = kind.as_str().ok_or("detail-type is not a string")?;
        let mut notice = Notice::default();
        if kind == "Object Created" {
            notice.objects.push(event_bridge(value)?);
        } else {
            notice.other.push(kind.to_string());
        }
        return Ok(notice);
    }
    Err("neither S3 event records, an SNS notification nor an EventBridge event".into())
}

/// One record of S3's own events.
fn s3_record(record: &Value, notice: &mut Notice) -> Result<(), String> {
    let name = text(record, &["eventName"])?;
    if !name.starts_with("ObjectCreated:") {
        notice.other.push(name.to_string());
        return Ok(());
    }
    let encoded = text(record, &["s3", "object", "key"])?;
    let key = decode_key(encoded)
        .ok_or_else(|| format!("the key {encoded:?} is not UTF-8 once decoded"))?;
    notice.objects.push(ObjectCreated {
        bucket: text(record, &["s3", "bucket", "name"])?.to_string(),
        key,
        size: number(record, &["s3", "object", "size"])?,
        etag: optional_text(record, &[&["s3", "object", "eTag"]]).map(quoted),
        time: time(at(record, &["eventTime"])?, "eventTime")?,
    });
    Ok(())
}

/// EventBridge's "Object Created".
fn event_bridge(event: &Value) -> Result<ObjectCreated, String> {
    Ok(ObjectCreated {
        bucket: text(event, &["detail", "bucket", "name"])?.to_string(),
        key: text(event, &["detail", "object", "key"])?.to_string(),
        size: number(event, &["detail", "object", "size"])?,
        etag: optional_text(
            event,
            &[&["detail", "object", "etag"], &["detail", "object", "eTag"]],
        )
        .map(quoted),
        time: time(at(event, &["time"])?, "time")?,
    })
}

fn at<'a>(value: &'a Value, path: &[&str]) -> Result<&'a Value, String> {
    let mut here = value;
    for name in path {
        here = here
            .get(name)
            .ok_or_else(|| format!("no {}", path.join(".")))?;
    }
    Ok(here)
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Result<&'a str, String> {
    at(value, path)?
        .as_str()
        .ok_or_else(|| format!("{} is not a string", path.join(".")))
}

fn number(value: &Value, path: &[&str]) -> Result<u64, String> {
    at(value, path)?
        .as_u64()
        .ok_or_else(|| format!("{} is not a size", path.join(".")))
}

/// The first of `paths` that holds a non-empty string.
fn optional_text<'a>(value: &'a Value, paths: &[&[&str]]) -> Option<&'a str> {
    paths
        .iter()
        .find_map(|path| text(value, path).ok().filter(|s| !s.is_empty()))
}

/// An ISO 8601 time, or seconds since the epoch (as some emulators write EventBridge's).
fn time(value: &Value, name: &str) -> Result<DateTime<Utc>, String> {
    match value {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| format!("{name} {s:?} is not a time: {e}")),
        Value::Number(n) => n
            .as_f64()
            .and_then(|secs| DateTime::from_timestamp_millis((secs * 1000.0) as i64))
            .ok_or_else(|| format!("{name} {n} is not a time")),
        _ => Err(format!("{name} is not a time")),
    }
}

/// An ETag as S3 listings and reads give it: in double quotes.
fn quoted(etag: &str) -> String {
    if etag.starts_with('"') {
        etag.to_string()
    } else {
        format!("\"{etag}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_event(name: &str, key: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2026-12-03T10:00:00.123Z",
            "eventName": name,
            "s3": {
                "s3SchemaVersion": "1.0",
                "bucket": {"name": "logs", "arn": "arn:aws:s3:::logs"},
                "object": {"key": key, "size": 42, "eTag": "0123abcd", "sequencer": "00"}
            }
        }]})
        .to_string()
    }

    fn created(key: &str) -> ObjectCreated {
        ObjectCreated {
            bucket: "logs".into(),
            key: key.into(),
            size: 42,
            etag: Some("\"0123abcd\"".into()),
            time: "2026-12-03T10:00:00.123Z".parse().unwrap(),
        }
    }

    #[test]
    fn an_s3_event_reports_the_created_object_with_a_quoted_etag() {
        let notice = parse(&s3_event("ObjectCreated:Put", "a/b.json.gz")).unwrap();
        assert_eq!(notice.objects, vec![created("a/b.json.gz")]);
        assert!(notice.other.is_empty() && !notice.test);
    }

    #[test]
    fn s3_event_keys_are_url_decoded_plus_being_a_space() {
        let notice = parse(&s3_event("ObjectCreated:Put", "a+b%2Bc%2F%C3%BC.json")).unwrap();
        assert_eq!(notice.objects[0].key, "a b+c/ü.json");
        let bad = parse(&s3_event("ObjectCreated:Put", "a%FF.json")).unwrap_err();
        assert!(bad.contains("not UTF-8"), "{bad}");
    }

    #[test]
    fn other_s3_events_are_recognised_as_other() {
        let notice = parse(&s3_event("ObjectRemoved:Delete", "a.json")).unwrap();
        assert!(notice.objects.is_empty());
        assert_eq!(notice.other, vec!["ObjectRemoved:Delete".to_string()]);
    }

    #[test]
    fn an_sns_wrapped_s3_event_is_read_through_its_envelope() {
        let body = serde_json::json!({
            "Type": "Notification",
            "MessageId": "m-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
            "Message": s3_event("ObjectCreated:CompleteMultipartUpload", "x+y.json"),
        })
        .to_string();
        assert_eq!(parse(&body).unwrap().objects, vec![created("x y.json")]);
        let test = serde_json::json!({
            "Type": "Notification",
            "Message": r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"logs"}"#,
        })
        .to_string();
        assert!(parse(&test).unwrap().test);
    }

    #[test]
    fn an_event_bridge_event_is_read_with_its_key_as_is() {
        let body = serde_json::json!({
            "version": "0",
            "id": "e-1",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "time": "2026-12-03T10:00:00.123Z",
            "region": "us-east-1",
            "detail": {
                "version": "0",
                "bucket": {"name": "logs"},
                "object": {"key": "a+b%2B.json", "size": 42, "etag": "0123abcd"},
                "reason": "PutObject"
            }
        })
        .to_string();
        assert_eq!(parse(&body).unwrap().objects, vec![created("a+b%2B.json")]);
        // moto writes the time as seconds and the ETag as `eTag`.
        let moto = body
            .replace("\"2026-12-03T10:00:00.123Z\"", "1796292000.123")
            .replace("\"etag\"", "\"eTag\"");
        let object = &parse(&moto).unwrap().objects[0];
        assert_eq!(object.etag.as_deref(), Some("\"0123abcd\""));
        assert_eq!(object.time.timestamp_millis(), 1_796_292_000_123);
        let deleted = body.replace("Object Created", "Object Deleted");
        assert_eq!(parse(&deleted).unwrap().other, vec!["Object Deleted"]);
    }

    #[test]
    fn the_s3_test_event_is_recognised() {
        let body = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-12-03T10:00:00.000Z","Bucket":"logs","RequestId":"r","HostId":"h"}"#;
        let notice = parse(body).unwrap();
        assert!(notice.test && notice.objects.is_empty());
    }

    #[test]
    fn malformed_messages_are_errors_that_say_why() {
        for (body, says) in [
            ("not json", "not JSON"),
            ("[1]", "not a JSON object"),
            (r#"{"hello":1}"#, "neither"),
            (
                r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
                "Records[0]: no s3.object.key",
            ),
            (
                r#"{"Type":"Notification","Message":"{oops"}"#,
                "Message is not JSON",
            ),
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.contains(says), "{body}: {error}");
        }
        let no_time = s3_event("ObjectCreated:Put", "a.json").replace("eventTime", "when");
        assert!(parse(&no_time).unwrap_err().contains("no eventTime"));
    }
}
