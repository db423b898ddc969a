//! `qserv workers list | add | remove | replace | enable | read-only | disable`.

use std::path::Path;

use qserv_proto::names::worker_state_name;
use qserv_proto::v1::{
    InstanceStatusRequest, MutationOptions, WorkerState, WorkersAddRequest, WorkersRemoveRequest,
    WorkersReplaceRequest, WorkersStateRequest,
};
use serde_json::{Value, json};

use crate::exit::{CliError, Exit, from_status};
use crate::lifecycle::{Follow, follow_job, read_spec};
use crate::{Output, client, table, with_user};

pub async fn list(coordinator: &str, output: Output) -> Result<(), CliError> {
    let mut client = client::connect(coordinator).await?;
    let status = client
        .get_status(with_user(InstanceStatusRequest {}))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    let workers: Vec<Value> = status
        .nodes
        .iter()
        .filter(|n| n.role == i32::from(qserv_proto::v1::Role::Worker))
        .map(|n| {
            let row = n
                .registered_id
                .as_ref()
                .or(n.worker_id.as_ref())
                .and_then(|id| status.registry.iter().find(|r| &r.name == id));
            json!({
                "name": n.name,
                "agent": n.agent,
                "worker_id": n.worker_id,
                "registered_id": n.registered_id,
                "registered": row.is_some(),
                "is_enabled": row.map(|r| r.is_enabled),
                "is_read_only": row.map(|r| r.is_read_only),
                "state": row.map(|r| worker_state_name(r.is_enabled, r.is_read_only)),
                "ready": n.agent_reachable && n.db_ready,
                "identity_problem": if n.identity_problem.is_empty() { Value::Null } else { Value::String(n.identity_problem.clone()) },
            })
        })
        .collect();
    let explained: Vec<&str> = status
        .nodes
        .iter()
        .filter_map(|n| n.worker_id.as_deref())
        .collect();
    let unexplained: Vec<Value> = status
        .registry
        .iter()
        .filter(|r| !explained.contains(&r.name.as_str()))
        .map(
            |r| json!({"name": r.name, "is_enabled": r.is_enabled, "is_read_only": r.is_read_only, "state": worker_state_name(r.is_enabled, r.is_read_only)}),
        )
        .collect();
    match output {
        Output::Json => println!(
            "{}",
            json!({ "workers": workers, "unexplained_registry_rows": unexplained })
        ),
        Output::Table => {
            let text = |v: &Value| match v {
                Value::Null => "-".to_owned(),
                Value::Bool(true) => "yes".to_owned(),
                Value::Bool(false) => "no".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let rows: Vec<Vec<String>> = workers
                .iter()
                .map(|w| {
                    [
                        "name",
                        "agent",
                        "worker_id",
                        "registered_id",
                        "state",
                        "ready",
                        "identity_problem",
                    ]
                    .iter()
                    .map(|k| text(&w[*k]))
                    .collect()
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "NODE",
                        "AGENT",
                        "WORKER ID",
                        "REGISTERED ID",
                        "STATE",
                        "READY",
                        "PROBLEM"
                    ],
                    &rows
                )
            );
            if !unexplained.is_empty() {
                println!("\nrows of config_worker that no node of the inventory explains:");
                for row in &unexplained {
                    println!(
                        "  {} (enabled {}, read-only {})",
                        table::sanitize(&text(&row["name"])),
                        text(&row["is_enabled"]),
                        text(&row["is_read_only"])
                    );
                }
            }
        }
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
#[derive(Debug, Clone, Copy)]
pub struct Leaving {
    /// Its databases and accounts.
    pub purge: bool,
    /// Its replica and contribution records in the replication system (saved first).
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
