//! `qserv upgrade plan | apply | repair`.

use std::time::Duration;

use qserv_proto::v1::{
    MutationOptions, UpgradeApplyRequest, UpgradePlanReply, UpgradePlanRequest,
    UpgradeRepairRequest,
};
use serde::Serialize;

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
        Output::Json => crate::json::print(&plan_json(&plan))?,
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

/// `upgrade plan -o json`.
#[derive(Debug, Serialize)]
pub struct PlanJson {
    pub nodes: Vec<PlanNodeJson>,
}

#[derive(Debug, Serialize)]
pub struct PlanNodeJson {
    pub node: String,
    pub module: String,
    pub database: String,
    pub current: Option<i64>,
    pub target: Option<i64>,
    pub dirty: bool,
    pub up_to_date: bool,
    pub scripts: Vec<PlanScriptJson>,
    /// How many gRPC messages the scripts are sent in.
    pub messages: u32,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct PlanScriptJson {
    pub file: String,
    pub checksum: String,
}

fn plan_json(plan: &UpgradePlanReply) -> PlanJson {
    PlanJson {
        nodes: plan
            .nodes
            .iter()
            .map(|n| PlanNodeJson {
                node: n.node.clone(),
                module: n.module.clone(),
                database: n.database.clone(),
                current: n.current,
                target: n.target,
                dirty: n.dirty,
                up_to_date: n.error.is_empty() && n.scripts.is_empty(),
                scripts: n
                    .scripts
                    .iter()
                    .map(|s| PlanScriptJson {
                        file: s.file_name.clone(),
                        checksum: s.checksum.clone(),
                    })
                    .collect(),
                messages: n.messages.max(1),
                error: crate::json::non_empty(&n.error),
            })
            .collect(),
    }
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

#[cfg(test)]
mod tests {
    use qserv_proto::v1::{NodePlan, PlannedScript};

    use super::*;
    use crate::golden::assert_golden;

    #[test]
    fn upgrade_plan_keeps_its_documented_shape() {
        let plan = UpgradePlanReply {
            nodes: vec![
                NodePlan {
                    node: "worker-1".to_owned(),
                    module: "worker".to_owned(),
                    database: "qservw_worker".to_owned(),
                    current: Some(2),
                    target: Some(3),
                    scripts: vec![PlannedScript {
                        file_name: "migrate-2-to-3.sql".to_owned(),
                        checksum: "sha256:9f2c".to_owned(),
                    }],
                    messages: 1,
                    ..NodePlan::default()
                },
                NodePlan {
                    node: "worker-2".to_owned(),
                    module: "worker".to_owned(),
                    database: "qservw_worker".to_owned(),
                    error: "the agent is unreachable".to_owned(),
                    ..NodePlan::default()
                },
            ],
        };
        assert_golden("upgrade-plan.json", &plan_json(&plan));
    }
}
