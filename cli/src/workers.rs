//! `qserv workers list | add | remove | replace | enable | read-only | disable`.

use std::path::Path;

use qserv_proto::names::worker_state_name;
use qserv_proto::v1::{
    InstanceStatus, InstanceStatusRequest, MutationOptions, Role, WorkerState, WorkersAddRequest,
    WorkersRemoveRequest, WorkersReplaceRequest, WorkersStateRequest,
};
use serde::Serialize;

use crate::exit::{CliError, Exit, from_status};
use crate::lifecycle::{Follow, follow_job, read_spec};
use crate::{Output, client, table, with_user};

/// `workers list -o json`.
#[derive(Debug, Serialize)]
pub struct WorkersJson {
    pub workers: Vec<WorkerJson>,
    /// Rows of Qserv's `config_worker` that no node of the inventory explains.
    pub unexplained_registry_rows: Vec<RegistryRowJson>,
}

#[derive(Debug, Serialize)]
pub struct WorkerJson {
    pub name: String,
    pub agent: String,
    pub worker_id: Option<String>,
    pub registered_id: Option<String>,
    pub registered: bool,
    pub is_enabled: Option<bool>,
    pub is_read_only: Option<bool>,
    pub state: Option<&'static str>,
    pub ready: bool,
    pub identity_problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RegistryRowJson {
    pub name: String,
    pub is_enabled: bool,
    pub is_read_only: bool,
    pub state: &'static str,
}

impl WorkersJson {
    pub fn of(status: &InstanceStatus) -> WorkersJson {
        let workers = status
            .nodes
            .iter()
            .filter(|n| n.role() == Role::Worker)
            .map(|n| {
                let row = n
                    .registered_id
                    .as_ref()
                    .or(n.worker_id.as_ref())
                    .and_then(|id| status.registry.iter().find(|r| &r.name == id));
                WorkerJson {
                    name: n.name.clone(),
                    agent: n.agent.clone(),
                    worker_id: n.worker_id.clone(),
                    registered_id: n.registered_id.clone(),
                    registered: row.is_some(),
                    is_enabled: row.map(|r| r.is_enabled),
                    is_read_only: row.map(|r| r.is_read_only),
                    state: row.map(|r| worker_state_name(r.is_enabled, r.is_read_only)),
                    ready: n.agent_reachable && n.db_ready,
                    identity_problem: crate::json::non_empty(&n.identity_problem),
                }
            })
            .collect();
        let explained: Vec<&str> = status
            .nodes
            .iter()
            .filter_map(|n| n.worker_id.as_deref())
            .collect();
        let unexplained_registry_rows = status
            .registry
            .iter()
            .filter(|r| !explained.contains(&r.name.as_str()))
            .map(|r| RegistryRowJson {
                name: r.name.clone(),
                is_enabled: r.is_enabled,
                is_read_only: r.is_read_only,
                state: worker_state_name(r.is_enabled, r.is_read_only),
            })
            .collect();
        WorkersJson {
            workers,
            unexplained_registry_rows,
        }
    }
}

fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_owned()
}

fn or_dash(text: Option<&str>) -> String {
    text.unwrap_or("-").to_owned()
}

fn workers_table(doc: &WorkersJson) -> String {
    let rows: Vec<Vec<String>> = doc
        .workers
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.agent.clone(),
                or_dash(w.worker_id.as_deref()),
                or_dash(w.registered_id.as_deref()),
                or_dash(w.state),
                yes_no(w.ready),
                or_dash(w.identity_problem.as_deref()),
            ]
        })
        .collect();
    let mut text = table::render(
        &[
            "NODE",
            "AGENT",
            "WORKER ID",
            "REGISTERED ID",
            "STATE",
            "READY",
            "PROBLEM",
        ],
        &rows,
    );
    if !doc.unexplained_registry_rows.is_empty() {
        text.push_str("\nrows of config_worker that no node of the inventory explains:\n");
        for row in &doc.unexplained_registry_rows {
            text.push_str(&format!(
                "  {} (enabled {}, read-only {})\n",
                table::sanitize(&row.name),
                yes_no(row.is_enabled),
                yes_no(row.is_read_only)
            ));
        }
    }
    text
}

pub async fn list(coordinator: &str, output: Output) -> Result<(), CliError> {
    let mut client = client::connect(coordinator).await?;
    let status = client
        .get_status(with_user(InstanceStatusRequest {}))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    let doc = WorkersJson::of(&status);
    match output {
        Output::Json => crate::json::print(&doc)?,
        Output::Table => print!("{}", workers_table(&doc)),
    }
    Ok(())
}

pub async fn add(
    coordinator: &str,
    output: Output,
    spec: &Path,
    follow: Follow,
) -> Result<(), CliError> {
    let spec_toml = read_spec(spec)?;
    let (mut client, reply) = client::change(coordinator, |mut client| {
        let request = WorkersAddRequest {
            spec_toml: spec_toml.clone(),
            options: Some(MutationOptions { wait: follow.wait }),
        };
        async move { client.workers_add(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, reply, follow).await
}

/// What a worker that leaves takes with it.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Leaving {
    /// Also drop the worker's databases and accounts, when its agent answers.
    #[arg(long)]
    pub purge: bool,
    /// Delete its registry row even though Qserv then forgets its replicas and ingest
    /// contributions; they are saved as SQL on the repl node first.
    #[arg(long)]
    pub forget_replicas: bool,
}

pub async fn replace(
    coordinator: &str,
    output: Output,
    old: &str,
    spec: &Path,
    leaving: Leaving,
    follow: Follow,
) -> Result<(), CliError> {
    let spec_toml = read_spec(spec)?;
    let (mut client, reply) = client::change(coordinator, |mut client| {
        let request = WorkersReplaceRequest {
            old: old.to_owned(),
            spec_toml: spec_toml.clone(),
            purge: leaving.purge,
            forget_replicas: leaving.forget_replicas,
            options: Some(MutationOptions { wait: follow.wait }),
        };
        async move { client.workers_replace(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, reply, follow).await
}

pub async fn remove(
    coordinator: &str,
    output: Output,
    name: &str,
    leaving: Leaving,
    follow: Follow,
) -> Result<(), CliError> {
    if name.is_empty() {
        return Err(CliError::new(
            Exit::Usage,
            "workers remove needs a node name",
        ));
    }
    let (mut client, reply) = client::change(coordinator, |mut client| {
        let request = WorkersRemoveRequest {
            name: name.to_owned(),
            purge: leaving.purge,
            forget_replicas: leaving.forget_replicas,
            options: Some(MutationOptions { wait: follow.wait }),
        };
        async move { client.workers_remove(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, reply, follow).await
}

/// `workers enable|read-only|disable NAME`.
pub async fn set_state(
    coordinator: &str,
    output: Output,
    name: &str,
    state: WorkerState,
    follow: Follow,
) -> Result<(), CliError> {
    let (mut client, reply) = client::change(coordinator, |mut client| {
        let request = WorkersStateRequest {
            name: name.to_owned(),
            state: state.into(),
            options: Some(MutationOptions { wait: follow.wait }),
        };
        async move { client.workers_state(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, reply, follow).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::{assert_golden, instance_status};

    #[test]
    fn workers_list_keeps_its_documented_shape() {
        let doc = WorkersJson::of(&instance_status());
        assert_eq!(doc.workers.len(), 2, "only workers are listed");
        assert_eq!(doc.unexplained_registry_rows.len(), 1);
        assert_golden("workers-list.json", &doc);
    }
}
