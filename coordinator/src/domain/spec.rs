//! The instance spec (DESIGN §5, §15): a TOML file naming the instance, its nodes, and the
//! order in which their services start (`layout = "qserv"` and/or `[[services]]`).
//!
//! Every problem is reported with the file and line it comes from, so an operator editing a spec
//! of dozens of workers can go straight to the mistake.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use qserv_model::{Layout, OrderError, OrderedService, ServiceName, ServiceOrder};
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
    /// The services' start order; empty when the spec declares none (documents written before
    /// services existed read back so).
    #[serde(default)]
    pub services: ServiceOrder,
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
    layout: Option<Spanned<String>>,
    #[serde(default)]
    services: Vec<Spanned<RawService>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: Spanned<String>,
    role: Spanned<String>,
    #[serde(default)]
    after: Vec<Spanned<String>>,
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
        let services =
            service_order(raw.layout, raw.services).map_err(|(span, why)| at(span, why))?;
        Ok(InstanceSpec {
            name: raw.name.into_inner(),
            nodes,
            services,
        })
    }
}

type Span = std::ops::Range<usize>;

/// The layout's services and the spec's own, checked; a problem comes with the span of the
/// entry it concerns (the `layout` line for the layout's own services).
fn service_order(
    layout: Option<Spanned<String>>,
    raw: Vec<Spanned<RawService>>,
) -> Result<ServiceOrder, (Span, String)> {
    let layout_span = layout.as_ref().map_or(0..0, |l| l.span());
    let layout = layout
        .map(|l| Layout::parse(l.get_ref()).map_err(|e| (l.span(), e.to_string())))
        .transpose()?;
    let mut spans: HashMap<String, Span> = layout
        .map(Layout::services)
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.name.to_string(), layout_span.clone()))
        .collect();
    let mut own = Vec::with_capacity(raw.len());
    for entry in raw {
        let entry = entry.into_inner();
        let name = ServiceName::parse(entry.name.get_ref())
            .map_err(|e| (entry.name.span(), e.to_string()))?;
        let role =
            Role::parse(entry.role.get_ref()).map_err(|e| (entry.role.span(), e.to_string()))?;
        let after = entry
            .after
            .iter()
            .map(|a| ServiceName::parse(a.get_ref()).map_err(|e| (a.span(), e.to_string())))
            .collect::<Result<Vec<_>, _>>()?;
        // A duplicate keeps the span of its second declaration: that is the line to fix.
        spans.insert(name.to_string(), entry.name.span());
        own.push(OrderedService { name, role, after });
    }
    ServiceOrder::declare(layout, own).map_err(|e| {
        let named = match &e {
            OrderError::Duplicate(name) | OrderError::UnknownAfter { service: name, .. } => {
                Some(name)
            }
            OrderError::Cycle(cycle) => cycle.first(),
        };
        let span = named
            .and_then(|n| spans.get(n.as_str()).cloned())
            .unwrap_or(layout_span);
        (span, e.to_string())
    })
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

    #[test]
    fn the_qserv_layout_declares_qserv_services_in_order() {
        // `layout` after a table would belong to it: it goes at the top.
        let text = format!("layout = \"qserv\"\n{GOOD}");
        let spec = InstanceSpec::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(spec.services.waves().len(), 6);
        assert_eq!(spec.services.of_role(Role::Worker).count(), 3);
        let unknown = InstanceSpec::parse(&text.replace("\"qserv\"", "\"k8s\"")).err();
        assert_eq!(
            unknown,
            Some((1, "unknown layout 'k8s': expected one of qserv".to_owned()))
        );
    }

    fn with_services(services: &str) -> Result<InstanceSpec, (usize, String)> {
        InstanceSpec::parse(&format!("{GOOD}{services}"))
    }

    #[test]
    fn a_cycle_in_the_services_is_refused_naming_it_and_its_line() {
        let err = with_services(
            r#"
[[services]]
name = "a"
role = "czar"
after = ["b"]

[[services]]
name = "b"
role = "worker"
after = ["a"]
"#,
        )
        .err();
        assert_eq!(
            err,
            Some((
                14,
                "the service order has a cycle: a → b → a (each comes after the next)".to_owned()
            ))
        );
    }

    #[test]
    fn a_service_with_an_unknown_role_or_after_is_refused_with_its_line() {
        let role = with_services("\n[[services]]\nname = \"a\"\nrole = \"proxy\"\n").err();
        assert_eq!(
            role,
            Some((
                15,
                "unknown role 'proxy': expected one of czar, worker, repl".to_owned()
            ))
        );
        let after =
            with_services("\n[[services]]\nname = \"a\"\nrole = \"czar\"\nafter = [\"nothing\"]\n")
                .err();
        assert_eq!(
            after,
            Some((
                14,
                "service 'a' comes after 'nothing', which no [[services]] entry declares"
                    .to_owned()
            ))
        );
    }

    #[test]
    fn a_spec_without_services_reads_back_from_an_older_document() {
        let spec = InstanceSpec::parse(GOOD).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(spec.services.is_empty());
        let older = r#"{"name":"dr1","nodes":[]}"#;
        let read: Result<InstanceSpec, _> = serde_json::from_str(older);
        assert!(read.is_ok_and(|s| s.services.is_empty()));
        let text = format!("layout = \"qserv\"\n{GOOD}");
        let spec = InstanceSpec::parse(&text).unwrap_or_else(|e| panic!("{e:?}"));
        let json = serde_json::to_string(&spec).unwrap_or_default();
        let back: Result<InstanceSpec, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(spec));
    }
}
