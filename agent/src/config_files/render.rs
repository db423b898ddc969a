//! A service's configuration file rendered from its template (DESIGN §17): minijinja, with the
//! values of the agent's secrets file plus `node`, `role` and `instance`. A value the template
//! uses and the node does not define is an error naming it, never an empty string: a missing
//! password rendered as nothing would only fail later, in the service, far from its cause.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};
use qserv_model::{Role, Template};

/// The largest file a template may render to.
pub const MAX_RENDERED_BYTES: usize = 4 << 20;

/// What a template is rendered with on one node.
pub struct Values<'a> {
    /// The secrets file's values.
    pub secrets: &'a BTreeMap<String, toml::Value>,
    pub node: &'a str,
    pub role: Role,
    pub instance: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "the template uses {} this node does not define: add {} to the agent's secrets file, or take {} out of the template",
        quoted(.names), if .names.len() == 1 { "it" } else { "them" }, if .names.len() == 1 { "it" } else { "them" }
    )]
    Undefined { names: Vec<String> },
    #[error("the template cannot be rendered: {0}")]
    Invalid(String),
    #[error(
        "the template renders to {size} bytes, more than the {MAX_RENDERED_BYTES} a configuration file may hold"
    )]
    TooLarge { size: usize },
}

fn quoted(names: &[String]) -> String {
    let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    match list.len() {
        1 => format!("the value {}", list[0]),
        _ => format!("the values {}", list.join(", ")),
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env
}

/// The context: the secrets file's values, then the node's own (which win: a secrets file
/// cannot make one node render as another).
fn context(values: &Values<'_>) -> BTreeMap<String, Value> {
    let mut context: BTreeMap<String, Value> = values
        .secrets
        .iter()
        .map(|(k, v)| (k.clone(), Value::from_serialize(v)))
        .collect();
    context.insert("node".to_owned(), Value::from(values.node));
    context.insert("role".to_owned(), Value::from(values.role.name()));
    context.insert("instance".to_owned(), Value::from(values.instance));
    context
}

/// `template` rendered with `values`.
pub fn render(template: &Template, values: &Values<'_>) -> Result<String, RenderError> {
    let env = environment();
    let invalid = |e: minijinja::Error| {
        // The kind, line and detail name the problem; the error's debug form would quote the
        // template's source around it.
        let mut text = match e.line() {
            Some(line) => format!("{} (line {line})", e.kind()),
            None => e.kind().to_string(),
        };
        if let Some(detail) = e.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        RenderError::Invalid(text)
    };
    let compiled = env.template_from_str(template.text()).map_err(invalid)?;
    let context = context(values);
    let globals: Vec<&str> = env.globals().map(|(name, _)| name).collect();
    let mut missing: Vec<String> = compiled
        .undeclared_variables(false)
        .into_iter()
        .filter(|name| !context.contains_key(name) && !globals.contains(&name.as_str()))
        .collect();
    if !missing.is_empty() {
        missing.sort();
        return Err(RenderError::Undefined { names: missing });
    }
    let text = compiled.render(&context).map_err(invalid)?;
    if text.len() > MAX_RENDERED_BYTES {
        return Err(RenderError::TooLarge { size: text.len() });
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secrets(text: &str) -> BTreeMap<String, toml::Value> {
        toml::from_str(text).unwrap_or_default()
    }

    fn on_worker<'a>(secrets: &'a BTreeMap<String, toml::Value>) -> Values<'a> {
        Values {
            secrets,
            node: "worker-1",
            role: Role::Worker,
            instance: "prod",
        }
    }

    fn template(text: &str) -> Template {
        Template::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn renders_the_node_values_and_the_secrets_as_they_are() {
        let values = secrets("mysqld_password = \"s3'cr\\\"et\"\nport = 3306\n");
        let out = render(
            &template(
                "[mysql]\nhost = {{ node }}.{{ instance }} # {{ role }}\npassword = {{ mysqld_password }}\nport = {{ port }}\n",
            ),
            &on_worker(&values),
        );
        assert_eq!(
            out.as_deref(),
            Ok("[mysql]\nhost = worker-1.prod # worker\npassword = s3'cr\"et\nport = 3306\n")
        );
    }

    #[test]
    fn the_node_values_win_over_the_secrets_file() {
        let values = secrets("node = \"czar-0\"\n");
        assert_eq!(
            render(&template("{{ node }}"), &on_worker(&values)).as_deref(),
            Ok("worker-1")
        );
    }

    #[test]
    fn undefined_values_are_named_all_at_once() {
        let values = secrets("a = 1\n");
        let err = render(
            &template("{{ a }} {{ zeta_password }} {% if alpha %}x{% endif %} {{ range(2) }}"),
            &on_worker(&values),
        );
        assert_eq!(
            err,
            Err(RenderError::Undefined {
                names: vec!["alpha".to_owned(), "zeta_password".to_owned()]
            })
        );
        let text = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("'alpha', 'zeta_password'"), "{text}");
    }

    #[test]
    fn a_broken_template_says_where() {
        let values = secrets("");
        let err = render(&template("a\n{{ node "), &on_worker(&values));
        let Err(RenderError::Invalid(text)) = err else {
            panic!("{err:?}");
        };
        assert!(text.contains("line 2"), "{text}");
    }

    proptest! {
        /// Text without template syntax renders to itself, whatever its characters.
        #[test]
        fn plain_text_renders_to_itself(text in "[^{}%#\\x00-\\x08\\x0b\\x0e-\\x1f\\x7f]{0,200}") {
            let values = secrets("");
            let parsed = Template::parse(text.as_bytes());
            prop_assume!(parsed.is_ok());
            let parsed = parsed.unwrap_or_else(|e| panic!("{e}"));
            prop_assert_eq!(render(&parsed, &on_worker(&values)), Ok(text));
        }

        /// Any template either renders or gets an error; nothing panics.
        #[test]
        fn any_template_gets_an_answer(text in "\\PC{0,120}") {
            let values = secrets("p = \"x\"\n");
            if let Ok(parsed) = Template::parse(text.as_bytes()) {
                let _ = render(&parsed, &on_worker(&values));
            }
        }
    }
}
