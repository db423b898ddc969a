//! Rendering of `.sql.jinja` scripts with the values of an agent's secrets file.
//!
//! Every value is escaped for a SQL string literal as it is written out: Qserv's templates put
//! names and passwords inside `'…'`, so a quote or backslash in a value must never end the
//! literal (or run as SQL).

use minijinja::{Environment, UndefinedBehavior};

use crate::literal::escape_literal;

#[derive(Debug, thiserror::Error)]
#[error("cannot render template {script}: {message}")]
pub struct TemplateError {
    pub script: String,
    pub message: String,
}

/// Renders `text`; a variable the context does not define is an error, never an empty string
/// (an empty password in a `CREATE USER` would be a silent hole).
pub fn render(
    script: &str,
    text: &str,
    context: &impl serde::Serialize,
) -> Result<String, TemplateError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_formatter(|out, _state, value| {
        let text = match value.as_str() {
            Some(text) => escape_literal(text),
            None => escape_literal(&value.to_string()),
        };
        out.write_str(&text)
            .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, e.to_string()))
    });
    env.render_str(text, context).map_err(|e| TemplateError {
        script: script.to_owned(),
        // The error's own text names the problem and line; its debug form would quote the
        // template's source, which may hold secrets once rendered.
        message: match e.line() {
            Some(line) => format!("{} (line {line})", e.kind()),
            None => e.kind().to_string(),
        } + &e.detail().map(|d| format!(": {d}")).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn renders_known_values() {
        let vars = BTreeMap::from([("mysqld_user_qserv_password", "s3cret")]);
        let out = render(
            "x.sql.jinja",
            "IDENTIFIED BY '{{ mysqld_user_qserv_password }}';\n",
            &vars,
        );
        assert_eq!(out.ok().as_deref(), Some("IDENTIFIED BY 's3cret';\n"));
    }

    #[test]
    fn values_are_escaped_for_literals_and_keep_lines() {
        let vars = BTreeMap::from([("p", "a'b\\c;\nd"), ("safe", "x'")]);
        let out = render(
            "x.sql.jinja",
            "SET @p = '{{ p }}';\nSET @q = '{{ safe | safe }}';\nSELECT 1;\n",
            &vars,
        )
        .unwrap_or_default();
        assert_eq!(
            out,
            "SET @p = 'a\\'b\\\\c;\\nd';\nSET @q = 'x\\'';\nSELECT 1;\n"
        );
        assert_eq!(out.lines().count(), 3, "a value never adds a line");
        let numbers = BTreeMap::from([("n", 7)]);
        assert_eq!(
            render("n.sql.jinja", "{{ n }}", &numbers).ok().as_deref(),
            Some("7")
        );
    }

    #[test]
    fn unknown_variable_is_an_error() {
        let vars = BTreeMap::from([("a", "b")]);
        let err = render(
            "migrate-None-to-1.sql.jinja",
            "{{ missing_password }}",
            &vars,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.starts_with("cannot render template migrate-None-to-1.sql.jinja: undefined value"),
            "{err}"
        );
    }
}
