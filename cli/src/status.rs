//! `qserv status [--watch]`: the instance as the coordinator last observed it.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use qserv_model::{Mode, Role};
use qserv_proto::names::health_name;
use qserv_proto::v1::{Health, InstanceStatus, InstanceStatusRequest, NodeStatus};
use serde::Serialize;

use crate::exit::{CliError, Exit, from_status};
use crate::json::non_empty;
use crate::service_states::{self, ServiceStateJson};
use crate::target::Target;
use crate::{Output, client, instances, table, with_user};

#[derive(Debug, Serialize)]
pub struct StatusJson {
    pub instance: Option<String>,
    pub mode: &'static str,
    pub health: &'static str,
    pub epoch: u64,
    pub active_job: Option<ActiveJobJson>,
    pub nodes: Vec<NodeJson>,
    pub registry: Vec<RegistryJson>,
    pub coordinators: Vec<CoordinatorJson>,
    pub fencing_token: u64,
    pub answered_by: Option<String>,
    /// What an operator should act on soon (certificates about to end).
    pub warnings: Vec<String>,
    /// How the coordinator's spec lags behind the installed workers.
    pub spec_drift: Option<SpecDriftJson>,
    /// Qserv's queries executing and ingest transactions open (null where no node has the
    /// table).
    pub activity: ActivityJson,
}

#[derive(Debug, Default, Serialize)]
pub struct ActivityJson {
    pub queries_executing: Option<u64>,
    pub ingest_transactions_open: Option<u64>,
    pub oldest_query: Option<u64>,
    pub oldest_transaction: Option<u64>,
}

impl ActivityJson {
    fn of(wire: Option<&qserv_proto::v1::Activity>) -> ActivityJson {
        wire.map_or_else(ActivityJson::default, |a| ActivityJson {
            queries_executing: a.queries_executing,
            ingest_transactions_open: a.transactions_open,
            oldest_query: a.oldest_query,
            oldest_transaction: a.oldest_transaction,
        })
    }

    /// One line for the table view; `None` when nothing is known.
    fn line(&self) -> Option<String> {
        let show = |n: Option<u64>, oldest: Option<u64>, what: &str| {
            n.map(|n| {
                let oldest = oldest
                    .map(|id| format!(" (oldest {id})"))
                    .unwrap_or_default();
                format!("{n} {what}{oldest}")
            })
        };
        let parts: Vec<String> = [
            show(
                self.queries_executing,
                self.oldest_query,
                "queries executing",
            ),
            show(
                self.ingest_transactions_open,
                self.oldest_transaction,
                "ingest transactions open",
            ),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| format!("activity: {}\n", parts.join(", ")))
    }
}

#[derive(Debug, Serialize)]
pub struct SpecDriftJson {
    pub not_in_spec: Vec<String>,
    pub not_installed: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct CoordinatorJson {
    pub id: String,
    pub address: String,
    pub leader: bool,
    pub last_seen_ms: i64,
    /// The digest of the migration set it plans with.
    pub migrations: String,
    /// It plans with another migration set than the leader's, and does not lead.
    pub disagrees: bool,
}

#[derive(Debug, Serialize)]
pub struct RegistryJson {
    pub name: String,
    pub is_enabled: bool,
    pub is_read_only: bool,
}

#[derive(Debug, Serialize)]
pub struct ActiveJobJson {
    pub id: String,
    pub kind: String,
    pub state: &'static str,
    pub progress: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct NodeJson {
    pub name: String,
    pub role: &'static str,
    pub agent: String,
    pub agent_reachable: bool,
    pub agent_error: Option<String>,
    pub db_ready: bool,
    pub db_error: Option<String>,
    pub db_server_version: Option<String>,
    pub worker_id: Option<String>,
    pub registered: Option<bool>,
    pub services: &'static str,
    pub agent_version: Option<String>,
    pub protocol_version: Option<u32>,
    pub compatible: bool,
    pub last_seen_ms: Option<i64>,
    pub registered_id: Option<String>,
    pub agent_mode: &'static str,
    pub agent_epoch: u64,
    pub agent_seen_epoch: u64,
    pub agent_instance: Option<String>,
    pub identity_problem: Option<String>,
    pub epoch_problem: Option<String>,
    /// Services of the node's role in the instance's order that its agent does not define.
    pub layout_problem: Option<String>,
    pub schema: Vec<SchemaJson>,
    pub service_states: Vec<ServiceStateJson>,
}

#[derive(Debug, Serialize)]
pub struct SchemaJson {
    pub module: String,
    pub database: String,
    pub version: Option<i64>,
    pub target: Option<i64>,
    pub dirty: bool,
    pub dirty_reason: Option<String>,
}

pub fn to_json(status: &InstanceStatus) -> StatusJson {
    StatusJson {
        instance: non_empty(&status.instance),
        mode: Mode::name_or_unknown(qserv_proto::model::mode(status.mode)),
        health: health_name(Health::try_from(status.health).unwrap_or(Health::Unknown)),
        epoch: status.epoch,
        active_job: status.active_job.as_ref().map(|job| ActiveJobJson {
            id: job.id.clone(),
            kind: job.kind.clone(),
            state: job.state().name(),
            progress: job.progress.clone().into_iter().collect(),
        }),
        nodes: status.nodes.iter().map(node_json).collect(),
        coordinators: status
            .coordinators
            .iter()
            .map(|c| CoordinatorJson {
                id: c.id.clone(),
                address: c.address.clone(),
                leader: c.leader,
                last_seen_ms: c.last_seen_ms,
                migrations: c.migrations.clone(),
                disagrees: c.disagrees,
            })
            .collect(),
        fencing_token: status.fencing_token,
        answered_by: non_empty(&status.answered_by),
        warnings: status.warnings.clone(),
        spec_drift: status.spec_drift.as_ref().map(|d| SpecDriftJson {
            not_in_spec: d.not_in_spec.clone(),
            not_installed: d.not_installed.clone(),
        }),
        activity: ActivityJson::of(status.activity.as_ref()),
        registry: status
            .registry
            .iter()
            .map(|r| RegistryJson {
                name: r.name.clone(),
                is_enabled: r.is_enabled,
                is_read_only: r.is_read_only,
            })
            .collect(),
    }
}

fn node_json(node: &NodeStatus) -> NodeJson {
    NodeJson {
        name: node.name.clone(),
        role: Role::name_or_unknown(qserv_proto::model::role(node.role)),
        agent: node.agent.clone(),
        agent_reachable: node.agent_reachable,
        agent_error: non_empty(&node.agent_error),
        db_ready: node.db_ready,
        db_error: non_empty(&node.db_error),
        db_server_version: non_empty(&node.db_server_version),
        worker_id: node.worker_id.clone(),
        registered: node.registered,
        services: qserv_proto::model::services(node.services).name(),
        agent_version: non_empty(&node.agent_version),
        protocol_version: (node.protocol_version != 0).then_some(node.protocol_version),
        compatible: node.compatible,
        last_seen_ms: (node.last_seen_ms != 0).then_some(node.last_seen_ms),
        registered_id: node.registered_id.clone(),
        agent_mode: Mode::name_or_unknown(qserv_proto::model::mode(node.agent_mode)),
        agent_epoch: node.agent_epoch,
        agent_seen_epoch: node.agent_seen_epoch,
        agent_instance: non_empty(&node.agent_instance),
        identity_problem: non_empty(&node.identity_problem),
        epoch_problem: non_empty(&node.epoch_problem),
        layout_problem: non_empty(&node.layout_problem),
        service_states: service_states::to_json(&node.service_states),
        schema: node
            .schema
            .iter()
            .map(|s| SchemaJson {
                module: s.module.clone(),
                database: s.database.clone(),
                version: s.version,
                target: s.target,
                dirty: s.dirty,
                dirty_reason: non_empty(&s.dirty_reason),
            })
            .collect(),
    }
}

fn version_text(version: Option<i64>) -> String {
    version.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

/// The human view: a summary line, one row per node, then what is wrong and why.
pub fn to_table(status: &InstanceStatus) -> String {
    let json = to_json(status);
    let mut out = format!(
        "instance {}  mode {}  health {}  epoch {}\n",
        json.instance.as_deref().unwrap_or("(none)"),
        json.mode,
        json.health,
        json.epoch
    );
    if json.coordinators.len() > 1 {
        let list: Vec<String> = json
            .coordinators
            .iter()
            .map(|c| {
                let role = match (c.leader, c.disagrees) {
                    (true, _) => " (leader)",
                    (false, true) => " (other migrations)",
                    (false, false) => "",
                };
                table::sanitize(&format!("{}{role} {}", c.id, c.address))
            })
            .collect();
        out.push_str(&format!(
            "coordinators {}  token {}  answered by {}\n",
            list.join(", "),
            json.fencing_token,
            table::sanitize(json.answered_by.as_deref().unwrap_or("?"))
        ));
    }
    if let Some(line) = json.activity.line() {
        out.push_str(&line);
    }
    for warning in &json.warnings {
        out.push_str(&format!("warning: {}\n", table::sanitize(warning)));
    }
    if let Some(drift) = &json.spec_drift {
        let mut parts = Vec::new();
        if !drift.not_in_spec.is_empty() {
            parts.push(format!(
                "installed but not in it: {}",
                drift.not_in_spec.join(", ")
            ));
        }
        if !drift.not_installed.is_empty() {
            parts.push(format!(
                "in it but not installed: {}",
                drift.not_installed.join(", ")
            ));
        }
        out.push_str(&format!(
            "spec: the coordinator's --spec lags behind the installed workers ({}); update the file\n",
            table::sanitize(&parts.join("; "))
        ));
    }
    if let Some(job) = &json.active_job {
        out.push_str(&format!("job {} ({}) {}\n", job.id, job.kind, job.state));
    }
    if json.nodes.is_empty() {
        out.push_str(
            "no nodes: start the coordinator with --spec FILE or run 'qserv install --spec FILE'\n",
        );
        return out;
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = json
        .nodes
        .iter()
        .map(|n| {
            let schema = n
                .schema
                .iter()
                .map(|s| {
                    let mut text = format!(
                        "{} {}/{}",
                        s.module,
                        version_text(s.version),
                        version_text(s.target)
                    );
                    if s.dirty {
                        text.push_str(" DIRTY");
                    }
                    text
                })
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                n.name.clone(),
                n.role.to_owned(),
                if n.agent_reachable { "up" } else { "DOWN" }.to_owned(),
                if n.db_ready { "ready" } else { "NOT READY" }.to_owned(),
                n.worker_id.clone().unwrap_or_else(|| "-".to_owned()),
                match n.registered {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                }
                .to_owned(),
                service_states::cell(n.services, &n.service_states),
                if schema.is_empty() {
                    "-".to_owned()
                } else {
                    schema
                },
            ]
        })
        .collect();
    out.push_str(&table::render(
        &[
            "NODE",
            "ROLE",
            "AGENT",
            "DATABASE",
            "WORKER ID",
            "REGISTERED",
            "SERVICES",
            "SCHEMA (version/target)",
        ],
        &rows,
    ));
    let problems: Vec<String> = json
        .nodes
        .iter()
        .flat_map(|n| {
            let mut lines = Vec::new();
            if let Some(err) = &n.agent_error {
                lines.push(format!("{}: agent: {err}", n.name));
            } else if let Some(err) = &n.db_error {
                lines.push(format!("{}: database: {err}", n.name));
            }
            if n.agent_reachable && !n.compatible {
                lines.push(format!(
                    "{}: agent speaks protocol {:?}, this coordinator {}",
                    n.name,
                    n.protocol_version,
                    qserv_proto::PROTOCOL_VERSION
                ));
            }
            if let Some(problem) = &n.identity_problem {
                lines.push(format!("{}: identity: {problem}", n.name));
            }
            if let Some(problem) = &n.epoch_problem {
                lines.push(format!("{}: epoch: {problem}", n.name));
            }
            if let Some(problem) = &n.layout_problem {
                lines.push(format!("{}: layout: {problem}", n.name));
            }
            lines.extend(service_states::failures(&n.name, &n.service_states));
            lines.extend(service_states::drifted(&n.name, &n.service_states));
            for s in n.schema.iter().filter(|s| s.dirty) {
                lines.push(format!(
                    "{}: {} is dirty: {}",
                    n.name,
                    s.database,
                    s.dirty_reason.as_deref().unwrap_or("no reason recorded")
                ));
            }
            lines
        })
        .collect();
    if !problems.is_empty() {
        out.push('\n');
        for line in problems {
            out.push_str(&table::sanitize(&line));
            out.push('\n');
        }
    }
    out
}

/// `status --instance all`.
pub async fn every(
    all: &[(String, Target)],
    limit: std::time::Duration,
    output: Output,
) -> Result<(), CliError> {
    let answers = instances::each(all, limit, |mut client| async move {
        client
            .get_status(with_user(InstanceStatusRequest {}))
            .await
            .map(tonic::Response::into_inner)
    })
    .await;
    instances::print_every(&answers, output, "status", to_json, to_table)
}

pub async fn run(coordinator: &str, output: Output, watch: bool) -> Result<(), CliError> {
    let mut client = client::connect(coordinator).await?;
    if !watch {
        let status = client
            .get_status(InstanceStatusRequest {})
            .await
            .map_err(|s| from_status(&s, coordinator))?
            .into_inner();
        client::check_instance(&status.instance, coordinator)?;
        return print(&status, output, false);
    }
    let mut stream = client
        .watch_status(InstanceStatusRequest {})
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    let clear = output == Output::Table && std::io::stdout().is_terminal();
    loop {
        match stream.message().await {
            Ok(Some(status)) => {
                client::check_instance(&status.instance, coordinator)?;
                print(&status, output, clear)?;
            }
            Ok(None) => {
                return Err(CliError::new(
                    Exit::Unreachable,
                    format!("the coordinator at {coordinator} closed the status stream"),
                ));
            }
            Err(status) => return Err(from_status(&status, coordinator)),
        }
    }
}

fn print(status: &InstanceStatus, output: Output, clear: bool) -> Result<(), CliError> {
    let text = match output {
        Output::Json => serde_json::to_string(&to_json(status))
            .map(|mut s| {
                s.push('\n');
                s
            })
            .map_err(|e| {
                CliError::new(Exit::Other, format!("cannot encode status as JSON: {e}"))
            })?,
        Output::Table => {
            let body = to_table(status);
            if clear {
                format!("\x1b[2J\x1b[H{body}")
            } else {
                format!("{body}\n")
            }
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::new(Exit::Other, format!("cannot write to stdout: {e}")))
}

#[cfg(test)]
mod tests {
    use crate::golden::{assert_golden, instance_status};

    #[test]
    fn status_keeps_its_documented_shape() {
        assert_golden("status.json", &super::to_json(&instance_status()));
    }
}
