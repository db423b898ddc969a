//! Splits a migration script into statements the way the `mariadb` client would, so that each
//! statement runs on its own and a failure can name it.
//!
//! Handles `'…'`, `"…"` and `` `…` `` with doubled-quote and backslash escapes, `-- `, `#` and
//! `/* */` comments (MySQL's executable `/*! … */` comments are kept: the server runs them), and
//! the client's `DELIMITER` command.

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// 1-based position in the script.
    pub index: usize,
    /// 1-based line the statement starts on.
    pub line: usize,
    pub text: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SplitError {
    #[error("line {line}: {what} opened here is never closed")]
    Unterminated { line: usize, what: &'static str },
    #[error("line {line}: DELIMITER needs a delimiter, e.g. 'DELIMITER $$'")]
    EmptyDelimiter { line: usize },
}

pub fn split_statements(script: &str) -> Result<Vec<Statement>, SplitError> {
    Splitter::new(script).run()
}

struct Splitter<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    delimiter: String,
    current: String,
    start_line: usize,
    out: Vec<Statement>,
}

impl<'a> Splitter<'a> {
    fn new(src: &'a str) -> Splitter<'a> {
        Splitter {
            src,
            pos: 0,
            line: 1,
            delimiter: ";".to_owned(),
            current: String::new(),
            start_line: 1,
            out: Vec::new(),
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.rest().chars().next()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Moves the next `n` bytes (ending on a character boundary) into the statement.
    fn take(&mut self, n: usize) {
        let end = (self.pos + n).min(self.src.len());
        let taken = self.src.get(self.pos..end).unwrap_or_default();
        self.line += taken.matches('\n').count();
        self.current.push_str(taken);
        self.pos = end;
    }

    /// Skips the next `n` bytes (ending on a character boundary), counting their lines.
    fn skip(&mut self, n: usize) {
        let end = (self.pos + n).min(self.src.len());
        let skipped = self.src.get(self.pos..end).unwrap_or_default();
        self.line += skipped.matches('\n').count();
        self.pos = end;
    }

    fn skip_to_line_end(&mut self) {
        while let Some(c) = self.rest().chars().next() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    fn finish(&mut self) {
        let text = self.current.trim();
        if !text.is_empty() {
            self.out.push(Statement {
                index: self.out.len() + 1,
                line: self.start_line,
                text: text.to_owned(),
            });
        }
        self.current.clear();
    }

    fn run(mut self) -> Result<Vec<Statement>, SplitError> {
        // `current` is empty or starts with a character that is not whitespace, so checking for
        // the start of a statement costs nothing however long the statement grows.
        while let Some(c) = self.rest().chars().next() {
            if self.current.is_empty() {
                if c.is_whitespace() {
                    self.bump();
                    continue;
                }
                self.start_line = self.line;
                if self.at_delimiter_command() {
                    self.delimiter_command()?;
                    continue;
                }
            }
            let rest = self.rest();
            if rest.starts_with(self.delimiter.as_str()) {
                self.pos += self.delimiter.len();
                self.finish();
            } else if rest.starts_with("/*!") || rest.starts_with("/*M!") {
                let line = self.line;
                let end = rest.find("*/").ok_or(SplitError::Unterminated {
                    line,
                    what: "executable comment",
                })?;
                self.take(end + 2);
            } else if let Some(body) = rest.strip_prefix("/*") {
                let line = self.line;
                let end = body.find("*/").ok_or(SplitError::Unterminated {
                    line,
                    what: "comment",
                })?;
                // Byte offsets: `/*`, the body, `*/`.
                self.skip(2 + end + 2);
                if !self.current.is_empty() {
                    self.current.push(' ');
                }
            } else if rest.starts_with('#') || is_dash_comment(rest) {
                self.skip_to_line_end();
            } else if matches!(c, '\'' | '"' | '`') {
                self.quoted(c)?;
            } else {
                self.bump();
                self.current.push(c);
            }
        }
        self.finish();
        Ok(self.out)
    }

    fn quoted(&mut self, quote: char) -> Result<(), SplitError> {
        let line = self.line;
        let what = match quote {
            '\'' => "string",
            '"' => "double-quoted string",
            _ => "backtick identifier",
        };
        self.take(1);
        loop {
            let Some(c) = self.bump() else {
                return Err(SplitError::Unterminated { line, what });
            };
            self.current.push(c);
            if c == '\\' && quote != '`' {
                if let Some(next) = self.bump() {
                    self.current.push(next);
                }
            } else if c == quote {
                if self.rest().starts_with(quote) {
                    self.take(1);
                } else {
                    return Ok(());
                }
            }
        }
    }

    /// Compared as bytes: the text may hold any character, and a slice must never end inside
    /// one.
    fn at_delimiter_command(&self) -> bool {
        let rest = self.rest().as_bytes();
        rest.get(..9)
            .is_some_and(|word| word.eq_ignore_ascii_case(b"delimiter"))
            && matches!(rest.get(9), Some(b' ' | b'\t'))
    }

    fn delimiter_command(&mut self) -> Result<(), SplitError> {
        let line = self.line;
        let rest = self.rest();
        let end = rest.find('\n').unwrap_or(rest.len());
        // The first nine bytes are ASCII (`at_delimiter_command`), so byte 9 starts a character.
        let delimiter = rest.get(9..end).unwrap_or_default().trim().to_owned();
        if delimiter.is_empty() {
            return Err(SplitError::EmptyDelimiter { line });
        }
        self.delimiter = delimiter;
        self.skip_to_line_end();
        self.current.clear();
        Ok(())
    }
}

/// `-- ` starts a comment only when followed by whitespace or the end (MySQL's rule), so that
/// `SELECT 1--1` stays arithmetic.
fn is_dash_comment(rest: &str) -> bool {
    rest.strip_prefix("--")
        .is_some_and(|after| after.chars().next().is_none_or(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(sql: &str) -> Vec<String> {
        split_statements(sql)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|s| s.text)
            .collect()
    }

    #[test]
    fn splits_on_semicolons_with_lines() {
        let stmts =
            split_statements("CREATE TABLE a (x INT);\n\nINSERT INTO a VALUES (1);\nSELECT 1")
                .unwrap_or_default();
        assert_eq!(stmts.len(), 3);
        assert_eq!((stmts[1].index, stmts[1].line), (2, 3));
        assert_eq!(stmts[2].text, "SELECT 1");
    }

    #[test]
    fn keeps_delimiters_inside_quotes() {
        assert_eq!(
            texts(
                r#"INSERT INTO t VALUES ('a;b', "c;d", 'it''s; ok', 'back\'slash;');SELECT `we;ird`;"#
            ),
            [
                r#"INSERT INTO t VALUES ('a;b', "c;d", 'it''s; ok', 'back\'slash;')"#,
                "SELECT `we;ird`"
            ]
        );
    }

    #[test]
    fn drops_comments_but_not_lookalikes() {
        assert_eq!(
            texts(
                "-- header; with semicolon\n# hash; comment\nSELECT 1--1;\n/* block; */ SELECT '-- not a comment';"
            ),
            ["SELECT 1--1", "SELECT '-- not a comment'"]
        );
    }

    #[test]
    fn keeps_executable_comments() {
        assert_eq!(
            texts("CREATE TABLE t (x INT) /*!50100 ENGINE=InnoDB */;"),
            ["CREATE TABLE t (x INT) /*!50100 ENGINE=InnoDB */"]
        );
    }

    #[test]
    fn honours_delimiter_command() {
        let sql = "DELIMITER $$\nCREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END$$\nDELIMITER ;\nCALL p();";
        assert_eq!(
            texts(sql),
            [
                "CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END",
                "CALL p()"
            ]
        );
    }

    #[test]
    fn multibyte_text_never_panics_and_keeps_statements_whole() {
        // A character straddling byte 9 where `DELIMITER` would be checked.
        assert_eq!(texts("SET @a='é';"), ["SET @a='é'"]);
        assert_eq!(texts("DELIMITÉR x;"), ["DELIMITÉR x"]);
        assert_eq!(texts("éééééé;"), ["éééééé"]);
        // A block comment with multibyte text eats nothing after it.
        assert_eq!(
            texts("/* café ☕ 東京 */ SELECT 1; SELECT 2;"),
            ["SELECT 1", "SELECT 2"]
        );
        // An executable comment with multibyte text keeps the delimiter after it.
        assert_eq!(
            texts("CREATE TABLE t (x INT) /*!50100 COMMENT 'π' */; SELECT '東京';"),
            [
                "CREATE TABLE t (x INT) /*!50100 COMMENT 'π' */",
                "SELECT '東京'"
            ]
        );
        let stmts = split_statements("/* ü\n */\nSELECT 'ö';\nSELECT 2;").unwrap_or_default();
        assert_eq!(
            stmts.iter().map(|s| s.line).collect::<Vec<_>>(),
            [3, 4],
            "lines counted through multibyte comments"
        );
    }

    #[test]
    fn long_whitespace_and_comment_runs_split_in_linear_time() {
        // Trimming the statement at every character made these quadratic: a 400 kB run took a
        // minute, a script of `MAX_SCRIPT_BYTES` hours (this test would not end).
        let run = 1 << 20;
        let spaces = format!("SELECT{}1;{}SELECT 2;", " ".repeat(run), "\n".repeat(run));
        let stmts = split_statements(&spaces).unwrap_or_default();
        assert_eq!(
            stmts.iter().map(|s| s.line).collect::<Vec<_>>(),
            [1, run + 1]
        );
        assert_eq!(stmts[0].text.len(), run + 7);
        let comments = format!(
            "{}SELECT 1{};",
            "/**/".repeat(run / 4),
            "/**/".repeat(run / 4)
        );
        let stmts = split_statements(&comments).unwrap_or_default();
        assert_eq!(stmts.len(), 1);
        assert_eq!(stmts[0].text, "SELECT 1");
    }

    #[test]
    fn reports_unterminated_quotes() {
        assert_eq!(
            split_statements("SELECT 1;\nSELECT 'oops;\n"),
            Err(SplitError::Unterminated {
                line: 2,
                what: "string"
            })
        );
        assert_eq!(
            split_statements("/* never closed"),
            Err(SplitError::Unterminated {
                line: 1,
                what: "comment"
            })
        );
    }
}
