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

    /// Moves `n` bytes of ASCII into the statement.
    fn take(&mut self, n: usize) {
        for _ in 0..n {
            if let Some(c) = self.bump() {
                self.current.push(c);
            }
        }
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
        while let Some(c) = self.rest().chars().next() {
            if self.current.trim().is_empty() {
                if c.is_whitespace() {
                    self.bump();
                    self.current.clear();
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
                for _ in 0..end + 4 {
                    self.bump();
                }
                self.current.push(' ');
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

    fn at_delimiter_command(&self) -> bool {
        let rest = self.rest();
        rest.len() > 9
            && rest[..9].eq_ignore_ascii_case("delimiter")
            && rest[9..].starts_with([' ', '\t'])
    }

    fn delimiter_command(&mut self) -> Result<(), SplitError> {
        let line = self.line;
        let rest = self.rest();
        let end = rest.find('\n').unwrap_or(rest.len());
        let delimiter = rest[9..end].trim().to_owned();
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
    rest.starts_with("--") && rest[2..].chars().next().is_none_or(char::is_whitespace)
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
