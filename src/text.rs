//! Text meant for a human's terminal. File names, object keys, stored errors and record
//! values come from outside and may hold control characters (ESC, BEL, OSC sequences): they
//! are shown escaped (`\u{1b}`), never sent to the terminal raw.

use std::borrow::Cow;

/// `text` with every control character escaped (a tab or newline too: one line per item).
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A log line: control characters escaped except the line's final newline.
pub fn printable_line(line: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(line);
    let (body, end) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (text.as_ref(), ""),
    };
    let mut out = printable(body).into_owned();
    out.push_str(end);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("plain/key.json"), "plain/key.json");
        assert_eq!(
            printable("a\u{1b}]0;pwned\u{7}b"),
            "a\\u{1b}]0;pwned\\u{7}b"
        );
        assert_eq!(printable("tab\there"), "tab\\there");
        assert_eq!(
            printable_line(b"file=\x1b[31mred\n"),
            b"file=\\u{1b}[31mred\n".to_vec()
        );
    }
}
