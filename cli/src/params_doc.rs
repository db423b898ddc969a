//! A job's parameters in JSON (`jobs show`, `jobs list`, `audit`), printed from the coordinator's
//! typed `JobParams`: one object per kind, tagged with `kind`.

use qserv_model::Role;
use qserv_proto::v1 as pb;
use qserv_proto::v1::job_params::Kind;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ParamsJson {
    Install(InstallJson),
    Adopt(InstallJson),
    Up {
        timeout_ms: u64,
        service_timeout_ms: u64,
    },
    Down {
        activity: ActivityJson,
    },
    Delete {
        confirm: String,
    },
    Upgrade {
        parallel: u32,
        nodes: Vec<String>,
        fail_fast: bool,
    },
    Repair {
        node: String,
        module: String,
        version: i64,
        force: bool,
        reason: String,
    },
    WorkersAdd {
        instance: String,
        nodes: Vec<NodeJson>,
    },
    WorkersRemove {
        name: String,
        purge: bool,
        forget_replicas: bool,
    },
    Restart {
        nodes: Vec<String>,
        role: Option<&'static str>,
        parallel: u32,
        node_timeout_ms: u64,
        settle_ms: u64,
        activity: ActivityJson,
        services: Vec<String>,
    },
    WorkersReplace {
        instance: String,
        old: String,
        new: Option<NodeJson>,
        purge: bool,
        forget_replicas: bool,
    },
    WorkersState {
        name: String,
        state: Option<&'static str>,
    },
    ConfigApply {
        service: String,
        version: u32,
        role: Option<&'static str>,
        nodes: Vec<String>,
        rolling: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallJson {
    /// `None`: the inventory the coordinator already had.
    pub instance: Option<String>,
    pub nodes: Vec<NodeJson>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeJson {
    pub name: String,
    pub role: &'static str,
    pub agent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ActivityJson {
    pub drain_ms: u64,
    pub force: bool,
}

fn role(value: i32) -> Option<&'static str> {
    qserv_proto::model::role(value).map(Role::name)
}

fn node(node: &pb::SpecNode) -> NodeJson {
    NodeJson {
        name: node.name.clone(),
        role: Role::name_or_unknown(qserv_proto::model::role(node.role)),
        agent: node.agent.clone(),
    }
}

fn install(params: &pb::InstallParams) -> InstallJson {
    InstallJson {
        instance: params.instance.clone(),
        nodes: params.nodes.iter().map(node).collect(),
    }
}

fn activity(policy: Option<&pb::ActivityPolicy>) -> ActivityJson {
    ActivityJson {
        drain_ms: policy.map_or(0, |p| p.drain_ms),
        force: policy.is_some_and(|p| p.force),
    }
}

fn worker_state(value: i32) -> Option<&'static str> {
    match pb::WorkerState::try_from(value).ok()? {
        pb::WorkerState::Enabled => Some("enabled"),
        pb::WorkerState::ReadOnly => Some("read-only"),
        pb::WorkerState::Disabled => Some("disabled"),
        pb::WorkerState::Unspecified => None,
    }
}

impl ParamsJson {
    /// `None` when the coordinator sent none (a request refused before it became a job) or a
    /// kind this client does not know.
    pub fn of(params: Option<&pb::JobParams>) -> Option<ParamsJson> {
        Some(match params?.kind.as_ref()? {
            Kind::Install(p) => ParamsJson::Install(install(p)),
            Kind::Adopt(p) => ParamsJson::Adopt(install(p)),
            Kind::Up(p) => ParamsJson::Up {
                timeout_ms: p.timeout_ms,
                service_timeout_ms: p.service_timeout_ms,
            },
            Kind::Down(p) => ParamsJson::Down {
                activity: activity(p.activity.as_ref()),
            },
            Kind::Delete(p) => ParamsJson::Delete {
                confirm: p.confirm.clone(),
            },
            Kind::Upgrade(p) => ParamsJson::Upgrade {
                parallel: p.parallel,
                nodes: p.nodes.clone(),
                fail_fast: p.fail_fast,
            },
            Kind::Repair(p) => ParamsJson::Repair {
                node: p.node.clone(),
                module: p.module.clone(),
                version: p.version,
                force: p.force,
                reason: p.reason.clone(),
            },
            Kind::WorkersAdd(p) => ParamsJson::WorkersAdd {
                instance: p.instance.clone(),
                nodes: p.nodes.iter().map(node).collect(),
            },
            Kind::WorkersRemove(p) => ParamsJson::WorkersRemove {
                name: p.name.clone(),
                purge: p.purge,
                forget_replicas: p.forget_replicas,
            },
            Kind::Restart(p) => ParamsJson::Restart {
                nodes: p.nodes.clone(),
                role: role(p.role),
                parallel: p.parallel,
                node_timeout_ms: p.node_timeout_ms,
                settle_ms: p.settle_ms,
                activity: activity(p.activity.as_ref()),
                services: p.services.clone(),
            },
            Kind::WorkersReplace(p) => ParamsJson::WorkersReplace {
                instance: p.instance.clone(),
                old: p.old.clone(),
                new: p.new.as_ref().map(node),
                purge: p.purge,
                forget_replicas: p.forget_replicas,
            },
            Kind::WorkersState(p) => ParamsJson::WorkersState {
                name: p.name.clone(),
                state: worker_state(p.state),
            },
            Kind::ConfigApply(p) => ParamsJson::ConfigApply {
                service: p.service.clone(),
                version: p.version,
                role: qserv_proto::model::role(p.role).map(qserv_model::Role::name),
                nodes: p.nodes.clone(),
                rolling: p.rolling,
            },
        })
    }
}

/// One line for a table cell: the JSON document, or `-` for none.
pub fn cell(params: Option<&pb::JobParams>) -> String {
    ParamsJson::of(params)
        .and_then(|p| serde_json::to_string(&p).ok())
        .unwrap_or_else(|| "-".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(params: &pb::JobParams) -> String {
        serde_json::to_string(&ParamsJson::of(Some(params))).unwrap_or_default()
    }

    #[test]
    fn each_kind_is_tagged_and_typed() {
        let restart = pb::JobParams {
            kind: Some(Kind::Restart(pb::RestartParams {
                nodes: vec!["wörker-1".to_owned()],
                role: pb::Role::Worker.into(),
                parallel: 1,
                node_timeout_ms: 60_000,
                settle_ms: 2_000,
                activity: None,
                services: vec!["proxy".to_owned()],
            })),
        };
        assert_eq!(
            json(&restart),
            r#"{"kind":"restart","nodes":["wörker-1"],"role":"worker","parallel":1,"node_timeout_ms":60000,"settle_ms":2000,"activity":{"drain_ms":0,"force":false},"services":["proxy"]}"#
        );
        let state = pb::JobParams {
            kind: Some(Kind::WorkersState(pb::WorkersStateParams {
                name: "worker-2".to_owned(),
                state: pb::WorkerState::ReadOnly.into(),
            })),
        };
        assert_eq!(
            json(&state),
            r#"{"kind":"workers-state","name":"worker-2","state":"read-only"}"#
        );
    }

    #[test]
    fn no_parameters_are_none_and_a_dash_in_a_table() {
        assert_eq!(ParamsJson::of(None), None);
        assert_eq!(ParamsJson::of(Some(&pb::JobParams { kind: None })), None);
        assert_eq!(cell(None), "-");
    }

    #[test]
    fn an_inventory_install_has_no_instance() {
        let adopt = pb::JobParams {
            kind: Some(Kind::Adopt(pb::InstallParams::default())),
        };
        assert_eq!(
            json(&adopt),
            r#"{"kind":"adopt","instance":null,"nodes":[]}"#
        );
    }
}
