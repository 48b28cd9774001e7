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
    req: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
struct Req<'a> {
    #[serde(borrow, default)]
    query: Option<&'a RawValue>,
    #[serde(borrow, default)]
    headers: Option<&'a RawValue>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
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
    let req = match record.req {
        Some(raw) if raw.get().starts_with('{') => {
            serde_json::from_str::<Req<'_>>(raw.get()).unwrap_or_default()
        }
        _ => Req::default(),
    };
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

    #[test]
    fn rejects_nul_escape_but_not_escaped_backslash() {
        assert!(validate(br#"{"m":"a\u0000b"}"#).is_err());
        assert!(validate(br#"{"m":"a\\u0000b"}"#).is_ok());
    }
}
