//! Any bytes that are UTF-8 go to the statement splitter: it must not panic, and what it returns
//! must be well formed.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qserv_migrations::{SplitError, Statement, split_statements};

fn texts(statements: &[Statement]) -> Vec<&str> {
    statements.iter().map(|s| s.text.as_str()).collect()
}

/// Whether `--` and whitespace (or the end) occur in the text. Like the `mariadb` client, the
/// splitter replaces a dropped comment with a space or keeps its newline, so `1--/* c */1` becomes
/// `1-- 1`, which starts a comment when split on its own.
fn has_dash_comment_opener(text: &str) -> bool {
    text.char_indices().any(|(i, _)| {
        text.get(i..)
            .and_then(|rest| rest.strip_prefix("--"))
            .is_some_and(|after| after.chars().next().is_none_or(char::is_whitespace))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(script) = std::str::from_utf8(data) else {
        return;
    };
    let lines = 1 + script.matches('\n').count();
    match split_statements(script) {
        Ok(statements) => {
            for (i, s) in statements.iter().enumerate() {
                assert_eq!(s.index, i + 1, "indexes are 1..=n");
                assert!((1..=lines).contains(&s.line), "line {} of {lines}", s.line);
                assert!(!s.text.is_empty(), "empty statement");
                assert_eq!(s.text, s.text.trim(), "untrimmed statement");
            }
            assert!(
                statements.windows(2).all(|w| w[0].line <= w[1].line),
                "lines go back: {statements:?}"
            );
            // Without the client's command every statement ends at `;`, so the statements
            // each followed by `;` split into themselves again.
            if !script.to_ascii_lowercase().contains("delimiter")
                && !statements.iter().any(|s| has_dash_comment_opener(&s.text))
            {
                let joined: String = statements
                    .iter()
                    .map(|s| format!("{};\n", s.text))
                    .collect();
                match split_statements(&joined) {
                    Ok(again) => {
                        assert_eq!(texts(&again), texts(&statements), "joined: {joined:?}")
                    }
                    Err(e) => panic!("joined statements do not split: {e}: {joined:?}"),
                }
            }
        }
        Err(SplitError::Unterminated { line, .. } | SplitError::EmptyDelimiter { line }) => {
            assert!((1..=lines).contains(&line), "error line {line} of {lines}");
        }
    }
});
