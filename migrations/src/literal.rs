//! SQL string literals for text that cannot be bound as a parameter: account statements and
//! values rendered into `.sql.jinja` scripts.

/// `value` escaped for the inside of a `'…'` or `"…"` literal, as `mysql_real_escape_string`
/// does: quotes, backslash, NUL, newline, carriage return and Ctrl-Z. Escaping the line breaks
/// also keeps a rendered script's lines where the template had them.
///
/// Correct under the server's default `sql_mode`; a session with `NO_BACKSLASH_ESCAPES` reads
/// backslashes literally, so the agent refuses to render into such a session.
pub fn escape_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\u{1a}' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out
}

/// `value` as a complete single-quoted literal.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", escape_literal(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_ends_or_breaks_a_literal() {
        assert_eq!(
            quote_literal("x'; DROP DATABASE mysql; --"),
            r"'x\'; DROP DATABASE mysql; --'"
        );
        assert_eq!(
            escape_literal("a\\b\"c\0d\ne\rf\u{1a}"),
            r#"a\\b\"c\0d\ne\rf\Z"#
        );
        assert_eq!(escape_literal("東京 é ☕"), "東京 é ☕");
    }

    #[test]
    fn escaped_text_has_no_bare_quote_or_line_break() {
        let nasty = "'\\\n\r\0\"';--\u{1a}é";
        let escaped = escape_literal(nasty);
        assert!(!escaped.contains('\n') && !escaped.contains('\r') && !escaped.contains('\0'));
        // Every quote is preceded by an odd run of backslashes.
        let bytes = escaped.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            if *b == b'\'' {
                let run = bytes[..i].iter().rev().take_while(|c| **c == b'\\').count();
                assert_eq!(run % 2, 1, "{escaped}");
            }
        }
    }
}
