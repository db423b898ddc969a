//! `qserv upgrade plan | apply | repair`.

use std::time::Duration;

use qserv_proto::v1::{
    MutationOptions, UpgradeApplyRequest, UpgradePlanReply, UpgradePlanRequest,
    UpgradeRepairRequest,
};
use serde_json::{Value, json};

use crate::exit::{CliError, from_status};
use crate::lifecycle::{Follow, follow_job};
use crate::target::Target;
use crate::{Output, client, instances, table, with_user};

fn version_text(v: Option<i64>) -> String {
    v.map_or_else(|| "none".to_owned(), |v| v.to_string())
}

pub async fn plan(coordinator: &str, output: Output) -> Result<(), CliError> {
    let mut client = client::connect(coordinator).await?;
    let plan = client
        .upgrade_plan(with_user(UpgradePlanRequest {}))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    match output {
        Output::Json => println!("{}", plan_json(&plan)),
        Output::Table => print!("{}", plan_table(&plan)),
    }
    Ok(())
}

/// `upgrade plan --instance all`.
pub async fn plan_every(
    all: &[(String, Target)],
    limit: Duration,
    output: Output,
) -> Result<(), CliError> {
    let answers = instances::each(all, limit, |mut client| async move {
        client
            .upgrade_plan(with_user(UpgradePlanRequest {}))
            .await
            .map(tonic::Response::into_inner)
    })
    .await;
    instances::print_every(&answers, output, "plan", plan_json, plan_table)
}

fn plan_json(plan: &UpgradePlanReply) -> Value {
    let nodes: Vec<Value> = plan
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "node": n.node, "module": n.module, "database": n.database,
                    "current": n.current, "target": n.target, "dirty": n.dirty,
                    "up_to_date": n.error.is_empty() && n.scripts.is_empty(),
                    "scripts": n.scripts.iter().map(|s| json!({"file": s.file_name, "checksum": s.checksum})).collect::<Vec<_>>(),
                    "messages": n.messages.max(1),
                    "error": if n.error.is_empty() { Value::Null } else { Value::String(n.error.clone()) },
                })
            })
            .collect();
    json!({ "nodes": nodes })
}

fn plan_table(plan: &UpgradePlanReply) -> String {
    let rows: Vec<Vec<String>> = plan
        .nodes
        .iter()
        .map(|n| {
            let what = if !n.error.is_empty() {
                n.error.clone()
            } else if n.scripts.is_empty() {
                "up to date".to_owned()
            } else {
                n.scripts
                    .iter()
                    .map(|s| {
                        format!(
                            "{} ({})",
                            s.file_name,
                            &s.checksum[..12.min(s.checksum.len())]
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
                    + &if n.messages > 1 {
                        format!(
                            "; sent in {} parts (the chain is larger than one request may be)",
                            n.messages
                        )
                    } else {
                        String::new()
                    }
            };
            vec![
                n.node.clone(),
                n.module.clone(),
                n.database.clone(),
                version_text(n.current),
                version_text(n.target),
                what,
            ]
        })
        .collect();
    table::render(
        &[
            "NODE",
            "MODULE",
            "DATABASE",
            "CURRENT",
            "TARGET",
            "SCRIPTS (sha256)",
        ],
        &rows,
    )
}

pub struct ApplyArgs {
    pub parallel: u32,
    pub nodes: Vec<String>,
    pub fail_fast: bool,
}

pub async fn apply(
    coordinator: &str,
    output: Output,
    args: ApplyArgs,
    follow: Follow,
) -> Result<(), CliError> {
    let (mut client, reply) = client::change(coordinator, |mut client| {
        let request = UpgradeApplyRequest {
            parallel: args.parallel,
            nodes: args.nodes.clone(),
            fail_fast: args.fail_fast,
            options: Some(MutationOptions { wait: follow.wait }),
        };
        async move { client.upgrade_apply(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, reply, follow).await
}

/// What `upgrade repair` asks for.
pub struct Repair {
    pub node: String,
    pub module: String,
    pub version: i64,
    pub reason: String,
    pub force: bool,
}

pub async fn repair(
    coordinator: &str,
    output: Output,
    repair: Repair,
    follow: Follow,
) -> Result<(), CliError> {
    let (mut client, reply) = client::change(coordinator, |mut client| {
        let request = UpgradeRepairRequest {
            node: repair.node.clone(),
            module: repair.module.clone(),
            version: repair.version,
            options: Some(MutationOptions { wait: follow.wait }),
            force: repair.force,
            reason: repair.reason.clone(),
        };
        async move { client.upgrade_repair(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, reply, follow).await
}
