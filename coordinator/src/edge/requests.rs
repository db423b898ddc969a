//! Wire requests turned into typed job specs: defaults filled in, and what can be refused
//! without looking at the instance refused here (a spec that does not parse, a reason too
//! long, a replacement that is not one worker). Pure, so each rule is tested here.

use qserv_proto::v1::{RestartRequest, UpgradeRepairRequest, WorkersReplaceRequest};

use crate::domain::Role;
use crate::domain::job::{
    InstallParams, JobSpec, RepairParams, RestartParams, WorkersAddParams, WorkersReplaceParams,
};
use crate::instance::admission;

/// `workers add --spec`: the spec's nodes, named for the instance it says.
pub fn workers_add_spec(text: &str) -> Result<JobSpec, String> {
    let spec = admission::parse_spec(text)?;
    Ok(JobSpec::WorkersAdd(WorkersAddParams {
        instance: spec.name,
        nodes: spec.nodes,
    }))
}

pub fn workers_replace_spec(request: &WorkersReplaceRequest) -> Result<JobSpec, String> {
    let spec = admission::parse_spec(&request.spec_toml)?;
    let [new] = <[_; 1]>::try_from(spec.nodes).map_err(|nodes: Vec<_>| {
        format!(
            "the spec of the new worker holds {} nodes; 'workers replace' takes exactly one",
            nodes.len()
        )
    })?;
    if new.role != Role::Worker {
        return Err(format!(
            "node '{}' is a {} node; 'workers replace' takes a worker",
            new.name, new.role
        ));
    }
    Ok(JobSpec::WorkersReplace(WorkersReplaceParams {
        instance: spec.name,
        old: request.old.clone(),
        new,
        purge: request.purge,
        forget_replicas: request.forget_replicas,
    }))
}

pub fn install_spec(text: &str, adopt: bool) -> Result<JobSpec, String> {
    let spec = if text.is_empty() {
        None
    } else {
        Some(admission::parse_spec(text)?)
    };
    let params = InstallParams { spec };
    Ok(if adopt {
        JobSpec::Adopt(params)
    } else {
        JobSpec::Install(params)
    })
}

/// How long a restarted node may take to come back when the request does not say.
const RESTART_NODE_TIMEOUT_MS: u64 = 5 * 60 * 1000;
/// How long a restarted node must stay up before the next goes, when the request does not say:
/// a service that dies right after starting shows up within it.
const RESTART_SETTLE_MS: u64 = 2000;

pub fn restart_spec(request: &RestartRequest) -> Result<JobSpec, String> {
    let role = match request.role {
        0 => None,
        wire => Some(
            qserv_proto::model::role(wire)
                .ok_or_else(|| format!("role {wire} is not czar, worker or repl"))?,
        ),
    };
    Ok(JobSpec::Restart(RestartParams {
        nodes: request.nodes.clone(),
        role,
        parallel: request.parallel.max(1),
        node_timeout_ms: if request.node_timeout_ms == 0 {
            RESTART_NODE_TIMEOUT_MS
        } else {
            request.node_timeout_ms
        },
        settle_ms: if request.settle_ms == 0 {
            RESTART_SETTLE_MS
        } else {
            request.settle_ms
        },
        activity: crate::domain::activity::ActivityPolicy::from_wire(request.activity.as_ref()),
        services: request
            .services
            .iter()
            .map(|n| qserv_model::ServiceName::parse(n).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?,
    }))
}

/// A repair's reason is a sentence, not a document.
const MAX_REASON_CHARS: usize = 1000;

pub fn repair_spec(request: &UpgradeRepairRequest) -> Result<JobSpec, String> {
    let module = qserv_migrations::Module::parse(&request.module).map_err(|e| e.to_string())?;
    let reason = request.reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(format!(
            "--reason is longer than {MAX_REASON_CHARS} characters; keep it to a sentence or two"
        ));
    }
    Ok(JobSpec::Repair(RepairParams {
        node: request.node.clone(),
        module,
        version: request.version,
        force: request.force,
        reason: reason.to_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_WORKER: &str = "name = \"dr1\"\n\n[[nodes]]\nname = \"worker-9\"\nrole = \"worker\"\nagent = \"http://w9:7080\"\n";

    #[test]
    fn a_restart_gets_its_defaults_and_at_least_one_node_at_a_time() {
        let Ok(JobSpec::Restart(params)) = restart_spec(&RestartRequest::default()) else {
            panic!("not a restart");
        };
        assert_eq!(
            (
                params.parallel,
                params.node_timeout_ms,
                params.settle_ms,
                params.role
            ),
            (1, RESTART_NODE_TIMEOUT_MS, RESTART_SETTLE_MS, None)
        );
        let asked = RestartRequest {
            role: qserv_proto::v1::Role::Worker.into(),
            parallel: 3,
            settle_ms: 10,
            ..RestartRequest::default()
        };
        let Ok(JobSpec::Restart(params)) = restart_spec(&asked) else {
            panic!("not a restart");
        };
        assert_eq!(
            (params.role, params.parallel, params.settle_ms),
            (Some(Role::Worker), 3, 10)
        );
        let bad = RestartRequest {
            role: 42,
            ..RestartRequest::default()
        };
        assert!(restart_spec(&bad).is_err_and(|e| e.contains("role 42")));
        let named = RestartRequest {
            services: vec!["proxy".to_owned()],
            ..RestartRequest::default()
        };
        let Ok(JobSpec::Restart(params)) = restart_spec(&named) else {
            panic!("not a restart");
        };
        assert_eq!(params.services.len(), 1);
        let bad_name = RestartRequest {
            services: vec!["pro xy".to_owned()],
            ..RestartRequest::default()
        };
        assert!(restart_spec(&bad_name).is_err_and(|e| e.contains("invalid service name")));
    }

    #[test]
    fn a_replacement_is_exactly_one_worker() {
        let request = |spec: &str| WorkersReplaceRequest {
            old: "worker-2".to_owned(),
            spec_toml: spec.to_owned(),
            purge: true,
            forget_replicas: false,
            options: None,
        };
        let Ok(JobSpec::WorkersReplace(params)) = workers_replace_spec(&request(ONE_WORKER)) else {
            panic!("not a replacement");
        };
        assert_eq!(
            (
                params.instance.as_str(),
                params.old.as_str(),
                params.new.name.as_str(),
                params.purge
            ),
            ("dr1", "worker-2", "worker-9", true)
        );
        let two = format!(
            "{ONE_WORKER}\n[[nodes]]\nname = \"worker-10\"\nrole = \"worker\"\nagent = \"http://w10:7080\"\n"
        );
        assert!(workers_replace_spec(&request(&two)).is_err_and(|e| e.contains("holds 2 nodes")));
        let czar = ONE_WORKER.replace("role = \"worker\"", "role = \"czar\"");
        assert!(workers_replace_spec(&request(&czar)).is_err_and(|e| e.contains("takes a worker")));
    }

    #[test]
    fn a_repair_reason_is_a_sentence() {
        let request = UpgradeRepairRequest {
            node: "worker-1".to_owned(),
            module: "worker".to_owned(),
            version: 3,
            reason: "é".repeat(MAX_REASON_CHARS + 1),
            ..UpgradeRepairRequest::default()
        };
        assert!(repair_spec(&request).is_err_and(|e| e.contains("longer than")));
    }
}
