//! The differential oracle for [`super::validate`]: serde_json's verdict and the previous
//! serde implementation's extraction. Used by the module's tests and by the cargo-fuzz
//! target `fuzz/fuzz_targets/validate.rs`, so both check the very same property; not part of
//! the pipeline.

use serde::Deserialize;
use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

use super::{SideValues, validate};

/// True when the JSON text has a `\u0000` escape (not an escaped backslash followed by
/// `u0000`). Only meaningful for valid JSON.
fn has_nul_escape(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"\\u0000").any(|at| {
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
pub struct Strict(pub bool);

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

/// serde_json's verdict: `Some(accepted)`, or `None` when serde_json refused only because a
/// number does not fit an f64 (`1e400`): valid JSON that jsonb stores, which `Value`
/// cannot represent, so the case says nothing.
pub fn oracle(input: &[u8]) -> Option<bool> {
    match serde_json::from_slice::<Strict>(input) {
        Ok(Strict(object)) => Some(object && !has_nul_escape(input)),
        Err(e) if e.to_string().starts_with("number out of range") => None,
        Err(_) => Some(false),
    }
}

/// The previous implementation's extraction (derive-style `Option<&RawValue>` fields),
/// with the last duplicate winning at both levels as in jsonb.
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

/// Checks `validate` against serde_json on one input. Returns false when the case was
/// skipped (see [`oracle`]).
pub fn check(input: &[u8]) -> bool {
    let ours = validate(input);
    if matches!(&ours, Err(e) if e.contains("out of the range PostgreSQL numeric")) {
        // serde_json reads numbers as f64 and knows nothing of numeric's range.
        return false;
    }
    let Some(expected) = oracle(input) else {
        return false;
    };
    let show = || String::from_utf8_lossy(input).into_owned();
    match &ours {
        Ok(side) => {
            assert!(expected, "accepted what serde_json rejects: {:?}", show());
            let reference = serde_json::from_slice::<Top>(input)
                .unwrap_or_else(|e| panic!("reference failed ({e}) on {:?}", show()))
                .0;
            assert_eq!(*side, reference, "spans differ on {:?}", show());
        }
        Err(e) => {
            assert!(
                !expected,
                "rejected ({e}) what serde_json accepts: {:?}",
                show()
            );
            assert!(e.contains(" at byte "), "no offset in {e:?}");
        }
    }
    true
}
