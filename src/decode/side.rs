//! Validation of one record and the side pass that keeps `req.query`, `req.headers` and
//! `req.params` as their original JSON text.
//!
//! arrow-json cannot put an object with arbitrary keys into a text column, and a
//! `Map<Utf8, Utf8>` breaks on nested values. serde_json's `RawValue` borrows the exact
//! bytes of those three values instead. The same parse validates the record: a record that
//! fails here is rejected with serde's message, so the arrow-json batch that follows only
//! ever sees valid JSON objects.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The JSON texts kept from one record.
#[derive(Debug, Default)]
pub struct SideValues<'a> {
    pub query: Option<&'a str>,
    pub headers: Option<&'a str>,
    pub params: Option<&'a str>,
}

#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow, default)]
    req: Option<LenientReq<'a>>,
}

#[derive(Default)]
struct Req<'a> {
    query: Option<&'a RawValue>,
    headers: Option<&'a RawValue>,
    params: Option<&'a RawValue>,
}

/// `req` in one pass: an object yields its three JSON texts, any other value is validated
/// and ignored (a `req` of another type is not an error).
struct LenientReq<'a>(Req<'a>);

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum ReqField {
    Query,
    Headers,
    Params,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for LenientReq<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReqVisitor(std::marker::PhantomData))
    }
}

struct ReqVisitor<'a>(std::marker::PhantomData<&'a ()>);

impl<'de: 'a, 'a> serde::de::Visitor<'de> for ReqVisitor<'a> {
    type Value = LenientReq<'a>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut req = Req::default();
        while let Some(field) = map.next_key::<ReqField>()? {
            match field {
                ReqField::Query => req.query = Some(map.next_value()?),
                ReqField::Headers => req.headers = Some(map.next_value()?),
                ReqField::Params => req.params = Some(map.next_value()?),
                ReqField::Other => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(LenientReq(req))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(LenientReq(Req::default()))
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(LenientReq(Req::default()))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(LenientReq(Req::default()))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(LenientReq(Req::default()))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(LenientReq(Req::default()))
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(LenientReq(Req::default()))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(LenientReq(Req::default()))
    }
}

/// Validates `bytes` as one JSON object that PostgreSQL can store, and returns the kept
/// JSON texts. The error is the cause, ready for `rejected_records.error`.
pub fn validate(bytes: &[u8]) -> Result<SideValues<'_>, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("invalid UTF-8 at byte {} of the record", e.valid_up_to()))?;
    let record: Record<'_> =
        serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    if has_nul_escape(bytes) {
        return Err("contains \\u0000, which PostgreSQL text and jsonb cannot store".into());
    }
    let req = record.req.map(|r| r.0).unwrap_or_default();
    Ok(SideValues {
        query: non_null(req.query),
        headers: non_null(req.headers),
        params: non_null(req.params),
    })
}

fn non_null(value: Option<&RawValue>) -> Option<&str> {
    value.map(RawValue::get).filter(|text| *text != "null")
}

/// True when the JSON text has a `\u0000` escape (not an escaped backslash followed by
/// `u0000`).
fn has_nul_escape(bytes: &[u8]) -> bool {
    memchr::memmem::find_iter(bytes, b"\\u0000").any(|at| {
        let backslashes_before = bytes[..at]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        backslashes_before % 2 == 0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_nested_objects_as_original_text() {
        let side =
            validate(br#"{"req":{"query":{"a": {"b":[1, 2]}},"headers":{"h":"v"}}}"#).unwrap();
        assert_eq!(side.query, Some(r#"{"a": {"b":[1, 2]}}"#));
        assert_eq!(side.headers, Some(r#"{"h":"v"}"#));
        assert_eq!(side.params, None);
    }

    #[test]
    fn req_of_another_type_is_not_an_error() {
        let side = validate(br#"{"req":"GET /"}"#).unwrap();
        assert!(side.query.is_none());
    }

    #[test]
    fn rejects_invalid_json_with_position() {
        let err = validate(br#"{"a": }"#).unwrap_err();
        assert!(err.contains("line 1 column"), "{err}");
    }

    /// arrow-json is lenient (it accepted every case below when tried): this pass is what
    /// keeps invalid JSON away from PostgreSQL's jsonb.
    #[test]
    fn rejects_what_jsonb_rejects() {
        let cases = [
            r#"{"a":1,}"#,
            r#"{"a":01}"#,
            r#"{"a":1 "b":2}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":1.}"#,
            r#"{"a":-}"#,
            r#"{"a":NaN}"#,
            r#"{a:1}"#,
            r#"{"a":"\x"}"#,
            r#"{"req":{"query":{"x":1,}}}"#,
            r#"{"req":[1,]}"#,
        ];
        for case in cases {
            assert!(validate(case.as_bytes()).is_err(), "accepted {case}");
        }
    }

    #[test]
    fn req_of_any_type_and_duplicate_fields() {
        for req in [r#"[1,{"q":2}]"#, "true", "12", "-1.5", "null", r#""s""#] {
            let record = format!(r#"{{"req":{req},"b":1}}"#);
            assert!(validate(record.as_bytes()).is_ok(), "{record}");
        }
        let side = validate(br#"{"req":{"params":{"id":"1"},"query":"q=1"}}"#).unwrap();
        assert_eq!(
            (side.params, side.query),
            (Some(r#"{"id":"1"}"#), Some(r#""q=1""#))
        );
    }

    #[test]
    fn rejects_nul_escape_but_not_escaped_backslash() {
        assert!(validate(br#"{"m":"a\u0000b"}"#).is_err());
        assert!(validate(br#"{"m":"a\\u0000b"}"#).is_ok());
    }
}
