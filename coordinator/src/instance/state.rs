//! The instance as this coordinator knows it: the inventory, the mode and the counters that
//! order commands, and per node its spec entry, what its agent said last and whether it can be
//! reached. Monitors and jobs publish it; readers compute over it, and the gRPC edge turns it
//! into the wire's `InstanceStatus` in one conversion.

use std::collections::BTreeMap;

use qserv_migrations::Module;

use crate::domain::activity::Activity;
use crate::domain::job::{JobRecord, JobState};
use crate::domain::{Epoch, FencingToken, Mode};
use crate::domain::{Node, Observation, RegistryRow, Role, Services};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceState {
    /// The instance's name; `None` while no inventory is known.
    pub instance: Option<String>,
    /// `None` until the store was read.
    pub mode: Option<Mode>,
    pub epoch: Option<Epoch>,
    /// The token of the leader's term, as the last heartbeat showed it.
    pub fencing_token: Option<FencingToken>,
    pub nodes: Vec<NodeState>,
    /// The worker registry (`qservReplica.config_worker`) as the repl node's agent last read it.
    pub registry: Vec<RegistryRow>,
    pub active_job: Option<ActiveJob>,
    /// The coordinators sharing the store, as their heartbeats show them.
    pub coordinators: Vec<crate::instance::peers::CoordinatorPeer>,
    /// This coordinator's id.
    pub answered_by: String,
    /// Derived from the nodes by `fold::refresh`.
    pub health: Health,
    /// Every reachable node's activity, summed; derived.
    pub activity: Activity,
    /// The order the instance's services start in (empty: the spec declares none).
    pub services: qserv_model::ServiceOrder,
}

impl ActiveJob {
    /// What `status` shows of `job`, unless it has ended.
    pub fn of(job: &JobRecord) -> Option<ActiveJob> {
        (!job.state.is_finished()).then(|| ActiveJob {
            id: job.id.clone(),
            kind: job.kind.clone(),
            state: job.state,
            progress: job
                .nodes
                .iter()
                .map(|n| {
                    let text = if n.detail.is_empty() {
                        n.state.name().to_owned()
                    } else {
                        format!("{}: {}", n.state.name(), n.detail)
                    };
                    (n.name.clone(), text)
                })
                .collect(),
        })
    }
}

impl InstanceState {
    /// The instance's activity: every reachable node's, summed (what an unreachable agent last
    /// said is not what runs now).
    pub fn running_activity(&self) -> crate::domain::activity::Activity {
        self.nodes
            .iter()
            .filter(|n| n.reachable())
            .map(NodeState::activity)
            .fold(Default::default(), crate::domain::activity::Activity::merge)
    }

    /// The mode as stored; uninstalled until the store was read.
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or(Mode::Uninstalled)
    }

    pub fn instance_name(&self) -> &str {
        self.instance.as_deref().unwrap_or_default()
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.node.name == name)
    }

    /// The inventory's nodes, in order.
    pub fn inventory(&self) -> Vec<Node> {
        self.nodes.iter().map(|n| n.node.clone()).collect()
    }
}

/// ok: every node reachable, compatible, ready and clean; unknown: some node never answered yet
/// (or there are no nodes); degraded otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Health {
    #[default]
    Unknown,
    Ok,
    Degraded,
}

/// Whether a node's agent answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    NotContacted,
    Reachable,
    /// Why it cannot be reached.
    Unreachable(String),
}

/// The job that holds the instance now, and what it does on each node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveJob {
    pub id: String,
    pub kind: String,
    pub state: JobState,
    pub progress: BTreeMap<String, String>,
}

/// One module database of a node, with the version the coordinator's migrations reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaState {
    pub module: Module,
    /// `None` for an uninitialized database (smig semantics).
    pub version: Option<i64>,
    pub target: Option<i64>,
    pub dirty: bool,
    pub dirty_reason: String,
}

impl SchemaState {
    pub fn at_target(&self) -> bool {
        self.version == self.target
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// The inventory's entry.
    pub node: Node,
    /// The worker id recorded when the worker was registered.
    pub registered_id: Option<String>,
    pub reach: Reach,
    /// What the agent said last. It stays while the agent is unreachable: schemas and ids
    /// describe data on disk.
    pub observed: Option<Observation>,
    /// Unix time in milliseconds of the last status received from the agent.
    pub last_seen_ms: Option<i64>,
    pub schema: Vec<SchemaState>,
    /// Derived: for a worker, whether its id is in the registry; `None` for other roles.
    pub registered: Option<bool>,
    /// Derived: why this node's identity cannot be trusted.
    pub identity_problem: Option<String>,
    /// Derived: what is wrong with the epoch the agent holds or has seen.
    pub epoch_problem: Option<String>,
}

impl NodeState {
    /// A node nothing is known of yet.
    pub fn new(node: Node, registered_id: Option<String>) -> NodeState {
        NodeState {
            node,
            registered_id,
            reach: Reach::NotContacted,
            observed: None,
            last_seen_ms: None,
            schema: Vec::new(),
            registered: None,
            identity_problem: None,
            epoch_problem: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.node.name
    }

    pub fn role(&self) -> Role {
        self.node.role
    }

    pub fn reachable(&self) -> bool {
        self.reach == Reach::Reachable
    }

    /// Why the agent cannot be reached; empty when it can.
    pub fn agent_error(&self) -> &str {
        match &self.reach {
            Reach::NotContacted => "not contacted yet",
            Reach::Reachable => "",
            Reach::Unreachable(why) => why,
        }
    }

    /// What the agent said last, while it answers: readiness cannot be vouched for otherwise.
    fn live(&self) -> Option<&Observation> {
        self.observed.as_ref().filter(|_| self.reachable())
    }

    pub fn db_ready(&self) -> bool {
        self.live().is_some_and(|o| o.db_ready)
    }

    pub fn db_error(&self) -> &str {
        match (&self.reach, self.live()) {
            (Reach::Reachable, Some(o)) => &o.db_error,
            (Reach::NotContacted, _) => "unknown: agent not contacted yet",
            _ => "unknown: agent unreachable",
        }
    }

    pub fn services(&self) -> Services {
        self.live().map_or(Services::Unknown, |o| o.services)
    }

    /// The agent speaks the protocol this coordinator does (as it said last).
    pub fn compatible(&self) -> bool {
        self.observed
            .as_ref()
            .is_some_and(crate::domain::compatible)
    }

    pub fn protocol_version(&self) -> u32 {
        self.observed.as_ref().map_or(0, |o| o.protocol_version)
    }

    pub fn worker_id(&self) -> Option<&str> {
        self.observed.as_ref()?.worker_id.as_deref()
    }

    /// The id a worker is known by in the registry: the one it was registered under, else the
    /// one it reports now.
    pub fn registry_id(&self) -> Option<&str> {
        self.registered_id.as_deref().or_else(|| self.worker_id())
    }

    pub fn agent_mode(&self) -> Option<Mode> {
        self.observed.as_ref()?.mode
    }

    pub fn agent_epoch(&self) -> Option<Epoch> {
        self.observed.as_ref()?.epoch
    }

    pub fn seen_epoch(&self) -> Option<Epoch> {
        self.observed.as_ref()?.seen_epoch
    }

    pub fn seen_token(&self) -> Option<FencingToken> {
        self.observed.as_ref()?.seen_token
    }

    /// What the agent last read of Qserv's work in flight.
    pub fn activity(&self) -> Activity {
        self.observed
            .as_ref()
            .map_or_else(Activity::default, |o| o.activity)
    }

    pub fn certificate_expires_at_ms(&self) -> Option<i64> {
        self.observed
            .as_ref()
            .map(|o| o.certificate_expires_at_ms)
            .filter(|end| *end > 0)
    }

    pub fn is_dirty(&self) -> bool {
        self.schema.iter().any(|s| s.dirty)
    }

    /// Every check of `health` passes.
    pub fn healthy(&self) -> bool {
        self.reachable()
            && self.compatible()
            && self.db_ready()
            && self.identity_problem.is_none()
            && self.epoch_problem.is_none()
            && !self.is_dirty()
    }
}
