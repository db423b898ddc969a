//! The instance spec (DESIGN §5): a TOML file naming the instance and its nodes.
//!
//! Every problem is reported with the file and line it comes from, so an operator editing a spec
//! of dozens of workers can go straight to the mistake.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qserv_proto::names::validate_name;
use serde::{Deserialize, Serialize};
use toml::Spanned;

pub use crate::domain::Node as NodeSpec;
use crate::domain::Role;

/// Larger than any real spec (a thousand nodes fit in ~100 KiB); a bigger file is a mistake.
const MAX_SPEC_BYTES: u64 = 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSpec {
    pub name: String,
    pub nodes: Vec<NodeSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read spec file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "spec file {path} is {size} bytes, more than the {MAX_SPEC_BYTES} a spec can be; check that it is the right file"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error("spec file {path}, line {line}: {problem}")]
    Invalid {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Spanned<String>,
    #[serde(default)]
    nodes: Vec<Spanned<RawNode>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: Spanned<String>,
    role: Spanned<String>,
    agent: Spanned<String>,
}

impl InstanceSpec {
    pub fn load(path: &Path) -> Result<InstanceSpec, SpecError> {
        let read_err = |source| SpecError::Read {
            path: path.to_owned(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_err)?.len();
        if size > MAX_SPEC_BYTES {
            return Err(SpecError::TooLarge {
                path: path.to_owned(),
                size,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        InstanceSpec::parse(&text).map_err(|(line, problem)| SpecError::Invalid {
            path: path.to_owned(),
            line,
            problem,
        })
    }

    /// Parses and validates; errors are (line, problem).
    pub fn parse(text: &str) -> Result<InstanceSpec, (usize, String)> {
        // Bytes, not a string slice: a span inside a multibyte character must not panic.
        let line_of = |offset: usize| {
            let end = offset.min(text.len());
            text.as_bytes()[..end]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        };
        let raw: RawSpec = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |span| line_of(span.start));
            (line, e.message().to_owned())
        })?;
        let at = |span: std::ops::Range<usize>, problem: String| (line_of(span.start), problem);

        validate_name("instance", raw.name.get_ref())
            .map_err(|e| at(raw.name.span(), e.to_string()))?;
        if raw.nodes.is_empty() {
            return Err((line_of(text.len()), "the spec has no [[nodes]]".to_owned()));
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut agents: HashMap<String, usize> = HashMap::new();
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        let mut repl_nodes = Vec::new();
        for node in raw.nodes {
            let node = node.into_inner();
            let name = node.name.get_ref().clone();
            validate_name("node", &name).map_err(|e| at(node.name.span(), e.to_string()))?;
            if let Some(first) = names.insert(name.clone(), line_of(node.name.span().start)) {
                return Err(at(
                    node.name.span(),
                    format!("duplicate node name '{name}' (first defined on line {first})"),
                ));
            }
            let role = Role::parse(node.role.get_ref())
                .map_err(|e| at(node.role.span(), e.to_string()))?;
            let agent = node.agent.get_ref().trim_end_matches('/').to_owned();
            qserv_proto::transport::endpoint(&agent)
                .map_err(|e| at(node.agent.span(), e.to_string()))?;
            if let Some(first) = agents.insert(agent.clone(), line_of(node.agent.span().start)) {
                return Err(at(
                    node.agent.span(),
                    format!("agent address '{agent}' is already used by the node on line {first}"),
                ));
            }
            if role == Role::Repl {
                repl_nodes.push((name.clone(), node.role.span()));
            }
            nodes.push(NodeSpec { name, role, agent });
        }
        if let [_, (name, span), ..] = repl_nodes.as_slice() {
            return Err(at(
                span.clone(),
                format!(
                    "node '{name}' is a second repl node; an instance has one replication database"
                ),
            ));
        }
        Ok(InstanceSpec {
            name: raw.name.into_inner(),
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"name = "dr1"

[[nodes]]
name = "czar-0"
role = "czar"
agent = "http://127.0.0.1:7080"

[[nodes]]
name = "worker-1"
role = "worker"
agent = "http://127.0.0.1:7082/"
"#;

    #[test]
    fn parses_a_spec() {
        let spec = InstanceSpec::parse(GOOD).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(spec.name, "dr1");
        assert_eq!(spec.nodes.len(), 2);
        assert_eq!(spec.nodes[1].role, Role::Worker);
        assert_eq!(spec.nodes[1].agent, "http://127.0.0.1:7082");
    }

    #[test]
    fn names_line_of_duplicate() {
        let text = GOOD.replace("\"worker-1\"", "\"czar-0\"");
        let err = InstanceSpec::parse(&text).err();
        assert_eq!(
            err,
            Some((
                9,
                "duplicate node name 'czar-0' (first defined on line 4)".to_owned()
            ))
        );
    }

    #[test]
    fn an_agent_address_with_a_password_is_refused_without_echoing_it() {
        let text = GOOD.replace(
            "http://127.0.0.1:7080",
            "https://ops:hunter2@127.0.0.1:7080",
        );
        let err = InstanceSpec::parse(&text).err().unwrap_or_default();
        assert!(err.1.contains("user information"), "{err:?}");
        assert!(!err.1.contains("hunter2"), "{err:?}");
    }

    #[test]
    fn names_line_of_unknown_role() {
        let text = GOOD.replace("\"worker\"", "\"master\"");
        let err = InstanceSpec::parse(&text).err();
        assert_eq!(
            err,
            Some((
                10,
                "unknown role 'master': expected one of czar, worker, repl".to_owned()
            ))
        );
    }

    #[test]
    fn reports_syntax_errors_with_line() {
        let text = GOOD.replace("role = \"czar\"", "role = czar");
        let err = InstanceSpec::parse(&text).err().map(|e| e.0);
        assert_eq!(err, Some(5));
    }

    #[test]
    fn refuses_sql_in_names() {
        let text = GOOD.replace("worker-1", "x'; DROP DATABASE mysql; --");
        let err = InstanceSpec::parse(&text).err().map(|e| e.0);
        assert_eq!(err, Some(9));
    }
}
