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

/// An error and its causes, each once: object_store and S3 errors repeat their source's
/// text in their own (an S3 error body was printed four times).
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(text.trim())) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 15 item 6: a cause whose text an outer error already printed is not repeated.
    #[test]
    fn repeated_causes_are_printed_once() {
        let body = "<Error><Code>NoSuchBucket</Code></Error>";
        let inner = anyhow::anyhow!("{body}");
        let middle = inner.context(format!("Generic S3 error: {body}"));
        let outer = middle.context(format!("cannot list s3://b/: Generic S3 error: {body}"));
        let printed = error_chain(&outer);
        assert_eq!(printed.matches("NoSuchBucket").count(), 1, "{printed}");
        let distinct = anyhow::anyhow!("connection refused").context("cannot connect");
        assert_eq!(error_chain(&distinct), "cannot connect: connection refused");
    }

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
