//! A database server's own words inside a message of the control plane.
//!
//! A failed statement's message quotes the statement (`near '…'`, `Duplicate entry '…'`), and a
//! statement holds whatever its script held: a script that was a link to a key file quoted the
//! key. The agent passes such text on only as a bounded excerpt between markers; the
//! coordinator shows it to operators and withholds it from everyone else, wherever the message
//! travels (status, job errors, log lines, the audit trail). Whoever builds the text and whoever
//! reads it use this module, so the markers are one rule.

use std::borrow::Cow;

/// Opens a server's excerpt.
pub const OPEN: char = '⟦';
/// Closes a server's excerpt.
pub const CLOSE: char = '⟧';
/// At most this many characters of a server's message are passed on.
pub const MAX_EXCERPT_CHARS: usize = 240;
/// What a reader who may not see the server's words reads instead.
pub const WITHHELD: &str = "⟦the server's message is shown to operators only⟧";

/// `server_text` as a bounded, marked excerpt: markers and control characters inside are
/// replaced, and text past [`MAX_EXCERPT_CHARS`] is cut (with "…").
pub fn quote(server_text: &str) -> String {
    let mut out = String::with_capacity(server_text.len().min(MAX_EXCERPT_CHARS * 4) + 8);
    out.push(OPEN);
    let mut chars = server_text.chars();
    for c in chars.by_ref().take(MAX_EXCERPT_CHARS) {
        out.push(match c {
            OPEN | CLOSE => '?',
            c if c.is_control() => ' ',
            c => c,
        });
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out.push(CLOSE);
    out
}

/// `text` with every excerpt replaced by [`WITHHELD`]; an excerpt left open runs to the end.
pub fn withhold(text: &str) -> Cow<'_, str> {
    if !text.contains(OPEN) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        out.push_str(WITHHELD);
        let inside = &rest[start + OPEN.len_utf8()..];
        rest = match inside.find(CLOSE) {
            Some(end) => &inside[end + CLOSE.len_utf8()..],
            None => "",
        };
    }
    out.push_str(rest);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_bounded_and_withheld_whole() {
        let key = format!("near '-----BEGIN PRIVATE KEY-----{}'", "A".repeat(5000));
        let text = format!(
            "migrate-4-to-5.sql statement 1 failed: 1064: {}",
            quote(&key)
        );
        assert!(text.chars().count() < 400, "{}", text.len());
        let shown = withhold(&text);
        assert_eq!(
            shown,
            format!("migrate-4-to-5.sql statement 1 failed: 1064: {WITHHELD}")
        );
        assert!(!shown.contains("PRIVATE"));
    }

    proptest::proptest! {
        #[test]
        fn nothing_of_an_excerpt_survives_withholding(
            before in "[^⟦⟧]{0,40}",
            server in "\\PC{0,600}",
            after in "[^⟦⟧]{0,40}",
        ) {
            let excerpt = quote(&server);
            proptest::prop_assert!(excerpt.chars().count() <= MAX_EXCERPT_CHARS + 3);
            let shown = withhold(&format!("{before}{excerpt}{after}")).into_owned();
            proptest::prop_assert_eq!(&shown, &format!("{before}{WITHHELD}{after}"));
            proptest::prop_assert_eq!(withhold(&shown).into_owned(), shown);
        }

        #[test]
        fn any_text_is_withheld_without_panic(text in "\\PC{0,200}") {
            let shown = withhold(&text).into_owned();
            proptest::prop_assert_eq!(withhold(&shown).into_owned(), shown);
        }
    }

    #[test]
    fn markers_inside_the_server_text_cannot_close_the_excerpt_early() {
        let text = quote("a⟧ leaked ⟦b");
        assert_eq!(withhold(&text), WITHHELD);
        assert_eq!(withhold("x ⟦open to the end"), format!("x {WITHHELD}"));
        assert_eq!(withhold("no excerpt"), "no excerpt");
    }
}
