//! One received batch, sorted: the objects to register as jobs (what the run takes), the
//! messages to delete once they are registered (including those about nothing the run
//! takes: S3's test event, other buckets, keys outside `--prefix` / `--include`, events
//! other than a creation), and the messages that cannot be read, left in the queue (its
//! redrive policy moves them to a dead-letter queue after a few receives).

use std::collections::HashMap;

use globset::GlobSet;

use super::event::{self, ObjectCreated};
use super::sqs::Message;
use crate::events;
use crate::source::listing::Listed;

/// What the run takes.
#[derive(Debug, Clone, Copy)]
pub struct Filter<'a> {
    pub bucket: &'a str,
    /// A plain string prefix of the key.
    pub prefix: &'a str,
    pub include: &'a GlobSet,
}

impl Filter<'_> {
    /// Why the run does not take `object`; None when it does.
    fn refuses(&self, object: &ObjectCreated) -> Option<String> {
        if object.bucket != self.bucket {
            Some(format!("bucket {} is not this run's", object.bucket))
        } else if !object.key.starts_with(self.prefix) {
            Some(format!("key {:?} is outside --prefix", object.key))
        } else if !self.include.is_match(&object.key) {
            Some(format!("key {:?} is not taken by --include", object.key))
        } else if object.key.contains('\0') {
            events::key_skipped(&object.key, "a NUL character cannot be stored as text");
            Some("a NUL character in the key".into())
        } else {
            None
        }
    }
}

/// A batch, sorted.
#[derive(Debug, Default)]
pub struct Sorted<'a> {
    /// The objects to register, one per key (its latest event).
    pub objects: Vec<Listed>,
    /// Messages that reported at least one of `objects`: deleted once registered.
    pub registered: Vec<&'a Message>,
    /// Messages about nothing the run takes, with why: deleted too.
    pub ignored: Vec<(&'a Message, String)>,
    /// Messages that cannot be read, with why: left in the queue.
    pub unreadable: Vec<(&'a Message, String)>,
}

impl<'a> Sorted<'a> {
    /// The messages to delete once the objects are registered.
    pub fn to_delete(&self) -> Vec<&'a Message> {
        let ignored = self.ignored.iter().map(|(m, _)| *m);
        self.registered.iter().copied().chain(ignored).collect()
    }
}

/// Sorts `messages` by what they say.
pub fn sort<'a>(messages: &'a [Message], filter: &Filter<'_>) -> Sorted<'a> {
    let mut sorted = Sorted::default();
    let mut latest: HashMap<String, ObjectCreated> = HashMap::new();
    for message in messages {
        let notice = match event::parse(&message.body) {
            Ok(notice) => notice,
            Err(cause) => {
                sorted.unreadable.push((message, cause));
                continue;
            }
        };
        let mut taken = 0;
        let mut why = Vec::new();
        if notice.test {
            why.push("s3:TestEvent".to_string());
        }
        for other in notice.other {
            why.push(format!("event {other}"));
        }
        for object in notice.objects {
            if let Some(refused) = filter.refuses(&object) {
                why.push(refused);
                continue;
            }
            taken += 1;
            match latest.get(&object.key) {
                Some(seen) if seen.time > object.time => {}
                _ => {
                    latest.insert(object.key.clone(), object);
                }
            }
        }
        if taken > 0 {
            sorted.registered.push(message);
        } else {
            if why.is_empty() {
                why.push("no records".into());
            }
            sorted.ignored.push((message, why.join("; ")));
        }
    }
    let mut objects: Vec<ObjectCreated> = latest.into_values().collect();
    objects.sort_by(|a, b| a.key.cmp(&b.key));
    sorted.objects = objects
        .into_iter()
        .map(|o| Listed {
            key: o.key,
            size: o.size,
            etag: o.etag,
            last_modified: o.time,
        })
        .collect();
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, body: &str) -> Message {
        Message {
            id: id.into(),
            receipt: format!("receipt-{id}"),
            body: body.into(),
        }
    }

    fn created(bucket: &str, key: &str, time: &str, etag: &str) -> String {
        serde_json::json!({"Records": [{
            "eventTime": time,
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": 7, "eTag": etag}}
        }]})
        .to_string()
    }

    fn include(globs: &[&str]) -> GlobSet {
        let mut set = globset::GlobSetBuilder::new();
        for glob in globs {
            set.add(globset::Glob::new(glob).unwrap());
        }
        set.build().unwrap()
    }

    #[test]
    fn a_batch_is_sorted_into_objects_messages_to_delete_and_messages_to_leave() {
        let include = include(&["*.json"]);
        let filter = Filter {
            bucket: "logs",
            prefix: "app/",
            include: &include,
        };
        let t1 = "2026-12-03T10:00:00Z";
        let t2 = "2026-12-03T10:00:01Z";
        let messages = vec![
            message("new", &created("logs", "app/a+b.json", t1, "e1")),
            message("again", &created("logs", "app/a+b.json", t2, "e2")),
            message("older", &created("logs", "app/c.json", t1, "e3")),
            message(
                "test",
                r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"logs"}"#,
            ),
            message("other-bucket", &created("other", "app/d.json", t1, "e4")),
            message("outside", &created("logs", "web/e.json", t1, "e5")),
            message("not-included", &created("logs", "app/f.txt", t1, "e6")),
            message("malformed", "{\"Records\": [{\"eventName\": "),
            message(
                "shapeless",
                r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
            ),
        ];
        let sorted = sort(&messages, &filter);
        let keys: Vec<(&str, Option<&str>)> = sorted
            .objects
            .iter()
            .map(|o| (o.key.as_str(), o.etag.as_deref()))
            .collect();
        // One job per key, from its latest event.
        assert_eq!(
            keys,
            vec![
                ("app/a b.json", Some("\"e2\"")),
                ("app/c.json", Some("\"e3\""))
            ]
        );
        let ids = |list: Vec<&Message>| list.iter().map(|m| m.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(sorted.registered.clone()), ["new", "again", "older"]);
        let ignored: Vec<(&str, &str)> = sorted
            .ignored
            .iter()
            .map(|(m, why)| (m.id.as_str(), why.as_str()))
            .collect();
        assert_eq!(ignored[0], ("test", "s3:TestEvent"));
        assert!(ignored[1].1.contains("bucket other"), "{ignored:?}");
        assert!(ignored[2].1.contains("--prefix"), "{ignored:?}");
        assert!(ignored[3].1.contains("--include"), "{ignored:?}");
        // Malformed messages are not deleted: they stay for the dead-letter policy.
        let left: Vec<&str> = sorted
            .unreadable
            .iter()
            .map(|(m, _)| m.id.as_str())
            .collect();
        assert_eq!(left, ["malformed", "shapeless"]);
        let deleted = ids(sorted.to_delete());
        assert_eq!(deleted.len(), 7);
        assert!(!deleted.contains(&"malformed".to_string()));
        assert!(!deleted.contains(&"shapeless".to_string()));
    }
}
