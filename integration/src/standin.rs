//! Stand-ins for Qserv's services (the `qserv-standin` binary) and what they wrote down: tests
//! and benchmarks give every agent of a cluster Qserv's layout of services, then read when each
//! started, became ready and stopped.

use std::path::{Path, PathBuf};

use qserv_model::{Role, ServiceOrder};

use crate::{Cluster, binaries, free_port};

/// What a stand-in wrote down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Start,
    Ready,
    Stop,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: Kind,
    pub service: String,
    pub node: String,
    pub at_ns: u128,
}

/// Every event of the file, in the order written.
pub fn events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let kind = match words.next()? {
                "start" => Kind::Start,
                "ready" => Kind::Ready,
                "stop" => Kind::Stop,
                _ => return None,
            };
            Some(Event {
                kind,
                service: words.next()?.to_owned(),
                node: words.next()?.to_owned(),
                at_ns: words.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// How one stand-in behaves beyond the defaults (ready at once, runs until stopped).
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    pub ready_after_ms: u64,
    pub exit_at_start: Option<u8>,
    /// Dies on its own this long after it became ready.
    pub exit_after_ms: Option<u64>,
    /// Started by someone else: the agent's entry has neither `exec` nor `unit`.
    pub external: bool,
}

/// One stand-in of a node.
#[derive(Debug, Clone)]
pub struct StandIn {
    pub service: String,
    pub node: String,
    pub port: u16,
    pub behaviour: Behaviour,
}

impl StandIn {
    /// The command line that runs it.
    pub fn command(&self, events: &Path) -> String {
        let mut command = format!(
            "exec {} --service {} --node {} --port {} --events {}",
            binaries::path("qserv-standin").display(),
            self.service,
            self.node,
            self.port,
            events.display()
        );
        if self.behaviour.ready_after_ms > 0 {
            command.push_str(&format!(" --ready-after {}", self.behaviour.ready_after_ms));
        }
        if let Some(code) = self.behaviour.exit_at_start {
            command.push_str(&format!(" --exit-at-start {code}"));
        }
        if let Some(ms) = self.behaviour.exit_after_ms {
            command.push_str(&format!(" --exit-after {ms}"));
        }
        command
    }
}

/// Qserv's layout on a cluster: every agent runs stand-ins for its role's services (exec
/// controller, a TCP readiness probe each), and the spec says `layout = "qserv"`.
#[derive(Debug)]
pub struct QservLayout {
    pub events: PathBuf,
    pub standins: Vec<StandIn>,
}

impl QservLayout {
    /// Gives every agent of `cluster` its stand-ins, `behave` choosing how each behaves, and
    /// restarts the agents and the coordinator (with the spec naming the layout).
    pub fn apply(cluster: &mut Cluster, behave: impl Fn(&str, &str) -> Behaviour) -> QservLayout {
        let events = cluster.dir().join("services.events");
        let order = ServiceOrder::the_qserv_layout();
        let mut standins = Vec::new();
        for agent in &mut cluster.agents {
            let role = Role::parse(&agent.role).unwrap_or_else(|e| panic!("{e}"));
            let mut config = "service-controller = \"exec\"\n".to_owned();
            for name in order.node_order(role) {
                let standin = StandIn {
                    service: name.to_string(),
                    node: agent.name.clone(),
                    port: free_port(),
                    behaviour: behave(&agent.name, name.as_str()),
                };
                config.push_str(&entry(&standin, &events));
                standins.push(standin);
            }
            let path = agent.dir().join("agent.toml");
            std::fs::write(&path, config).unwrap_or_else(|e| panic!("cannot write {path:?}: {e}"));
            agent.set_args(&["--config", &path.display().to_string()]);
            agent.restart();
        }
        let spec = cluster.dir().join("spec.toml");
        let text = std::fs::read_to_string(&spec).unwrap_or_default();
        std::fs::write(&spec, format!("layout = \"qserv\"\n{text}"))
            .unwrap_or_else(|e| panic!("cannot write the spec: {e}"));
        cluster.coordinator.restart();
        QservLayout { events, standins }
    }

    pub fn events(&self) -> Vec<Event> {
        events(&self.events)
    }

    pub fn standin(&self, node: &str, service: &str) -> &StandIn {
        self.standins
            .iter()
            .find(|s| s.node == node && s.service == service)
            .unwrap_or_else(|| panic!("no stand-in {service} on {node}"))
    }
}

/// One `[[services]]` entry of an agent's config.
fn entry(standin: &StandIn, events: &Path) -> String {
    let launch = if standin.behaviour.external {
        String::new()
    } else {
        format!("exec = \"{}\"\n", standin.command(events))
    };
    format!(
        "\n[[services]]\nname = \"{}\"\n{launch}ready = \"tcp://127.0.0.1:{}\"\nstop-timeout = \"5s\"\n",
        standin.service, standin.port
    )
}
