//! `upgrade plan`: per node and module, where the schema is, where the migrations lead, and the
//! scripts (with checksums) that would run. Computed from the snapshot; changes nothing.

use qserv_migrations::{MigrationSet, Module, plan_start};
use qserv_proto::v1::{NodePlan, PlannedScript, UpgradePlanReply};

use crate::instance::InstanceState;

/// The most one migration request may carry: the agents' message limit, less room for the
/// request's other fields.
pub const PIECE_BYTES: usize = qserv_proto::transport::MAX_MESSAGE_BYTES - 256 * 1024;

pub fn plan(state: &InstanceState, migrations: &MigrationSet) -> UpgradePlanReply {
    let mut nodes = Vec::new();
    for node in &state.nodes {
        let module: Module = node.role().module();
        let schema = node.schema.iter().find(|s| s.module == module);
        let current = schema.and_then(|s| s.version);
        let dirty = schema.is_some_and(|s| s.dirty);
        let mut entry = NodePlan {
            node: node.name().to_owned(),
            module: module.name().to_owned(),
            database: module.database().to_owned(),
            current,
            target: migrations.target(module),
            dirty,
            ..NodePlan::default()
        };
        if schema.is_none() {
            entry.error = "the agent has not reported this database yet".to_owned();
        } else if dirty {
            entry.error = format!(
                "dirty: {}",
                schema.map(|s| s.dirty_reason.as_str()).unwrap_or("")
            );
        } else {
            match migrations.plan(module, plan_start(migrations, module, current)) {
                Ok(scripts) => {
                    entry.scripts = scripts
                        .into_iter()
                        .map(|s| PlannedScript {
                            file_name: s.file_name.clone(),
                            checksum: s.checksum.clone(),
                        })
                        .collect();
                    entry.messages = migrations
                        .parts(module, current, PIECE_BYTES)
                        .map_or(1, |p| u32::try_from(p.len()).unwrap_or(u32::MAX));
                }
                Err(err) => entry.error = err.to_string(),
            }
        }
        nodes.push(entry);
    }
    UpgradePlanReply { nodes }
}
