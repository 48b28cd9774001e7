//! Strict validation of one record, and extraction of `req.query`, `req.headers` and
//! `req.params` as their original JSON text, in one allocation-free pass.
//!
//! This module owns the decision "may this record go on to arrow-json and PostgreSQL". It
//! exists because the two consumers disagree:
//!
//! - arrow-json is lenient: it accepts `{"a":1,}`, `{"a":01}`, `{"a":1 "b":2}`, `{"a":[1,]}`,
//!   `{"a":1.}` and `{"a":-}`, and would happily turn them into rows;
//! - PostgreSQL's `jsonb` is strict RFC 8259 and, on top of that, cannot store the escape
//!   `\u0000` nor unpaired UTF-16 surrogate escapes (`\uD800` alone, `\uDC00` alone).
//!
//! A record that passes [`validate`] is exactly one JSON object that `jsonb` accepts: valid
//! UTF-8, strict grammar (numbers `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, literals
//! `true` `false` `null`, string escapes `\" \\ \/ \b \f \n \r \t \uXXXX` only, no raw control
//! characters in strings), no `\u0000`, surrogate escapes only as high+low pairs, and at most
//! [`MAX_DEPTH`] nested arrays/objects (serde_json's limit, which the previous implementation
//! inherited).
//!
//! arrow-json cannot put an object with arbitrary keys into a text column, so the same pass
//! also keeps the exact text of `req.query`, `req.headers` and `req.params` (keys compared
//! after unescaping, last duplicate wins as in `jsonb`, JSON `null` counts as absent, a `req`
//! that is not an object yields nothing).
//!
//! It replaces a serde_json derive (`Option<&RawValue>` + `IgnoredAny`) that cost ~40% of the
//! decode CPU. The parser is a single iterative loop over the bytes with a bit stack for the
//! container kinds; string bodies are skipped eight bytes at a time (SWAR) and long ones with
//! `memchr`; UTF-8 is checked there too, one run of non-ASCII bytes at a time (ASCII needs
//! no check, and outside strings only ASCII is valid JSON), so the record is read once and
//! the common record costs a few instructions per byte and nothing is allocated
//! unless the record is rejected (the error message).

use super::swar;

/// The JSON texts kept from one record.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SideValues<'a> {
    pub query: Option<&'a str>,
    pub headers: Option<&'a str>,
    pub params: Option<&'a str>,
}

/// Which object members the decoder after the validator reads. The members it does not read
/// are reported as [`Unread`] spans, so that the caller can hide them from that decoder
/// instead of having it tokenize them only to skip them.
pub trait KeysRead {
    /// Whether the decoder reads the top-level member with this key (its bytes, without
    /// escapes).
    fn top(key: &[u8]) -> bool;
    /// Whether the decoder reads this member of a top-level `req` object.
    fn req(key: &[u8]) -> bool;
}

/// A decoder that reads every member: nothing is reported unread.
pub struct ReadsAll;

impl KeysRead for ReadsAll {
    #[inline(always)]
    fn top(_: &[u8]) -> bool {
        true
    }
    #[inline(always)]
    fn req(_: &[u8]) -> bool {
        true
    }
}

/// The most unread members reported per record; further ones stay in place (a decoder skips
/// them anyway, only slower).
pub const MAX_UNREAD: usize = 8;

/// Members of a record (top-level ones, and those of a top-level `req` object) whose key the
/// decoder does not read, as byte spans from the key's opening quote to the end of the
/// value, in record order. Keys written with escapes are never reported (they are left to
/// the decoder, which unescapes them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Unread {
    spans: [(u32, u32); MAX_UNREAD],
    len: u8,
}

impl Unread {
    /// The spans, in record order.
    pub fn spans(&self) -> &[(u32, u32)] {
        &self.spans[..usize::from(self.len)]
    }

    /// Appends `record` to `out` with each unread member replaced by `stand_in`.
    pub fn hide(&self, record: &[u8], stand_in: &[u8], out: &mut Vec<u8>) {
        let mut at = 0;
        for &(start, end) in self.spans() {
            out.extend_from_slice(&record[at..start as usize]);
            out.extend_from_slice(stand_in);
            at = end as usize;
        }
        out.extend_from_slice(&record[at..]);
    }

    #[inline(always)]
    fn push(&mut self, start: usize, end: usize) {
        if usize::from(self.len) < MAX_UNREAD {
            self.spans[usize::from(self.len)] = (start as u32, end as u32);
            self.len += 1;
        }
    }
}

/// What validation found in one record, by offsets into it: kept beside the record's bytes
/// (see [`validate_leading_object`]) so that they need not be parsed a second time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    len: u32,
    spans: [Option<(u32, u32)>; 3],
    unread: Unread,
}

impl Checked {
    /// The record's length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Always false: a checked record is at least `{}`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// What [`validate_unread`] returns for `record`.
    ///
    /// # Safety
    /// `record` must be the bytes this was found in: the text is not checked again (a record
    /// of another length panics; in debug builds the whole verdict is compared).
    pub unsafe fn apply<'a, K: KeysRead>(
        &self,
        record: &'a [u8],
    ) -> (&'a str, SideValues<'a>, Unread) {
        assert_eq!(record.len(), self.len(), "a checked record's bytes");
        #[cfg(debug_assertions)]
        {
            let alone = validate_unread::<K>(record).expect("a checked record is valid");
            let text = alone.0;
            assert_eq!((alone.1, alone.2), (self.side(text), self.unread));
        }
        // SAFETY: the caller passes the bytes that `validate_leading_object` accepted, which
        // are valid UTF-8 (see `validate_unread`).
        let text = unsafe { std::str::from_utf8_unchecked(record) };
        (text, self.side(text), self.unread)
    }

    fn side<'a>(&self, text: &'a str) -> SideValues<'a> {
        // Every span starts and ends on an ASCII byte (see `validate_unread`).
        let get = |span: Option<(u32, u32)>| span.map(|(s, e)| &text[s as usize..e as usize]);
        SideValues {
            query: get(self.spans[0]),
            headers: get(self.spans[1]),
            params: get(self.spans[2]),
        }
    }
}

/// Validates the JSON object that starts at `bytes[0]` (a `{`) as [`validate_unread`] would
/// validate it alone, without knowing where it ends: returns its length and what was found,
/// or None when it is not a valid object or does not end within `bytes` (the caller then
/// frames it the slow way, and the validator later reports why). Lets the framer find a
/// record's end and validate it in the same pass.
pub fn validate_leading_object<K: KeysRead>(bytes: &[u8]) -> Option<Checked> {
    if u32::try_from(bytes.len()).is_err() {
        return None;
    }
    let mut unread = Unread::default();
    let (end, spans) = parse_object::<K>(bytes, 0, &mut unread).ok()?;
    let span = |s: Option<(usize, usize)>| s.map(|(s, e)| (s as u32, e as u32));
    Some(Checked {
        len: end as u32,
        spans: spans.map(span),
        unread,
    })
}

/// The deepest nesting of arrays and objects accepted (the top-level object is level 1).
///
/// serde_json (the previous validator, and the differential oracle of the tests) refuses the
/// 128th level: its counter starts at 128 and fails when a nested value brings it to 0.
pub const MAX_DEPTH: usize = 127;

/// Validates `bytes` as exactly one JSON object (surrounding JSON whitespace allowed) that
/// PostgreSQL jsonb can store, and returns the exact texts of `req.query`, `req.headers`,
/// `req.params`. The error is a human-readable cause naming the byte offset within the record,
/// e.g. "invalid JSON at byte 17 of the record: expected ',' or '}' after an object member".
pub fn validate(bytes: &[u8]) -> Result<SideValues<'_>, String> {
    validate_text(bytes).map(|(_, side)| side)
}

/// [`validate`], also returning the record as the `str` it was checked to be (so that the
/// caller does not check its UTF-8 a second time).
pub fn validate_text(bytes: &[u8]) -> Result<(&str, SideValues<'_>), String> {
    validate_unread::<ReadsAll>(bytes).map(|(text, side, _)| (text, side))
}

/// [`validate_text`], also returning the members the decoder `K` does not read.
pub fn validate_unread<K: KeysRead>(
    bytes: &[u8],
) -> Result<(&str, SideValues<'_>, Unread), String> {
    if u32::try_from(bytes.len()).is_err() {
        return Err(format!("record of {} bytes exceeds 4 GiB", bytes.len()));
    }
    let mut unread = Unread::default();
    match parse::<K>(bytes, &mut unread) {
        Ok(spans) => {
            debug_assert!(std::str::from_utf8(bytes).is_ok());
            // SAFETY: `parse` accepts bytes >= 0x80 only inside strings, and checks each run
            // of them there as UTF-8 (`utf8_run`, `long_string`); everything else it accepts
            // is ASCII. So an accepted record is valid UTF-8.
            let text = unsafe { std::str::from_utf8_unchecked(bytes) };
            // Every span starts and ends on an ASCII byte (a value's first and last byte), so
            // slicing the already-validated `str` cannot fail.
            let get = |span: Option<(usize, usize)>| span.map(|(s, e)| &text[s..e]);
            let side = SideValues {
                query: get(spans[0]),
                headers: get(spans[1]),
                params: get(spans[2]),
            };
            Ok((text, side, unread))
        }
        // Invalid UTF-8 anywhere is the cause reported first, as when it was checked before
        // parsing (the error path only).
        Err(fail) => Err(match std::str::from_utf8(bytes) {
            Err(e) => utf8_error(e.valid_up_to()),
            Ok(_) => fail.message(bytes.len()),
        }),
    }
}

#[cold]
#[inline(never)]
fn utf8_error(at: usize) -> String {
    format!("invalid UTF-8 at byte {at} of the record")
}

/// Why and where a record was refused; turned into text only on the error path.
#[derive(Debug, Clone, Copy)]
struct Fail {
    at: usize,
    what: &'static str,
}

impl Fail {
    #[cold]
    #[inline(never)]
    fn message(self, len: usize) -> String {
        let Fail { at, what } = self;
        if at >= len {
            format!(
                "invalid JSON at byte {len} of the record: unexpected end of the record, {what}"
            )
        } else if what == NUL {
            format!("unstorable JSON at byte {at} of the record: {what}")
        } else {
            format!("invalid JSON at byte {at} of the record: {what}")
        }
    }
}

const NUL: &str = "contains \\u0000, which PostgreSQL text and jsonb cannot store";
/// Marks a [`Fail`] for invalid UTF-8.
const UTF8: &str = "invalid UTF-8";

#[cold]
#[inline(never)]
fn fail<T>(at: usize, what: &'static str) -> Result<T, Fail> {
    Err(Fail { at, what })
}

/// The byte at `i`, or 0 past the end. 0 is never valid where a byte is peeked (it is not
/// whitespace, not a token start, and a control character inside strings), so the end of the
/// input needs no separate test on the fast paths; [`Fail::message`] reports it as such.
#[inline(always)]
fn at(b: &[u8], i: usize) -> u8 {
    match b.get(i) {
        Some(&c) => c,
        None => 0,
    }
}

#[inline(always)]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(at(b, i), b' ' | b'\n' | b'\r' | b'\t') {
        i += 1;
    }
    i
}

/// Which kept value a key of the `req` object names: 1 query, 2 headers, 3 params, 0 none.
#[inline(always)]
fn req_slot(key: &[u8], escaped: bool) -> u8 {
    if !escaped {
        match key {
            b"query" => 1,
            b"headers" => 2,
            b"params" => 3,
            _ => 0,
        }
    } else if unescaped_eq(key, b"query") {
        1
    } else if unescaped_eq(key, b"headers") {
        2
    } else if unescaped_eq(key, b"params") {
        3
    } else {
        0
    }
}

#[inline(always)]
fn key_is_req(key: &[u8], escaped: bool) -> bool {
    if escaped {
        unescaped_eq(key, b"req")
    } else {
        key == b"req"
    }
}

/// Compares the body of a string that has escapes (already validated) with `target` after
/// unescaping, without allocating.
#[cold]
#[inline(never)]
fn unescaped_eq(raw: &[u8], target: &[u8]) -> bool {
    let (mut i, mut t) = (0, 0);
    while i < raw.len() {
        if raw[i] != b'\\' {
            if target.get(t) != Some(&raw[i]) {
                return false;
            }
            i += 1;
            t += 1;
            continue;
        }
        let c = match raw[i + 1] {
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n' as u32,
            b'r' => b'\r' as u32,
            b't' => b'\t' as u32,
            b'u' => {
                let hi = hex4(raw, i + 2).unwrap_or(0);
                if (0xD800..0xDC00).contains(&hi) {
                    let lo = hex4(raw, i + 8).unwrap_or(0);
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo.wrapping_sub(0xDC00) & 0x3ff)
                } else {
                    hi
                }
            }
            other => other as u32, // \" \\ \/
        };
        i += if raw[i + 1] == b'u' { 6 } else { 2 };
        let mut buf = [0; 4];
        let encoded = match char::from_u32(c) {
            Some(ch) => ch.encode_utf8(&mut buf).as_bytes(),
            None => return false,
        };
        if target.get(t..t + encoded.len()) != Some(encoded) {
            return false;
        }
        t += encoded.len();
    }
    t == target.len()
}

/// The value of four hex digits at `i`, or `None`.
#[inline]
fn hex4(b: &[u8], i: usize) -> Option<u32> {
    let digits = b.get(i..i + 4)?;
    let mut v = 0;
    for &d in digits {
        let x = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        v = (v << 4) | u32::from(x);
    }
    Some(v)
}

/// A mask whose lowest set bit marks the first byte of `w` (little-endian) that is `"`, `\`,
/// below 0x20 or not ASCII, and 0 when there is none. Bits above the lowest may be false
/// positives (borrows), so only the lowest is used.
#[inline(always)]
fn special(w: u64) -> u64 {
    swar::eq(w, b'"') | swar::eq(w, b'\\') | swar::below(w, 0x20) | swar::non_ascii(w)
}

/// Checks the run of non-ASCII bytes starting at `i` (inside a string) as UTF-8; returns the
/// index of the ASCII byte (or end) after it. A run of bytes >= 0x80 between ASCII bytes is
/// a whole number of characters when the text is valid UTF-8, so checking every run checks
/// the record.
#[inline(never)]
fn utf8_run(b: &[u8], i: usize) -> Result<usize, Fail> {
    let end = b[i..]
        .iter()
        .position(|&c| c < 0x80)
        .map_or(b.len(), |k| i + k);
    match std::str::from_utf8(&b[i..end]) {
        Ok(_) => Ok(end),
        Err(e) => fail(i + e.valid_up_to(), UTF8),
    }
}

/// After this many string bytes without a special byte, the rest of the string is searched
/// with `memchr` (SIMD) instead of eight bytes at a time.
const LONG_STRING: usize = 64;

/// Scans a string body from `i` (just after the opening quote). Returns the index just after
/// the closing quote and whether the body had escapes.
#[inline(always)]
fn scan_string(b: &[u8], mut i: usize) -> Result<(usize, bool), Fail> {
    let n = b.len();
    let mut escaped = false;
    let start = i;
    loop {
        // Find the next `"`, `\` or control byte.
        let c = loop {
            if i + 8 <= n {
                let m = special(swar::word(b, i));
                if m != 0 {
                    i += swar::first(m);
                    break b[i];
                }
                i += 8;
                if i - start >= LONG_STRING {
                    i = long_string(b, i)?;
                    break b[i];
                }
            } else {
                let c = at(b, i);
                if c == b'"' || c == b'\\' || !c.is_ascii() || c < 0x20 {
                    break c;
                }
                i += 1;
            }
        };
        match c {
            b'"' => return Ok((i + 1, escaped)),
            0x80.. => i = utf8_run(b, i)?,
            b'\\' => {
                escaped = true;
                i = escape(b, i)?;
            }
            _ if i >= n => return fail(i, "expected '\"' to close the string"),
            _ => return fail(i, "raw control character in a string (must be escaped)"),
        }
    }
}

/// The index of the next `"` or `\` from `i` in a long string, after checking that no
/// control byte precedes it. Returns `Ok(i)` with `b[i]` special (end of input is an error).
#[cold]
#[inline(never)]
fn long_string(b: &[u8], i: usize) -> Result<usize, Fail> {
    let end = match memchr::memchr2(b'"', b'\\', &b[i..]) {
        Some(k) => i + k,
        None => b.len(),
    };
    // Branch-free OR over the span (vectorizes); the exact position only on failure.
    let span = &b[i..end];
    let any_control = span.iter().fold(0u8, |acc, &c| acc | u8::from(c < 0x20));
    if any_control != 0 {
        let k = span.iter().position(|&c| c < 0x20).unwrap_or(0);
        return fail(i + k, "raw control character in a string (must be escaped)");
    }
    // `b[i - 1]` and `b[end]` are ASCII (or the ends), so the span is whole characters.
    if let Err(e) = std::str::from_utf8(span) {
        return fail(i + e.valid_up_to(), UTF8);
    }
    if end == b.len() {
        return fail(end, "expected '\"' to close the string");
    }
    Ok(end)
}

/// Checks the escape whose backslash is at `i`; returns the index after it.
#[inline(always)]
fn escape(b: &[u8], i: usize) -> Result<usize, Fail> {
    match at(b, i + 1) {
        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Ok(i + 2),
        b'u' => unicode_escape(b, i),
        _ => fail(i + 1, "invalid escape in a string"),
    }
}

#[inline(never)]
fn unicode_escape(b: &[u8], i: usize) -> Result<usize, Fail> {
    let Some(cp) = hex4(b, i + 2) else {
        return fail(i, "expected four hex digits after \\u");
    };
    match cp {
        0 => fail(i, NUL),
        0xD800..=0xDBFF => {
            if at(b, i + 6) == b'\\'
                && at(b, i + 7) == b'u'
                && matches!(hex4(b, i + 8), Some(0xDC00..=0xDFFF))
            {
                Ok(i + 12)
            } else {
                fail(
                    i,
                    "lone high surrogate escape (must be followed by a \\uDC00-\\uDFFF escape)",
                )
            }
        }
        0xDC00..=0xDFFF => fail(i, "lone low surrogate escape"),
        _ => Ok(i + 6),
    }
}

#[inline(always)]
fn digits(b: &[u8], mut i: usize) -> usize {
    while at(b, i).is_ascii_digit() {
        i += 1;
    }
    i
}

/// Digits PostgreSQL's `numeric` (and so `jsonb`) holds before the decimal point.
const NUMERIC_MAX_INTEGER_DIGITS: i64 = 131_072;
/// Digits PostgreSQL's `numeric` holds after the decimal point.
const NUMERIC_MAX_FRACTION_DIGITS: i64 = 16_383;

/// Checks the number starting at `i` (`-` or a digit); returns the index after it.
///
/// Beyond the grammar, the number must fit PostgreSQL's `numeric`, or `jsonb` would refuse
/// the record and fail its whole chunk: with the exponent applied, at most
/// [`NUMERIC_MAX_INTEGER_DIGITS`] digits before the point and
/// [`NUMERIC_MAX_FRACTION_DIGITS`] after it (counting written digits, so a few numbers
/// that PostgreSQL would normalise, like `0.001e131074`, are refused too: they are kept in
/// `rejected_records`).
#[inline(always)]
fn number(b: &[u8], mut i: usize) -> Result<usize, Fail> {
    let start = i;
    if at(b, i) == b'-' {
        i += 1;
    }
    let integer_start = i;
    match at(b, i) {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(b, i + 1),
        _ => return fail(i, "expected a digit in a number"),
    }
    let integer_digits = (i - integer_start) as i64;
    let mut fraction_digits = 0;
    if at(b, i) == b'.' {
        if !at(b, i + 1).is_ascii_digit() {
            return fail(i + 1, "expected a digit after the decimal point");
        }
        let end = digits(b, i + 2);
        fraction_digits = (end - i - 1) as i64;
        i = end;
    }
    let mut exponent: i64 = 0;
    if at(b, i) | 0x20 == b'e' {
        i += 1;
        let negative = at(b, i) == b'-';
        if matches!(at(b, i), b'+' | b'-') {
            i += 1;
        }
        if !at(b, i).is_ascii_digit() {
            return fail(i, "expected a digit in the exponent");
        }
        let end = digits(b, i + 1);
        for digit in &b[i..end] {
            exponent = (exponent * 10 + i64::from(digit - b'0')).min(i64::from(i32::MAX));
        }
        if negative {
            exponent = -exponent;
        }
        i = end;
    }
    if integer_digits + exponent > NUMERIC_MAX_INTEGER_DIGITS
        || fraction_digits - exponent > NUMERIC_MAX_FRACTION_DIGITS
    {
        return fail(
            start,
            "number out of the range PostgreSQL numeric and jsonb can store",
        );
    }
    Ok(i)
}

#[inline(always)]
fn literal(b: &[u8], i: usize, word: &'static [u8]) -> Result<usize, Fail> {
    if b.get(i..i + word.len()) == Some(word) {
        Ok(i + word.len())
    } else {
        fail(i, "expected a JSON value (invalid literal)")
    }
}

/// Spans of `req.query`, `req.headers` and `req.params` in a record.
type Spans = [Option<(usize, usize)>; 3];

/// The one pass. Returns the spans of query, headers, params; reports the members `K` does
/// not read in `unread`.
fn parse<K: KeysRead>(b: &[u8], unread: &mut Unread) -> Result<Spans, Fail> {
    let (end, spans) = parse_object::<K>(b, skip_ws(b, 0), unread)?;
    let i = skip_ws(b, end);
    if i != b.len() {
        return fail(i, "unexpected data after the top-level object");
    }
    Ok(spans)
}

/// Parses the object starting at `b[i]`; returns where it ends (exclusive) and the spans.
/// The verdict never depends on the bytes after the object's closing brace.
#[inline(always)]
fn parse_object<K: KeysRead>(
    b: &[u8],
    mut i: usize,
    unread: &mut Unread,
) -> Result<(usize, Spans), Fail> {
    let mut spans: Spans = [None; 3];
    if at(b, i) != b'{' {
        return fail(i, "expected '{' (a record must be a JSON object)");
    }
    // Open containers: `depth` of them; bit k of `objects` is set when level k+1 is an object.
    let mut depth: usize = 0;
    let mut objects: u128 = 0;
    // The object open at level 2 is the value of a top-level `req` member.
    let mut in_req = false;
    // The current top-level member is `req`.
    let mut member_is_req = false;
    // The value being parsed is kept in `spans[slot - 1]` (0: not kept), starting at `kept`.
    let mut slot: u8 = 0;
    let mut kept = 0;
    // The current top-level member / `req` member is unread, and starts at `top_start` /
    // `req_start` (its key's opening quote).
    let (mut top_unread, mut top_start) = (false, 0);
    let (mut req_unread, mut req_start) = (false, 0);

    // Parses the member key at `i` (after whitespace), the ':' and the whitespace after it.
    macro_rules! member_key {
        () => {{
            if at(b, i) != b'"' {
                return fail(i, "expected '\"' to start an object key");
            }
            let (end, escaped) = scan_string(b, i + 1)?;
            let key = &b[i + 1..end - 1];
            if depth == 1 {
                member_is_req = key_is_req(key, escaped);
                if member_is_req {
                    // The last `req` wins, whatever its type.
                    spans = [None; 3];
                }
                top_unread = !escaped && !member_is_req && !K::top(key);
                top_start = i;
            } else if depth == 2 && in_req {
                slot = req_slot(key, escaped);
                req_unread = !escaped && !K::req(key);
                req_start = i;
            }
            i = skip_ws(b, end);
            if at(b, i) != b':' {
                return fail(i, "expected ':' after an object key");
            }
            i = skip_ws(b, i + 1);
            if depth == 2 {
                kept = i;
            }
        }};
    }

    'value: loop {
        // `i` is at the first byte of a value.
        match at(b, i) {
            b'"' => i = scan_string(b, i + 1)?.0,
            b'-' | b'0'..=b'9' => i = number(b, i)?,
            c @ (b'{' | b'[') => {
                if depth == MAX_DEPTH {
                    return fail(i, "nesting deeper than 127 arrays/objects");
                }
                let is_object = c == b'{';
                if is_object {
                    objects |= 1 << depth;
                    if depth == 1 && member_is_req {
                        in_req = true;
                    }
                } else {
                    objects &= !(1 << depth);
                }
                depth += 1;
                i = skip_ws(b, i + 1);
                let close = if is_object { b'}' } else { b']' };
                if at(b, i) == close {
                    i += 1;
                    depth -= 1;
                    if depth == 1 {
                        in_req = false;
                    }
                } else if is_object {
                    member_key!();
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            b't' => i = literal(b, i, b"true")?,
            b'f' => i = literal(b, i, b"false")?,
            b'n' => i = literal(b, i, b"null")?,
            _ => return fail(i, "expected a JSON value"),
        }
        // A value ended just before `i`, inside the container at level `depth`.
        loop {
            if depth == 0 {
                break 'value;
            }
            if depth == 1 && top_unread {
                unread.push(top_start, i);
                top_unread = false;
            } else if depth == 2 && in_req && req_unread {
                unread.push(req_start, i);
                req_unread = false;
            }
            if slot != 0 && depth == 2 {
                let text = &b[kept..i];
                spans[usize::from(slot - 1)] = if text == b"null" {
                    None
                } else {
                    Some((kept, i))
                };
                slot = 0;
            }
            i = skip_ws(b, i);
            let c = at(b, i);
            if objects >> (depth - 1) & 1 != 0 {
                if c == b',' {
                    i = skip_ws(b, i + 1);
                    member_key!();
                    continue 'value;
                } else if c == b'}' {
                    i += 1;
                    depth -= 1;
                    if depth == 1 {
                        in_req = false;
                    }
                } else {
                    return fail(i, "expected ',' or '}' after an object member");
                }
            } else if c == b',' {
                i = skip_ws(b, i + 1);
                continue 'value;
            } else if c == b']' {
                i += 1;
                depth -= 1;
            } else {
                return fail(i, "expected ',' or ']' after an array element");
            }
        }
    }
    Ok((i, spans))
}

/// The differential oracle (serde_json's verdict), for the tests and the fuzzer only.
#[cfg(any(test, feature = "oracle"))]
pub mod oracle;

#[cfg(test)]
mod tests {
    use super::oracle::{Strict, check, oracle};
    use super::*;

    /// The limits are PostgreSQL's, checked against a live server: `1e131071` and
    /// `1e-16383` are stored, `1e131072` and `1e-16384` overflow.
    #[test]
    fn numbers_beyond_postgresql_numeric_are_refused() {
        for ok in [
            r#"{"a":1e131071}"#,
            r#"{"a":1e-16383}"#,
            r#"{"a":-12.5e3}"#,
            r#"{"a":1e400}"#,
        ] {
            assert!(validate(ok.as_bytes()).is_ok(), "{ok}");
        }
        for bad in [
            r#"{"a":1e131072}"#,
            r#"{"a":1e-16384}"#,
            r#"{"a":1e1000000}"#,
            r#"{"a":0.5e-16383}"#,
        ] {
            let err = validate(bad.as_bytes()).unwrap_err();
            assert!(
                err.contains("out of the range PostgreSQL numeric"),
                "{bad}: {err}"
            );
        }
    }

    // ---- Hand-written cases ---------------------------------------------------------------

    fn nest(levels: usize) -> String {
        // `levels` nested containers, the top-level one an object.
        let mut s = String::from("{\"a\":");
        for k in 1..levels {
            s.push(if k % 2 == 0 { '[' } else { '{' });
            if k % 2 == 1 {
                s.push_str("\"k\":");
            }
        }
        s.push('1');
        for k in (1..levels).rev() {
            s.push(if k % 2 == 0 { ']' } else { '}' });
        }
        s.push('}');
        s
    }

    const VALID: &[&str] = &[
        "{}",
        " \t\r\n{ \t\r\n} \t\r\n",
        r#"{"a":1}"#,
        r#"{"a":-0,"b":0.5,"c":-12.25e+3,"d":1E-2,"e":0e0,"f":123456789012345678901234567890}"#,
        r#"{"a":true,"b":false,"c":null,"d":"","e":[],"f":{},"g":[[]],"h":[{}]}"#,
        r#"{ "a" : [ 1 , 2 , { "b" : [ ] } ] , "c" : "d" }"#,
        r#"{"s":"\" \\ \/ \b \f \n \r \t \u00e9 \u20AC \uD83D\uDE00 \uffff \u0001"}"#,
        r#"{"unicode":"héllo wörld 🚀✨ 日本語","\u00e9":"\u00E9"}"#,
        r#"{"a":"x\\u0000"}"#,
        r#"{"a":"\\\\u0000"}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"req":{"query":{"a":"b"},"headers":{"h":"v"},"params":{"id":"1"}}}"#,
        r#"{"req":{"query":  {"a": [1, 2]}  ,"headers" : "x" , "params":[1,{"x":null}]}}"#,
        r#"{"req":{"query":null,"headers":1.5e3,"params":true}}"#,
        r#"{"req":{"query":"q"},"req":{"headers":"h"}}"#,
        r#"{"req":{"query":"q"},"req":5}"#,
        r#"{"req":{"query":"q","query":null}}"#,
        r#"{"req":{"query":"q","query":"r"}}"#,
        r#"{"req":{"nested":{"query":"no"},"params":{}}}"#,
        r#"{"x":{"req":{"query":"no"}},"query":"no"}"#,
        r#"{"re\u0071":{"qu\u0065ry":"yes","\u0068eaders":[],"param\u0073":{"a":1}}}"#,
        r#"{"\u0072\u0065\u0071":{"\/":1,"query\n":2,"query":3}}"#,
        r#"{"req":[{"query":1}]}"#,
        r#"{"req":"GET /"}"#,
        r#"{"req":12}"#,
        r#"{"req":-1.5}"#,
        r#"{"req":true}"#,
        r#"{"req":null}"#,
        r#"{"req":{}}"#,
        r#"{"req":{},"x":{"query":1}}"#,
        r#"{"req":[],"x":{"query":1}}"#,
        r#"{"req":{"query":{}},"y":{"params":1}}"#,
        r#"{"a":1e400}"#,
        r#"{"$serde_json::private::RawValue":0}"#,
    ];

    const INVALID: &[&str] = &[
        // The leniencies of arrow-json.
        r#"{"a":1,}"#,
        r#"{"a":01}"#,
        r#"{"a":1 "b":2}"#,
        r#"{"a":[1,]}"#,
        r#"{"a":1.}"#,
        r#"{"a":-}"#,
        // Grammar.
        "",
        " ",
        "{",
        "}",
        "{}}",
        "{} {}",
        "{}x",
        "[]",
        "1",
        "\"s\"",
        "null",
        "true",
        r#"{,}"#,
        r#"{"a"}"#,
        r#"{"a":}"#,
        r#"{"a" 1}"#,
        r#"{"a"::1}"#,
        r#"{a:1}"#,
        r#"{'a':1}"#,
        r#"{"a":1,,"b":2}"#,
        r#"{"a":[1 2]}"#,
        r#"{"a":[,1]}"#,
        r#"{"a":[1}"#,
        r#"{"a":{]}"#,
        r#"{"a":NaN}"#,
        r#"{"a":Infinity}"#,
        r#"{"a":+1}"#,
        r#"{"a":.5}"#,
        r#"{"a":1.e5}"#,
        r#"{"a":1e}"#,
        r#"{"a":1e+}"#,
        r#"{"a":-01}"#,
        r#"{"a":00}"#,
        r#"{"a":0x10}"#,
        r#"{"a":1.5.5}"#,
        r#"{"a":tru}"#,
        r#"{"a":truee}"#,
        r#"{"a":True}"#,
        r#"{"a":nul}"#,
        r#"{"a":falsy}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"\u12"}"#,
        r#"{"a":"\u12G4"}"#,
        r#"{"a":"\U0041"}"#,
        r#"{"a":"\'"}"#,
        "{\"a\":\"tab\there\"}",
        "{\"a\":\"nl\nhere\"}",
        "{\"a\":\"\u{1}\"}",
        "{\"a\u{1f}\":1}",
        r#"{"a":"unterminated}"#,
        "{\"a\":1}\u{c}",
        "\u{c}{}",
        "\u{a0}{}",
        // jsonb.
        r#"{"a":"\u0000"}"#,
        r#"{"\u0000":1}"#,
        r#"{"req\u0000":1}"#,
        r#"{"a":"\\\u0000"}"#,
        r#"{"a":"\uD800"}"#,
        r#"{"a":"\uD800x"}"#,
        r#"{"a":"\uD800\n"}"#,
        r#"{"a":"\uD800\uD800"}"#,
        r#"{"a":"\uD800\u0041"}"#,
        r#"{"a":"\uDBFF\uE000"}"#,
        r#"{"a":"\uDC00"}"#,
        r#"{"a":"\uDFFF\uD800"}"#,
        r#"{"a":"\uD83D\uDE00\uDE00"}"#,
        r#"{"req":{"query":{"x":1,}}}"#,
        r#"{"req":[1,]}"#,
        r#"{"req":{"query":"q"},"req":5,}"#,
    ];

    #[test]
    fn hand_written_cases_agree_with_serde_json() {
        for case in VALID {
            assert!(
                validate(case.as_bytes()).is_ok(),
                "rejected {case}: {:?}",
                validate(case.as_bytes())
            );
            check(case.as_bytes());
        }
        for case in INVALID {
            assert!(validate(case.as_bytes()).is_err(), "accepted {case}");
            assert!(check(case.as_bytes()), "skipped {case}");
        }
        for bytes in [
            &b"{\"a\":\"\xff\"}"[..],
            b"{\"a\":\"\xc3\"}",
            b"{\"\xed\xa0\x80\":1}",
        ] {
            assert!(
                validate(bytes)
                    .unwrap_err()
                    .starts_with("invalid UTF-8 at byte")
            );
            check(bytes);
        }
        // A byte order mark is not JSON whitespace.
        assert!(
            validate(b"\xef\xbb\xbf{}")
                .unwrap_err()
                .contains("at byte 0 of the record")
        );
        check(b"\xef\xbb\xbf{}");
    }

    #[test]
    fn utf8_is_checked_in_every_path_of_the_string_scan() {
        let long = "x".repeat(100);
        let cases: &[(Vec<u8>, Option<usize>)] = &[
            // Eight bytes at a time, the last bytes one at a time, and long strings.
            (b"{\"k\":\"ab\xc3\xa9cdefghij\"}".to_vec(), None),
            (b"{\"k\":\"ab\xc3\x28cdefghij\"}".to_vec(), Some(8)),
            (b"{\"k\":\"\xe2\x82\xac\"}".to_vec(), None),
            (b"{\"k\":\"\xe2\x82\"}".to_vec(), Some(6)),
            (
                format!("{{\"k\":\"{long}\u{e9}\u{1F680}{long}\"}}").into_bytes(),
                None,
            ),
            (
                [
                    format!("{{\"k\":\"{long}").as_bytes(),
                    b"\xf0\x9f\x9a",
                    b"\"}",
                ]
                .concat(),
                Some(106),
            ),
            (
                [format!("{{\"k\":\"{long}").as_bytes(), b"\xed\xa0\x80\"}"].concat(),
                Some(106),
            ),
            // Overlong encoding, in a key.
            (b"{\"\xc0\xaf\":1}".to_vec(), Some(2)),
            // Before a JSON error, invalid UTF-8 is the cause reported, wherever it is.
            (b"{\"a\":1,,\"\xff\"}".to_vec(), Some(9)),
            (b"{\"a\":\xff}".to_vec(), Some(5)),
        ];
        for (record, bad_at) in cases {
            let verdict = validate(record);
            match bad_at {
                None => assert!(verdict.is_ok(), "{verdict:?}"),
                Some(at) => assert_eq!(
                    verdict.unwrap_err(),
                    format!("invalid UTF-8 at byte {at} of the record"),
                    "{}",
                    String::from_utf8_lossy(record)
                ),
            }
            check(record);
        }
    }

    #[test]
    fn extraction() {
        let side = validate(br#"{"req":{"query":{"a": {"b":[1, 2]}},"headers":{"h":"v"}}}"#);
        assert_eq!(
            side,
            Ok(SideValues {
                query: Some(r#"{"a": {"b":[1, 2]}}"#),
                headers: Some(r#"{"h":"v"}"#),
                params: None
            })
        );
        let side = validate(br#"{"req":{"query":"q"},"req":{"headers":"h"}}"#).unwrap();
        assert_eq!((side.query, side.headers), (None, Some(r#""h""#)));
        let side = validate(br#"{"req":{"query":"q"},"req":5}"#).unwrap();
        assert_eq!(side, SideValues::default());
        let side = validate(br#"{"req":{"params":"p","params":null}}"#).unwrap();
        assert_eq!(side, SideValues::default());
        let side = validate(br#"{"re\u0071":{"qu\u0065ry":  -1.5e3 }}"#).unwrap();
        assert_eq!(side.query, Some("-1.5e3"));
        let side = validate(br#"{"req":{"q\uD83D\uDE00":1,"params":"\u00e9"}}"#).unwrap();
        assert_eq!(side.params, Some(r#""\u00e9""#));
        let side = validate(br#"{"req":{"query":{}},"y":{"params":1}}"#).unwrap();
        assert_eq!((side.query, side.params), (Some("{}"), None));
        for req in [
            r#"[1,{"query":2}]"#,
            "true",
            "12",
            "-1.5",
            "null",
            r#""s""#,
            "{}",
        ] {
            let record = format!(r#"{{"req":{req},"b":{{"query":1}}}}"#);
            assert_eq!(
                validate(record.as_bytes()),
                Ok(SideValues::default()),
                "{record}"
            );
        }
    }

    #[test]
    fn error_messages_name_the_offset() {
        let err = |s: &str| validate(s.as_bytes()).unwrap_err();
        assert_eq!(
            err(r#"{"a":1,"bb":2 "c":3}"#),
            "invalid JSON at byte 14 of the record: expected ',' or '}' after an object member"
        );
        assert_eq!(
            err(r#"{"a":"\u0000"}"#),
            "unstorable JSON at byte 6 of the record: contains \\u0000, which PostgreSQL text and jsonb cannot store"
        );
        assert!(err(r#"{"a":"\uD800"}"#).contains("at byte 6 of the record: lone high surrogate"));
        assert!(err(r#"{"a":"\uDC00"}"#).contains("at byte 6 of the record: lone low surrogate"));
        assert!(
            err(r#"{"a":[1,]}"#)
                .starts_with("invalid JSON at byte 8 of the record: expected a JSON value")
        );
        assert!(
            err(r#"{"a":"#)
                .starts_with("invalid JSON at byte 5 of the record: unexpected end of the record")
        );
        assert!(err("[]").starts_with("invalid JSON at byte 0 of the record: expected '{'"));
        assert!(err("{} x").starts_with("invalid JSON at byte 3 of the record: unexpected data"));
        assert_eq!(
            validate(b"{\"\xe9\"}").unwrap_err(),
            "invalid UTF-8 at byte 2 of the record"
        );
        assert!(err(&nest(MAX_DEPTH + 1)).contains("nesting deeper than 127"));
    }

    /// Pins the assumptions the oracle relies on: serde_json rejects lone surrogates when it
    /// decodes strings, and its nesting limit is 127 levels (it refuses the 128th, which is
    /// one less than "deeper than 128" would suggest; we follow serde_json).
    #[test]
    fn serde_json_assumptions() {
        let serde_ok = |s: &str| serde_json::from_str::<Strict>(s).is_ok();
        for s in [
            r#"{"a":"\uD800"}"#,
            r#"{"a":"\uDC00"}"#,
            r#"{"a":"\uD800\uD800"}"#,
            r#"{"\uD800":1}"#,
        ] {
            assert!(!serde_ok(s), "{s}");
        }
        assert!(serde_ok(r#"{"a":"\uD800\uDC00"}"#));
        assert!(serde_ok(&nest(127)));
        assert!(!serde_ok(&nest(128)));
        assert!(!serde_ok(&nest(129)));
        assert!(validate(nest(127).as_bytes()).is_ok());
        assert!(validate(nest(128).as_bytes()).is_err());
        assert!(validate(nest(129).as_bytes()).is_err());
        // `Value` cannot hold 1e400, so the oracle skips such cases; jsonb stores them.
        assert_eq!(oracle(br#"{"a":1e400}"#), None);
        assert!(validate(br#"{"a":1e400,"b":-1e-400}"#).is_ok());
        for levels in [1, 2, 3, 126, 127, 128, 129, 200] {
            check(nest(levels).as_bytes());
            let arrays = format!(
                "{{\"a\":{}{}}}",
                "[".repeat(levels - 1),
                "]".repeat(levels - 1)
            );
            check(arrays.as_bytes());
        }
    }

    // ---- Generated cases --------------------------------------------------------------------

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn pick(&mut self, items: &[&'static str]) -> &'static str {
            items[self.below(items.len())]
        }
    }

    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"",
        "\\",
        " ",
        "\n",
        "\t",
        "0",
        "1",
        "9",
        "-",
        "+",
        ".",
        "e",
        "E",
        "t",
        "f",
        "n",
        "u",
        "true",
        "false",
        "null",
        "\\u0000",
        "\\uD800",
        "\\uDC00",
        "\\u0041",
        "\\n",
        "\\/",
        "\"req\"",
        "\"query\"",
        "\"headers\"",
        "\"params\"",
        "\"re\\u0071\"",
        "\"req\":{",
        ":null",
        "é",
        "🚀",
        "\u{1}",
        "\u{7f}",
        "00",
        "1e400",
    ];

    /// A random valid JSON value (objects favour the keys the extraction looks at).
    fn gen_value(rng: &mut Rng, out: &mut String, depth: usize) {
        let ws = |rng: &mut Rng, out: &mut String| {
            if rng.below(4) == 0 {
                out.push_str(rng.pick(&[" ", "\n", "\t ", "\r\n  "]));
            }
        };
        ws(rng, out);
        match rng.below(if depth > 4 { 5 } else { 7 }) {
            0 => out.push_str(rng.pick(&["true", "false", "null"])),
            1 => out.push_str(rng.pick(&[
                "0",
                "-0",
                "12",
                "-3.25",
                "1e5",
                "2.5E-3",
                "10e+2",
                "123456789012",
            ])),
            2 | 3 => {
                out.push('"');
                for _ in 0..rng.below(6) {
                    out.push_str(rng.pick(&[
                        "a",
                        "bc",
                        "é",
                        "日本",
                        "🚀",
                        "\\n",
                        "\\\"",
                        "\\\\",
                        "\\u00e9",
                        "\\uD83D\\uDE00",
                        " ",
                        "0123456789abcdef",
                    ]));
                }
                out.push('"');
            }
            4 => out.push_str(rng.pick(&["{}", "[]", "\"\""])),
            5 => {
                out.push('[');
                for k in 0..rng.below(4) {
                    if k > 0 {
                        out.push(',');
                    }
                    gen_value(rng, out, depth + 1);
                }
                ws(rng, out);
                out.push(']');
            }
            _ => {
                out.push('{');
                for k in 0..rng.below(5) {
                    if k > 0 {
                        out.push(',');
                    }
                    ws(rng, out);
                    out.push_str(rng.pick(&[
                        "\"req\"",
                        "\"query\"",
                        "\"headers\"",
                        "\"params\"",
                        "\"a\"",
                        "\"re\\u0071\"",
                        "\"\\u0071uery\"",
                        "\"x y\"",
                        "\"\"",
                    ]));
                    ws(rng, out);
                    out.push(':');
                    gen_value(rng, out, depth + 1);
                }
                ws(rng, out);
                out.push('}');
            }
        }
        ws(rng, out);
    }

    fn gen_record(rng: &mut Rng) -> Vec<u8> {
        let mut s = String::new();
        while !s.trim_start().starts_with('{') {
            s.clear();
            gen_value(rng, &mut s, 0);
        }
        s.into_bytes()
    }

    const SEED_RECORDS: &[&str] = &[
        r#"{"level":30,"time":1730764800100,"pid":22384,"hostname":"api-823f2","timestamp":"2024-11-05T00:00:00.100Z","context":"HttpLogger","message":"deploy finished 🚀✨","req":{"id":"req-a86a07","method":"GET","url":"/v1/documents?status=draft","query":{"status":"draft"},"params":{"id":"32496"},"headers":{"host":"api.example.com","user-agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36","accept":"application/json"},"remoteAddress":"10.0.12.25","remotePort":35231},"res":{"statusCode":200},"processingTimeMs":38.669,"cacheHit":true,"x":null}"#,
        r#"{"req":{"query":{"a":[1,2.5,-3e2]},"headers":{"h":"v\n\u00e9"},"params":null},"b":[true,false,{}]}"#,
        r#"{"re\u0071":{"params":"\uD83D\uDE00","query":"x"},"s":"\\u0000 \/"}"#,
    ];

    fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(3) {
            let len = input.len();
            let at = rng.below(len + 1);
            match rng.below(6) {
                0 if at < len => input[at] ^= 1 << rng.below(8),
                1 if at < len => input[at] = rng.pick(PIECES).as_bytes()[0],
                2 if at < len => {
                    let end = (at + 1 + rng.below(4)).min(len);
                    input.drain(at..end);
                }
                3 if at < len => {
                    let end = (at + 1 + rng.below(8)).min(len);
                    let copy = input[at..end].to_vec();
                    let to = rng.below(len + 1);
                    input.splice(to..to, copy);
                }
                _ => {
                    let piece = rng.pick(PIECES).as_bytes();
                    input.splice(at..at, piece.iter().copied());
                }
            }
        }
    }

    fn mutation_count() -> usize {
        std::env::var("VALIDATE_MUTATIONS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if cfg!(debug_assertions) {
                200_000
            } else {
                2_000_000
            })
    }

    /// Reads `level`, `a`, `req` at the top and `id`, `method` in `req`.
    struct Some_;

    impl KeysRead for Some_ {
        fn top(key: &[u8]) -> bool {
            matches!(key, b"level" | b"a" | b"req")
        }
        fn req(key: &[u8]) -> bool {
            matches!(key, b"id" | b"method")
        }
    }

    /// `record` with its unread members replaced by `"_":null`, as the RAW decoder does.
    fn hide_unread(record: &[u8]) -> Vec<u8> {
        let (_, _, unread) = validate_unread::<Some_>(record).unwrap();
        for &(start, end) in unread.spans() {
            let (start, end) = (start as usize, end as usize);
            // A span is a whole member whose (unescaped) key is not read.
            let member = std::str::from_utf8(&record[start..end]).unwrap();
            let (key, value) = member.split_once(':').unwrap();
            let key = key.trim_end();
            assert!(key.starts_with('"') && key.ends_with('"') && !key.contains('\\'));
            let key = &key.as_bytes()[1..key.len() - 1];
            assert!(!Some_::top(key) || !Some_::req(key), "{member}");
            serde_json::from_str::<serde_json::Value>(value).unwrap();
        }
        let mut out = Vec::new();
        unread.hide(record, b"\"_\":null", &mut out);
        out
    }

    /// Hiding the unread members keeps a valid object whose read members are unchanged.
    fn check_hidden(record: &[u8]) {
        use serde_json::Value;
        let hidden = hide_unread(record);
        assert!(
            validate(&hidden).is_ok(),
            "{}",
            String::from_utf8_lossy(&hidden)
        );
        let before: Value = serde_json::from_slice(record).unwrap();
        let after: Value = serde_json::from_slice(&hidden).unwrap();
        for key in ["level", "a"] {
            assert_eq!(before.get(key), after.get(key), "{key} of {before}");
        }
        match (before.get("req"), after.get("req")) {
            (Some(Value::Object(b)), Some(Value::Object(a))) => {
                for key in ["id", "method"] {
                    assert_eq!(b.get(key), a.get(key), "req.{key} of {before}");
                }
            }
            (b, a) => assert_eq!(b, a),
        }
    }

    #[test]
    fn unread_members_can_be_hidden_without_changing_the_read_ones() {
        for case in VALID.iter().chain(SEED_RECORDS) {
            if serde_json::from_str::<serde_json::Value>(case).is_ok() {
                check_hidden(case.as_bytes());
            }
        }
        let record =
            br#"{"res":{"s":1},"level":3,"req":{"query":{"a":1},"id":7,"x":[1]},"err":"e","\u0062":2}"#;
        let (_, side, unread) = validate_unread::<Some_>(record).unwrap();
        assert_eq!(side.query, Some(r#"{"a":1}"#));
        let spans: Vec<&str> = unread
            .spans()
            .iter()
            .map(|&(s, e)| std::str::from_utf8(&record[s as usize..e as usize]).unwrap())
            .collect();
        // Escaped keys are left to the decoder.
        assert_eq!(
            spans,
            [
                r#""res":{"s":1}"#,
                r#""query":{"a":1}"#,
                r#""x":[1]"#,
                r#""err":"e""#
            ]
        );
        let mut rng = Rng(0x5851_F42D_4C95_7F2D);
        for _ in 0..20_000 {
            check_hidden(&gen_record(&mut rng));
        }
        // More unread members than reported: the rest stay in place.
        let many: String = (0..20).map(|k| format!(r#""k{k}":{k},"#)).collect();
        let record = format!(r#"{{{many}"level":1}}"#);
        let (_, _, unread) = validate_unread::<Some_>(record.as_bytes()).unwrap();
        assert_eq!(unread.spans().len(), MAX_UNREAD);
        check_hidden(record.as_bytes());
    }

    #[test]
    fn generated_valid_records_agree_with_serde_json() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut skipped = 0;
        for _ in 0..20_000 {
            let record = gen_record(&mut rng);
            assert!(
                validate(&record).is_ok(),
                "{:?}",
                String::from_utf8_lossy(&record)
            );
            skipped += usize::from(!check(&record));
        }
        assert_eq!(skipped, 0);
    }

    #[test]
    fn mutated_records_agree_with_serde_json() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let (mut accepted, mut skipped) = (0, 0);
        let total = mutation_count();
        let mut input = Vec::new();
        for k in 0..total {
            input.clear();
            if k % 4 == 0 {
                input.extend_from_slice(rng.pick(SEED_RECORDS).as_bytes());
            } else {
                input.extend(gen_record(&mut rng));
            }
            mutate(&mut rng, &mut input);
            if !check(&input) {
                skipped += 1;
            } else if validate(&input).is_ok() {
                accepted += 1;
            }
        }
        eprintln!(
            "{total} mutated inputs: {accepted} accepted, {skipped} skipped (number out of f64 range)"
        );
        assert!(accepted > total / 20, "too few valid mutants: {accepted}");
    }
}
