//! Fuzzes `decode::validate` differentially against serde_json: a record is accepted exactly
//! when serde_json parses it (every key and string decoded, see `Strict`) as an object and
//! it has no `\u0000` escape, and the kept texts are what `Option<&RawValue>` fields extract
//! (`null` counting as absent, the last duplicate key winning).
//!
//! Input: the record's bytes. Inputs that serde_json refuses only because a number does not
//! fit an f64 (`1e400`: valid JSON that jsonb stores) say nothing and are skipped, after
//! checking that `validate` does not panic on them.
#![no_main]

use ingestor::decode::validate::{SideValues, validate};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// True when the JSON text has a `\u0000` escape (not an escaped backslash followed by
/// `u0000`). Only meaningful for valid JSON.
fn has_nul_escape(bytes: &[u8]) -> bool {
    let pattern = b"\\u0000";
    (0..bytes.len().saturating_sub(5))
        .filter(|&at| &bytes[at..at + 6] == pattern)
        .any(|at| {
            let backslashes = bytes[..at]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count();
            backslashes % 2 == 0
        })
}

/// serde_json's strict parse of any value, reporting whether it is an object. Keys are
/// decoded as `String` (escapes and surrogates checked). Not `serde_json::Value`: with
/// the `raw_value` feature, `Value` refuses the valid `{"$serde_json::private::RawValue":0}`
/// (its magic token).
struct Strict(bool);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Strict;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
                while map.next_key::<String>()?.is_some() {
                    map.next_value::<Strict>()?;
                }
                Ok(Strict(true))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
                while seq.next_element::<Strict>()?.is_some() {}
                Ok(Strict(false))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Strict, E> {
                Ok(Strict(false))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Strict, E> {
                Ok(Strict(false))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Strict, E> {
                Ok(Strict(false))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Strict, E> {
                Ok(Strict(false))
            }
            fn visit_str<E>(self, _: &str) -> Result<Strict, E> {
                Ok(Strict(false))
            }
            fn visit_unit<E>(self) -> Result<Strict, E> {
                Ok(Strict(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// serde_json's verdict, or `None` when the case says nothing (number out of f64 range).
fn oracle(input: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<Strict>(input) {
        Ok(Strict(object)) => Some(object && !has_nul_escape(input)),
        Err(e) if e.to_string().starts_with("number out of range") => None,
        Err(_) => Some(false),
    }
}

struct Top<'a>(SideValues<'a>);
struct Req<'a>(SideValues<'a>);

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                let mut side = SideValues::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "req" {
                        side = map.next_value::<Req<'de>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Top(side))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for Req<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        fn none<'a>() -> Req<'a> {
            Req(SideValues::default())
        }
        fn text(raw: &RawValue) -> Option<&str> {
            Some(raw.get()).filter(|t| *t != "null")
        }
        impl<'de> Visitor<'de> for V {
            type Value = Req<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Req<'de>, A::Error> {
                let mut side = SideValues::default();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "query" => side.query = text(map.next_value::<&'de RawValue>()?),
                        "headers" => side.headers = text(map.next_value::<&'de RawValue>()?),
                        "params" => side.params = text(map.next_value::<&'de RawValue>()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Req(side))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Req<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(none())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Req<'de>, E> {
                Ok(none())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Req<'de>, E> {
                Ok(none())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Req<'de>, E> {
                Ok(none())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Req<'de>, E> {
                Ok(none())
            }
            fn visit_str<E>(self, _: &str) -> Result<Req<'de>, E> {
                Ok(none())
            }
            fn visit_unit<E>(self) -> Result<Req<'de>, E> {
                Ok(none())
            }
        }
        d.deserialize_any(V)
    }
}

fuzz_target!(|data: &[u8]| {
    let ours = validate(data);
    let Some(expected) = oracle(data) else {
        return;
    };
    match ours {
        Ok(side) => {
            assert!(expected, "accepted what serde_json rejects");
            let reference = serde_json::from_slice::<Top>(data)
                .expect("the reference extraction parses what serde_json accepts")
                .0;
            assert_eq!(side, reference, "kept texts differ");
        }
        Err(e) => {
            assert!(!expected, "rejected ({e}) what serde_json accepts");
            assert!(e.contains(" at byte "), "no offset in {e:?}");
        }
    }
});
