//! `upgrade plan`: per node and module, where the schema is, where the migrations lead, and the
//! scripts (with checksums) that would run. Computed from the instance state; changes nothing.

use qserv_migrations::{MigrationSet, Module, plan_start};

use crate::instance::InstanceState;

/// The most one migration request may carry: the agents' message limit, less room for the
/// request's other fields.
pub const PIECE_BYTES: usize = qserv_proto::transport::MAX_MESSAGE_BYTES - 256 * 1024;

/// A script that would run, and its checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedScript {
    pub file_name: String,
    pub checksum: String,
}

/// One node's module database and what an upgrade would do to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub node: String,
    pub module: Module,
    pub current: Option<i64>,
    pub target: Option<i64>,
    pub dirty: bool,
    /// Why no plan can be made (no path, dirty, never seen).
    pub error: Option<String>,
    pub scripts: Vec<PlannedScript>,
    /// How many requests the scripts go in.
    pub messages: u32,
}

pub fn plan(state: &InstanceState, migrations: &MigrationSet) -> Vec<NodePlan> {
    state
        .nodes
        .iter()
        .map(|node| {
            let module: Module = node.role().module();
            let schema = node.schema.iter().find(|s| s.module == module);
            let current = schema.and_then(|s| s.version);
            let mut entry = NodePlan {
                node: node.name().to_owned(),
                module,
                current,
                target: migrations.target(module),
                dirty: schema.is_some_and(|s| s.dirty),
                error: None,
                scripts: Vec::new(),
                messages: 0,
            };
            match schema {
                None => {
                    entry.error = Some("the agent has not reported this database yet".to_owned());
                }
                Some(s) if s.dirty => entry.error = Some(format!("dirty: {}", s.dirty_reason)),
                Some(_) => match migrations.plan(module, plan_start(migrations, module, current)) {
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
                    Err(err) => entry.error = Some(err.to_string()),
                },
            }
            entry
        })
        .collect()
}
