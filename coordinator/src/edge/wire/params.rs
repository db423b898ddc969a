//! A job's parameters on the wire, both ways: what a request's worker state and activity policy
//! decode to, and the typed `JobParams` (one message per kind) that clients read back. The
//! store keeps its own versioned document; clients never see it. An unknown or unspecified
//! value decodes to `None`, never to a guess.

use qserv_proto::v1 as pb;
use qserv_proto::v1::job_params::Kind;

use crate::domain::Node;
use crate::domain::activity::{ActivityPolicy, WorkerState};
use crate::domain::job::{InstallParams, JobSpec, WorkersAddParams, WorkersRemoveParams};

/// The parameters of a stored job document; `None` for one this coordinator cannot read (a
/// newer format, or the `{}` of a request refused before it became a job).
pub fn stored(document: &str) -> Option<pb::JobParams> {
    JobSpec::decode(document).ok().map(|spec| (&spec).into())
}

impl From<&JobSpec> for pb::JobParams {
    fn from(spec: &JobSpec) -> pb::JobParams {
        let kind = match spec {
            JobSpec::Install(p) => Kind::Install(install(p)),
            JobSpec::Adopt(p) => Kind::Adopt(install(p)),
            JobSpec::Up(p) => Kind::Up(pb::UpParams {
                timeout_ms: p.timeout_ms,
                service_timeout_ms: p.service_timeout_ms,
            }),
            JobSpec::Down(p) => Kind::Down(pb::DownParams {
                activity: Some(policy(&p.activity)),
            }),
            JobSpec::Delete(p) => Kind::Delete(pb::DeleteParams {
                confirm: p.confirm.clone(),
            }),
            JobSpec::Upgrade(p) => Kind::Upgrade(pb::UpgradeParams {
                parallel: p.parallel,
                nodes: p.nodes.clone(),
                fail_fast: p.fail_fast,
            }),
            JobSpec::Repair(p) => Kind::Repair(pb::RepairParams {
                node: p.node.clone(),
                module: p.module.name().to_owned(),
                version: p.version,
                force: p.force,
                reason: p.reason.clone(),
            }),
            JobSpec::WorkersAdd(p) => Kind::WorkersAdd(adding(p)),
            JobSpec::WorkersRemove(p) => Kind::WorkersRemove(removing(p)),
            JobSpec::Restart(p) => Kind::Restart(pb::RestartParams {
                nodes: p.nodes.clone(),
                role: qserv_proto::model::role_to_wire(p.role),
                parallel: p.parallel,
                node_timeout_ms: p.node_timeout_ms,
                settle_ms: p.settle_ms,
                activity: Some(policy(&p.activity)),
                services: p.services.iter().map(ToString::to_string).collect(),
            }),
            JobSpec::WorkersReplace(p) => Kind::WorkersReplace(pb::WorkersReplaceParams {
                instance: p.instance.clone(),
                old: p.old.clone(),
                new: Some(node(&p.new)),
                purge: p.purge,
                forget_replicas: p.forget_replicas,
            }),
            JobSpec::WorkersState(p) => Kind::WorkersState(pb::WorkersStateParams {
                name: p.name.clone(),
                state: pb::WorkerState::from(p.state).into(),
            }),
            JobSpec::ConfigApply(p) => Kind::ConfigApply(pb::ConfigApplyParams {
                service: p.service.to_string(),
                version: p.version,
                role: qserv_proto::model::role_to_wire(p.role),
                nodes: p.nodes.clone(),
                rolling: p.rolling,
            }),
        };
        pb::JobParams { kind: Some(kind) }
    }
}

fn node(node: &Node) -> pb::SpecNode {
    pb::SpecNode {
        name: node.name.clone(),
        role: pb::Role::from(node.role).into(),
        agent: node.agent.clone(),
    }
}

fn install(params: &InstallParams) -> pb::InstallParams {
    pb::InstallParams {
        instance: params.spec.as_ref().map(|s| s.name.clone()),
        nodes: params
            .spec
            .iter()
            .flat_map(|s| s.nodes.iter().map(node))
            .collect(),
    }
}

fn adding(params: &WorkersAddParams) -> pb::WorkersAddParams {
    pb::WorkersAddParams {
        instance: params.instance.clone(),
        nodes: params.nodes.iter().map(node).collect(),
    }
}

fn removing(params: &WorkersRemoveParams) -> pb::WorkersRemoveParams {
    pb::WorkersRemoveParams {
        name: params.name.clone(),
        purge: params.purge,
        forget_replicas: params.forget_replicas,
    }
}

fn policy(policy: &ActivityPolicy) -> pb::ActivityPolicy {
    pb::ActivityPolicy {
        drain_ms: policy.drain_ms,
        force: policy.force,
    }
}

impl WorkerState {
    pub fn from_wire(value: i32) -> Option<WorkerState> {
        match pb::WorkerState::try_from(value).ok()? {
            pb::WorkerState::Enabled => Some(WorkerState::Enabled),
            pb::WorkerState::ReadOnly => Some(WorkerState::ReadOnly),
            pb::WorkerState::Disabled => Some(WorkerState::Disabled),
            pb::WorkerState::Unspecified => None,
        }
    }
}

impl ActivityPolicy {
    pub fn from_wire(wire: Option<&pb::ActivityPolicy>) -> ActivityPolicy {
        wire.map_or_else(ActivityPolicy::default, |w| ActivityPolicy {
            drain_ms: w.drain_ms,
            force: w.force,
        })
    }
}

impl From<WorkerState> for pb::WorkerState {
    fn from(state: WorkerState) -> pb::WorkerState {
        match state {
            WorkerState::Enabled => pb::WorkerState::Enabled,
            WorkerState::ReadOnly => pb::WorkerState::ReadOnly,
            WorkerState::Disabled => pb::WorkerState::Disabled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;
    use crate::domain::job::{RestartParams, WorkersReplaceParams};
    use crate::domain::spec::InstanceSpec;

    fn worker(name: &str) -> Node {
        Node {
            name: name.to_owned(),
            role: Role::Worker,
            agent: "http://10.0.0.11:7080".to_owned(),
        }
    }

    #[test]
    fn a_stored_document_reads_back_as_its_typed_parameters() {
        let spec = JobSpec::Install(InstallParams {
            spec: Some(InstanceSpec {
                name: "dr1-ünïcode".to_owned(),
                nodes: vec![worker("worker-1")],
                services: Default::default(),
            }),
        });
        let document = spec.encode().unwrap_or_default();
        let Some(pb::JobParams {
            kind: Some(Kind::Install(params)),
        }) = stored(&document)
        else {
            panic!("not an install: {document}");
        };
        assert_eq!(params.instance.as_deref(), Some("dr1-ünïcode"));
        assert_eq!(params.nodes.len(), 1);
        assert_eq!(params.nodes[0].role(), pb::Role::Worker);
    }

    #[test]
    fn the_inventory_install_names_no_instance() {
        let params = pb::JobParams::from(&JobSpec::Adopt(InstallParams { spec: None }));
        assert_eq!(
            params.kind,
            Some(Kind::Adopt(pb::InstallParams {
                instance: None,
                nodes: Vec::new()
            }))
        );
    }

    #[test]
    fn every_field_of_a_restart_and_a_replace_reaches_the_wire() {
        let restart = pb::JobParams::from(&JobSpec::Restart(RestartParams {
            nodes: vec!["worker-2".to_owned()],
            role: Some(Role::Worker),
            parallel: 2,
            node_timeout_ms: 30_000,
            settle_ms: 500,
            activity: ActivityPolicy {
                drain_ms: 9,
                force: true,
            },
            services: vec![
                qserv_model::ServiceName::parse("proxy").unwrap_or_else(|e| panic!("{e}")),
            ],
        }));
        let Some(Kind::Restart(r)) = restart.kind else {
            panic!("not a restart: {restart:?}");
        };
        assert_eq!(
            (r.role(), r.parallel, r.node_timeout_ms, r.settle_ms),
            (pb::Role::Worker, 2, 30_000, 500)
        );
        assert_eq!(r.activity.map(|a| (a.drain_ms, a.force)), Some((9, true)));
        assert_eq!(r.services, ["proxy"]);

        let replace = pb::JobParams::from(&JobSpec::WorkersReplace(WorkersReplaceParams {
            instance: "dr1".to_owned(),
            old: "worker-1".to_owned(),
            new: worker("worker-9"),
            purge: true,
            forget_replicas: true,
        }));
        let Some(Kind::WorkersReplace(w)) = replace.kind else {
            panic!("not a replace: {replace:?}");
        };
        assert_eq!(w.new.map(|n| n.name), Some("worker-9".to_owned()));
        assert!(w.purge && w.forget_replicas);
    }

    #[test]
    fn what_cannot_be_read_is_none() {
        assert_eq!(stored("{}"), None);
        assert_eq!(stored(r#"{"format":99,"kind":"up","timeout_ms":1}"#), None);
        assert_eq!(stored("not json"), None);
    }

    #[test]
    fn worker_states_decode_and_unknown_is_none() {
        assert_eq!(
            WorkerState::from_wire(pb::WorkerState::ReadOnly.into()),
            Some(WorkerState::ReadOnly)
        );
        assert_eq!(WorkerState::from_wire(0), None);
        assert_eq!(WorkerState::from_wire(99), None);
    }

    #[test]
    fn no_policy_is_the_default() {
        assert_eq!(ActivityPolicy::from_wire(None), ActivityPolicy::default());
    }
}
