//! Jobs as the engine sees them: a typed spec per kind (persisted with a format version), the
//! steps of each kind, and the states of jobs, steps and nodes. The wire's `Job` is built from
//! these at the gRPC edge only.

use qserv_migrations::Module;
use serde::{Deserialize, Serialize};

use crate::domain::Node;
use crate::domain::activity::{ActivityPolicy, WorkerState};
use crate::domain::spec::InstanceSpec;

/// The version of the persisted job document; a coordinator meeting another one marks the job
/// interrupted rather than guess what it meant.
pub const FORMAT: u32 = 1;

/// Declares an enum of step names, in the order they run.
macro_rules! steps {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                Self::ALL.iter().copied().find(|s| s.name() == text)
            }
        }
    };
}

steps!(InstallStep { Declare => "declare", Reach => "reach", Check => "check", Accounts => "accounts", Schemas => "schemas", Register => "register", Validate => "validate" });
steps!(AdoptStep { Declare => "declare", Reach => "reach", Inspect => "inspect", Record => "record" });
steps!(UpStep { WaitAvailable => "wait-available", Normal => "normal", Services => "services" });
steps!(DownStep { Drain => "drain", StopServices => "stop-services", Maintenance => "maintenance" });
steps!(DeleteStep { Purge => "purge", Forget => "forget" });
steps!(UpgradeStep { Check => "check", Apply => "apply" });
steps!(RepairStep { Repair => "repair" });
steps!(WorkersAddStep { Declare => "declare", Reach => "reach", Accounts => "accounts", Schemas => "schemas", Register => "register", Validate => "validate" });
steps!(WorkersRemoveStep { Unregister => "unregister", Purge => "purge", Forget => "forget" });
steps!(RestartStep { Drain => "drain", Restart => "restart" });
steps!(WorkersStateStep { Set => "set" });
steps!(ConfigApplyStep { Render => "render", Write => "write" });
steps!(WorkersReplaceStep { Declare => "declare", Reach => "reach", Accounts => "accounts", Schemas => "schemas", Register => "register", Validate => "validate", Unregister => "unregister-old", Purge => "purge-old", Forget => "forget-old" });

/// `install` and `install --adopt`: the spec to declare, or `None` for the inventory the
/// coordinator already has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallParams {
    pub spec: Option<InstanceSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpParams {
    pub timeout_ms: u64,
    /// How long each wave of services may take to become ready; 0 for the default (2 min).
    #[serde(default)]
    pub service_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteParams {
    /// The instance name the operator typed; admission checks it against the inventory.
    pub confirm: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeParams {
    /// At most this many nodes at once; 0 for all.
    pub parallel: u32,
    /// Only these nodes; empty for all.
    pub nodes: Vec<String>,
    pub fail_fast: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairParams {
    pub node: String,
    #[serde(with = "module_name")]
    pub module: Module,
    pub version: i64,
    /// Repair a database that is not dirty.
    #[serde(default)]
    pub force: bool,
    /// The operator's reason, recorded on the node and in the audit trail.
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersAddParams {
    /// The instance the spec names; admission checks it is this one.
    pub instance: String,
    pub nodes: Vec<Node>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersRemoveParams {
    pub name: String,
    pub purge: bool,
    /// Delete the registry row even though Qserv's cascade takes the worker's replica and
    /// contribution records: they are saved on the repl node first.
    #[serde(default)]
    pub forget_replicas: bool,
}

/// `down`: what to do about queries and ingests in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownParams {
    #[serde(default)]
    pub activity: ActivityPolicy,
}

/// `workers enable|read-only|disable`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersStateParams {
    pub name: String,
    pub state: WorkerState,
}

/// `workers replace`: the new worker joins as `workers add` would add it, then the old one
/// leaves as `workers remove` would remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersReplaceParams {
    /// The instance the spec names; admission checks it is this one.
    pub instance: String,
    pub old: String,
    pub new: Node,
    /// Drop the old worker's databases when its agent answers.
    pub purge: bool,
    #[serde(default)]
    pub forget_replicas: bool,
}

impl WorkersReplaceParams {
    pub fn adding(&self) -> WorkersAddParams {
        WorkersAddParams {
            instance: self.instance.clone(),
            nodes: vec![self.new.clone()],
        }
    }

    pub fn removing(&self) -> WorkersRemoveParams {
        WorkersRemoveParams {
            name: self.old.clone(),
            purge: self.purge,
            forget_replicas: self.forget_replicas,
        }
    }
}

/// `config apply` and `config rollback`: a stored version of a service's template, rendered
/// and written on the nodes that run the service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigApplyParams {
    pub service: qserv_model::ServiceName,
    /// The version in the store.
    pub version: u32,
    /// Only nodes of this role.
    pub role: Option<crate::domain::Role>,
    /// Only these nodes; empty for every node that runs the service.
    pub nodes: Vec<String>,
    /// Write and restart the service node by node (required in `normal`).
    pub rolling: bool,
}

/// `restart`: a rolling restart of the services in `normal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartParams {
    /// Only these nodes; empty for all.
    pub nodes: Vec<String>,
    /// Only nodes of this role.
    pub role: Option<crate::domain::Role>,
    /// At most this many nodes at once (at least 1).
    pub parallel: u32,
    /// How long one node may take to report its services running and its database ready.
    pub node_timeout_ms: u64,
    /// How long a restarted node must stay so before the next one goes.
    pub settle_ms: u64,
    /// What to do about queries and ingests in flight.
    #[serde(default)]
    pub activity: ActivityPolicy,
    /// Only these services, on the nodes that run them; empty for all.
    #[serde(default)]
    pub services: Vec<qserv_model::ServiceName>,
}

/// What a job does, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JobSpec {
    Install(InstallParams),
    Adopt(InstallParams),
    Up(UpParams),
    Down(DownParams),
    Delete(DeleteParams),
    Upgrade(UpgradeParams),
    Repair(RepairParams),
    WorkersAdd(WorkersAddParams),
    WorkersRemove(WorkersRemoveParams),
    Restart(RestartParams),
    WorkersReplace(WorkersReplaceParams),
    WorkersState(WorkersStateParams),
    ConfigApply(ConfigApplyParams),
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    format: u32,
    #[serde(flatten)]
    spec: JobSpec,
}

/// A job document that cannot be written: the job is not created.
#[derive(Debug, thiserror::Error)]
#[error("the job's parameters cannot be written: {0}")]
pub struct EncodeError(String);

/// Why a stored job cannot be run by this coordinator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the job was stored in format {0}, which this coordinator does not know")]
    Format(u32),
    #[error("the job's parameters cannot be read: {0}")]
    Invalid(String),
}

/// A job's parameters as read from the store, decoded once when the row is read: what every
/// later reader (the engine, each update sent to a watcher) uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredSpec {
    Spec(JobSpec),
    /// A document this coordinator cannot read (a newer format, a damaged row).
    Unreadable(DecodeError),
}

impl StoredSpec {
    pub fn read(document: &str) -> StoredSpec {
        match JobSpec::decode(document) {
            Ok(spec) => StoredSpec::Spec(spec),
            Err(err) => StoredSpec::Unreadable(err),
        }
    }

    pub fn spec(&self) -> Option<&JobSpec> {
        match self {
            StoredSpec::Spec(spec) => Some(spec),
            StoredSpec::Unreadable(_) => None,
        }
    }
}

impl JobSpec {
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Install(_) => "install",
            JobSpec::Adopt(_) => "adopt",
            JobSpec::Up(_) => "up",
            JobSpec::Down(_) => "down",
            JobSpec::Delete(_) => "delete",
            JobSpec::Upgrade(_) => "upgrade",
            JobSpec::Repair(_) => "repair",
            JobSpec::WorkersAdd(_) => "workers-add",
            JobSpec::WorkersRemove(_) => "workers-remove",
            JobSpec::Restart(_) => "restart",
            JobSpec::WorkersReplace(_) => "workers-replace",
            JobSpec::WorkersState(_) => "workers-state",
            JobSpec::ConfigApply(_) => "config-apply",
        }
    }

    pub fn steps(&self) -> Vec<&'static str> {
        fn names<S: Copy>(all: &[S], name: fn(S) -> &'static str) -> Vec<&'static str> {
            all.iter().map(|s| name(*s)).collect()
        }
        match self {
            JobSpec::Install(_) => names(InstallStep::ALL, InstallStep::name),
            JobSpec::Adopt(_) => names(AdoptStep::ALL, AdoptStep::name),
            JobSpec::Up(_) => names(UpStep::ALL, UpStep::name),
            JobSpec::Down(_) => names(DownStep::ALL, DownStep::name),
            JobSpec::Delete(_) => names(DeleteStep::ALL, DeleteStep::name),
            JobSpec::Upgrade(_) => names(UpgradeStep::ALL, UpgradeStep::name),
            JobSpec::Repair(_) => names(RepairStep::ALL, RepairStep::name),
            JobSpec::WorkersAdd(_) => names(WorkersAddStep::ALL, WorkersAddStep::name),
            JobSpec::WorkersRemove(_) => names(WorkersRemoveStep::ALL, WorkersRemoveStep::name),
            JobSpec::Restart(_) => names(RestartStep::ALL, RestartStep::name),
            JobSpec::WorkersReplace(_) => names(WorkersReplaceStep::ALL, WorkersReplaceStep::name),
            JobSpec::WorkersState(_) => names(WorkersStateStep::ALL, WorkersStateStep::name),
            JobSpec::ConfigApply(_) => names(ConfigApplyStep::ALL, ConfigApplyStep::name),
        }
    }

    /// `down` with no drain and no force.
    #[cfg(test)]
    pub fn down() -> JobSpec {
        JobSpec::Down(DownParams::default())
    }

    pub fn encode(&self) -> Result<String, EncodeError> {
        let persisted = Persisted {
            format: FORMAT,
            spec: self.clone(),
        };
        serde_json::to_string(&persisted).map_err(|e| EncodeError(e.to_string()))
    }

    pub fn decode(text: &str) -> Result<JobSpec, DecodeError> {
        #[derive(Deserialize)]
        struct Header {
            format: Option<u32>,
        }
        let header: Header =
            serde_json::from_str(text).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        match header.format {
            Some(FORMAT) => {}
            other => return Err(DecodeError::Format(other.unwrap_or(0))),
        }
        let persisted: Persisted =
            serde_json::from_str(text).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        Ok(persisted.spec)
    }
}

mod module_name {
    use qserv_migrations::Module;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(module: &Module, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(module.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Module, D::Error> {
        let name = String::deserialize(d)?;
        Module::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// Declares a state enum with the lower-case names the store and the operator use.
macro_rules! states {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|s| s.name() == text)
            }
        }
    };
}

states!(JobState { Queued => "queued", Running => "running", Succeeded => "succeeded", Failed => "failed", Cancelled => "cancelled", Interrupted => "interrupted" });
states!(StepState { Pending => "pending", Running => "running", Succeeded => "succeeded", Failed => "failed", Skipped => "skipped", Cancelled => "cancelled" });
states!(NodeState { Pending => "pending", Running => "running", Waiting => "waiting", Done => "done", Failed => "failed", Skipped => "skipped" });
states!(
    /// How much a job's log line matters to the operator.
    Level { Info => "info", Warn => "warn", Error => "error" }
);

/// A line of a job's log, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// 1 for a job's first line, then one more per line.
    pub seq: u64,
    pub at_ms: i64,
    pub level: Level,
    /// The node the line is about; empty for the job as a whole.
    pub node: String,
    pub message: String,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled | JobState::Interrupted
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub name: String,
    pub state: StepState,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeProgress {
    pub name: String,
    pub state: NodeState,
    pub detail: String,
    pub error: String,
}

/// A job as stored: what the engine runs and the queries show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    /// The parameters, decoded from the persisted document (`JobSpec::encode`).
    pub params: StoredSpec,
    pub requested_by: String,
    pub state: JobState,
    pub error: String,
    pub refused: bool,
    pub timed_out: bool,
    pub created_at_ms: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    /// An operator asked the running job to stop.
    pub cancel_requested: bool,
    /// What a job that had nothing to do came to.
    pub note: String,
    pub steps: Vec<StepRecord>,
    pub nodes: Vec<NodeProgress>,
    /// Why the job's end, known here, is not in the store yet (never stored itself: a record
    /// read from the store is stored by definition).
    pub unstored: Option<String>,
}

/// What a cancelled job had done, node by node: an operator who cancelled an upgrade learns
/// which nodes were migrated, which were not started, and which stopped half-way.
pub fn cancel_summary(nodes: &[NodeProgress]) -> String {
    const SHOWN: usize = 10;
    let list = |names: &[&str]| {
        let mut text = names
            .iter()
            .take(SHOWN)
            .copied()
            .collect::<Vec<_>>()
            .join(", ");
        if names.len() > SHOWN {
            text.push_str(&format!(" and {} more", names.len() - SHOWN));
        }
        text
    };
    let named = |state: NodeState| -> Vec<&str> {
        nodes
            .iter()
            .filter(|n| n.state == state)
            .map(|n| n.name.as_str())
            .collect()
    };
    let done = named(NodeState::Done);
    if nodes.is_empty() {
        return "cancelled before any node was touched".to_owned();
    }
    if done.len() == nodes.len() {
        return format!(
            "cancelled after every node was done ({}): nothing was left half-way",
            list(&done)
        );
    }
    let mut parts = Vec::new();
    for (state, what) in [
        (NodeState::Done, "done"),
        (NodeState::Failed, "failed"),
        (NodeState::Running, "stopped while running"),
        (NodeState::Waiting, "stopped while waiting"),
        (NodeState::Pending, "not started"),
        (NodeState::Skipped, "not started"),
    ] {
        let names = named(state);
        if !names.is_empty() {
            parts.push(format!("{what}: {}", list(&names)));
        }
    }
    format!("cancelled; {}", parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn progress(name: &str, state: NodeState) -> NodeProgress {
        NodeProgress {
            name: name.to_owned(),
            state,
            detail: String::new(),
            error: String::new(),
        }
    }

    #[test]
    fn a_cancelled_job_says_what_it_did_on_each_node() {
        let all_done = [
            progress("worker-1", NodeState::Done),
            progress("worker-2", NodeState::Done),
        ];
        assert_eq!(
            cancel_summary(&all_done),
            "cancelled after every node was done (worker-1, worker-2): nothing was left half-way"
        );
        let mixed = [
            progress("worker-1", NodeState::Done),
            progress("worker-2", NodeState::Skipped),
            progress("worker-3", NodeState::Running),
        ];
        assert_eq!(
            cancel_summary(&mixed),
            "cancelled; done: worker-1; stopped while running: worker-3; not started: worker-2"
        );
        let many: Vec<NodeProgress> = (0..12)
            .map(|i| progress(&format!("w{i}"), NodeState::Skipped))
            .collect();
        assert!(cancel_summary(&many).ends_with("and 2 more"));
        assert_eq!(cancel_summary(&[]), "cancelled before any node was touched");
    }

    #[test]
    fn specs_round_trip_with_their_format() {
        let specs = [
            JobSpec::Up(UpParams {
                timeout_ms: 5,
                service_timeout_ms: 0,
            }),
            JobSpec::down(),
            JobSpec::Repair(RepairParams {
                node: "worker-1".to_owned(),
                module: Module::Worker,
                version: 3,
                force: true,
                reason: "restored from backup".to_owned(),
            }),
            JobSpec::WorkersAdd(WorkersAddParams {
                instance: "dr1".to_owned(),
                nodes: vec![Node {
                    name: "worker-9".to_owned(),
                    role: Role::Worker,
                    agent: "http://127.0.0.1:1".to_owned(),
                }],
            }),
        ];
        for spec in specs {
            let text = spec.encode().unwrap_or_else(|e| panic!("{e}"));
            assert!(text.contains("\"format\":1"), "{text}");
            assert_eq!(JobSpec::decode(&text).ok(), Some(spec.clone()));
            assert_eq!(StoredSpec::read(&text).spec(), Some(&spec));
        }
    }

    #[test]
    fn a_stored_document_that_cannot_be_read_keeps_why() {
        assert_eq!(
            StoredSpec::read(r#"{"format": 2, "kind": "down"}"#),
            StoredSpec::Unreadable(DecodeError::Format(2))
        );
        let refused = StoredSpec::read("{}");
        assert!(refused.spec().is_none(), "{refused:?}");
    }

    #[test]
    fn an_untyped_or_future_document_is_not_guessed() {
        assert!(matches!(
            JobSpec::decode(r#"{"timeout_ms": 5}"#),
            Err(DecodeError::Format(0))
        ));
        assert!(matches!(
            JobSpec::decode(r#"{"format": 2, "kind": "down"}"#),
            Err(DecodeError::Format(2))
        ));
        assert!(matches!(
            JobSpec::decode(r#"{"format": 1, "kind": "launch"}"#),
            Err(DecodeError::Invalid(_))
        ));
    }

    #[test]
    fn every_kind_has_its_steps_in_order() {
        assert_eq!(
            JobSpec::Up(UpParams {
                timeout_ms: 0,
                service_timeout_ms: 0,
            })
            .steps(),
            ["wait-available", "normal", "services"]
        );
        assert_eq!(
            JobSpec::Install(InstallParams { spec: None }).steps()[0],
            "declare"
        );
        assert_eq!(InstallStep::parse("schemas"), Some(InstallStep::Schemas));
        assert_eq!(JobState::parse("cancelled"), Some(JobState::Cancelled));
    }
}
