//! `qserv config apply | diff | show | history | rollback` (DESIGN §17): a service's
//! configuration template, versioned in the coordinator's store and written, rendered on each
//! node with its own values, to every node that runs the service.

use std::path::Path;

use qserv_model::{Role, ServiceName, Template};
use qserv_proto::v1::{
    ConfigApplyRequest, ConfigDiffReply, ConfigDiffRequest, ConfigHistoryReply,
    ConfigHistoryRequest, ConfigRollbackRequest, ConfigScope, ConfigShowRequest, ConfigVersion,
    MutationOptions,
};
use serde::Serialize;

use crate::exit::{CliError, Exit, from_status};
use crate::job_doc::time_text;
use crate::json::non_empty;
use crate::lifecycle::{Follow, follow_job};
use crate::{Output, client, with_user};

/// Which nodes a command means: those that run the service, narrowed.
#[derive(Debug, Clone, clap::Args)]
pub struct ScopeArgs {
    /// The service whose configuration file this is, as the agents' configs name it.
    #[arg(long, value_parser = parse_service)]
    pub service: ServiceName,
    /// Only nodes of this role: czar, worker or repl.
    #[arg(long, value_parser = Role::parse)]
    pub role: Option<Role>,
    /// Only these nodes, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<String>,
}

fn parse_service(value: &str) -> Result<ServiceName, String> {
    ServiceName::parse(value).map_err(|e| e.to_string())
}

impl ScopeArgs {
    fn wire(&self) -> ConfigScope {
        ConfigScope {
            service: self.service.to_string(),
            role: qserv_proto::model::role_to_wire(self.role),
            nodes: self.nodes.clone(),
        }
    }
}

/// The template in `path`, refused here when it is not one (binary, not UTF-8, too large).
pub fn read_template(path: &Path) -> Result<Template, CliError> {
    let refused = |why: String| CliError::new(Exit::Refused, why);
    let meta = std::fs::metadata(path)
        .map_err(|e| refused(format!("cannot read template {}: {e}", path.display())))?;
    let limit = u64::try_from(qserv_model::template::MAX_TEMPLATE_BYTES).unwrap_or(u64::MAX);
    if meta.len() > limit {
        return Err(refused(format!(
            "template {} is {} bytes, more than the {limit} a configuration file may hold; check that it is the right file",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| refused(format!("cannot read template {}: {e}", path.display())))?;
    Template::parse(&bytes).map_err(|e| refused(format!("template {}: {e}", path.display())))
}

pub struct Apply {
    pub scope: ScopeArgs,
    pub message: String,
    pub rolling: bool,
}

pub async fn apply(
    coordinator: &str,
    output: Output,
    args: Apply,
    file: &Path,
    follow: Follow,
) -> Result<(), CliError> {
    let template = read_template(file)?;
    let (mut client, reply) = client::change(coordinator, |mut client| {
        let request = ConfigApplyRequest {
            scope: Some(args.scope.wire()),
            template: template.text().to_owned(),
            message: args.message.clone(),
            rolling: args.rolling,
            options: Some(MutationOptions { wait: follow.wait }),
        };
        async move { client.config_apply(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, reply, follow).await
}

pub async fn rollback(
    coordinator: &str,
    output: Output,
    scope: ScopeArgs,
    to: u32,
    rolling: bool,
    follow: Follow,
) -> Result<(), CliError> {
    let (mut client, reply) = client::change(coordinator, |mut client| {
        let request = ConfigRollbackRequest {
            scope: Some(scope.wire()),
            to,
            rolling,
            options: Some(MutationOptions { wait: follow.wait }),
        };
        async move { client.config_rollback(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, reply, follow).await
}

/// `config diff -o json`.
#[derive(Debug, Serialize)]
pub struct DiffJson {
    pub nodes: Vec<NodeDiffJson>,
}

#[derive(Debug, Serialize)]
pub struct NodeDiffJson {
    pub node: String,
    pub path: Option<String>,
    /// Unified diff, secrets masked; null when nothing would change.
    pub diff: Option<String>,
    pub error: Option<String>,
}

impl DiffJson {
    fn of(reply: &ConfigDiffReply) -> DiffJson {
        DiffJson {
            nodes: reply
                .nodes
                .iter()
                .map(|n| NodeDiffJson {
                    node: n.node.clone(),
                    path: non_empty(&n.path),
                    diff: non_empty(&n.diff),
                    error: non_empty(&n.error),
                })
                .collect(),
        }
    }
}

/// The table form: each node's diff under its name; nothing at all when nothing would change.
fn diff_text(reply: &ConfigDiffReply) -> String {
    let mut out = String::new();
    for node in reply.nodes.iter().filter(|n| !n.diff.is_empty()) {
        out.push_str(&format!("=== {} ({})\n{}", node.node, node.path, node.diff));
        if !node.diff.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Prints what `apply` would change; exit 3 naming the nodes that cannot render it.
pub async fn diff(
    coordinator: &str,
    output: Output,
    scope: ScopeArgs,
    file: &Path,
) -> Result<(), CliError> {
    let template = read_template(file)?;
    let mut client = client::connect(coordinator).await?;
    let reply = client
        .config_diff(with_user(ConfigDiffRequest {
            scope: Some(scope.wire()),
            template: template.into_text(),
        }))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    match output {
        Output::Json => crate::json::print(&DiffJson::of(&reply))?,
        Output::Table => print!("{}", diff_text(&reply)),
    }
    let failed: Vec<String> = reply
        .nodes
        .iter()
        .filter(|n| !n.error.is_empty())
        .map(|n| format!("{}: {}", n.node, n.error))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let mut err = CliError::new(
        Exit::Refused,
        format!("the template cannot be rendered on {}", failed.join("; ")),
    );
    err.in_output = output == Output::Json;
    Err(err)
}

/// `config history -o json`.
#[derive(Debug, Serialize)]
pub struct HistoryJson {
    pub versions: Vec<VersionJson>,
}

#[derive(Debug, Serialize)]
pub struct VersionJson {
    pub version: u32,
    pub sha256: String,
    pub by: String,
    pub at: Option<String>,
    pub message: String,
}

impl From<&ConfigVersion> for VersionJson {
    fn from(v: &ConfigVersion) -> VersionJson {
        VersionJson {
            version: v.version,
            sha256: v.sha256.clone(),
            by: v.by.clone(),
            at: time_text(v.at_ms),
            message: v.message.clone(),
        }
    }
}

fn history_table(reply: &ConfigHistoryReply) -> String {
    let rows: Vec<Vec<String>> = reply
        .versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.sha256.chars().take(12).collect(),
                v.by.clone(),
                time_text(v.at_ms).unwrap_or_default(),
                v.message.clone(),
            ]
        })
        .collect();
    crate::table::render(&["VERSION", "SHA256", "BY", "AT", "MESSAGE"], &rows)
}

pub async fn history(
    coordinator: &str,
    output: Output,
    service: &ServiceName,
) -> Result<(), CliError> {
    let mut client = client::connect(coordinator).await?;
    let reply = client
        .config_history(with_user(ConfigHistoryRequest {
            service: service.to_string(),
        }))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    match output {
        Output::Json => crate::json::print(&HistoryJson {
            versions: reply.versions.iter().map(VersionJson::from).collect(),
        }),
        Output::Table => {
            print!("{}", history_table(&reply));
            Ok(())
        }
    }
}

/// `config show -o json`.
#[derive(Debug, Serialize)]
pub struct ShowJson {
    pub version: Option<VersionJson>,
    pub template: String,
}

pub async fn show(
    coordinator: &str,
    output: Output,
    service: &ServiceName,
    version: Option<u32>,
) -> Result<(), CliError> {
    let mut client = client::connect(coordinator).await?;
    let reply = client
        .config_show(with_user(ConfigShowRequest {
            service: service.to_string(),
            version: version.unwrap_or(0),
        }))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    match output {
        Output::Json => crate::json::print(&ShowJson {
            version: reply.version.as_ref().map(VersionJson::from),
            template: reply.template,
        }),
        Output::Table => {
            print!("{}", reply.template);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::assert_golden;
    use qserv_proto::v1::NodeConfigDiff;

    #[test]
    fn a_diff_prints_only_nodes_that_would_change_and_keeps_its_shape() {
        let reply = ConfigDiffReply {
            nodes: vec![
                NodeConfigDiff {
                    node: "worker-1".to_owned(),
                    path: "/etc/qserv/xrootd.cf".to_owned(),
                    diff: "--- a\n+++ b\n@@ -1 +1 @@\n-x = 1\n+x = 2 ✓\n".to_owned(),
                    error: String::new(),
                },
                NodeConfigDiff {
                    node: "worker-2".to_owned(),
                    path: "/etc/qserv/xrootd.cf".to_owned(),
                    ..NodeConfigDiff::default()
                },
                NodeConfigDiff {
                    node: "worker-3".to_owned(),
                    error: "undefined value 'p'".to_owned(),
                    ..NodeConfigDiff::default()
                },
            ],
        };
        assert_eq!(
            diff_text(&reply),
            "=== worker-1 (/etc/qserv/xrootd.cf)\n--- a\n+++ b\n@@ -1 +1 @@\n-x = 1\n+x = 2 ✓\n"
        );
        assert_eq!(diff_text(&ConfigDiffReply::default()), "");
        assert_golden("config-diff.json", &DiffJson::of(&reply));
    }

    #[test]
    fn history_keeps_its_documented_shape() {
        let reply = ConfigHistoryReply {
            versions: vec![ConfigVersion {
                version: 1,
                sha256: "ab".repeat(32),
                by: "ops@example (operator)".to_owned(),
                at_ms: 1_764_000_000_250,
                message: "larger thread pool ✓".to_owned(),
            }],
        };
        let doc = HistoryJson {
            versions: reply.versions.iter().map(VersionJson::from).collect(),
        };
        assert_golden("config-history.json", &doc);
        assert!(history_table(&reply).contains("abababababab"));
    }

    #[test]
    fn a_binary_template_is_refused_before_anything_is_sent() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("x.cf");
        std::fs::write(&path, b"a = 1\n\x00\x01").unwrap_or_else(|e| panic!("{e}"));
        let err = read_template(&path).err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.exit == Exit::Refused && e.message.contains("looks binary")),
            "{err:?}"
        );
    }
}
