//! A Qserv service on a node (DESIGN §15): its name, and what its agent knows of it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::UnknownName;
use crate::name::{InvalidName, validate_name};

/// The name of a service, as Qserv's `entrypoint` calls it (`worker-xrootd`, `proxy`, …).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    pub fn parse(value: &str) -> Result<ServiceName, InvalidName> {
        validate_name("service", value)?;
        Ok(ServiceName(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = InvalidName;
    fn try_from(value: String) -> Result<ServiceName, InvalidName> {
        validate_name("service", &value)?;
        Ok(ServiceName(value))
    }
}

impl From<ServiceName> for String {
    fn from(value: ServiceName) -> String {
        value.0
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where one service is in its life, as its agent sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ServiceState {
    /// Not running (the mode does not want it, or its turn has not come).
    #[default]
    Stopped,
    /// Started; its readiness probe has not answered yet.
    Starting,
    /// Started and its readiness probe answers.
    Ready,
    /// Started, with no readiness probe: running is all that can be known.
    Running,
    /// Exited, or never became ready; `detail` says why.
    Failed,
    /// Started by someone else (a container) and without a readiness probe: the agent cannot
    /// tell whether it runs. Nothing can be waited on, so it counts as ready for the order.
    External,
}

impl ServiceState {
    pub const ALL: [ServiceState; 6] = [
        ServiceState::Stopped,
        ServiceState::Starting,
        ServiceState::Ready,
        ServiceState::Running,
        ServiceState::Failed,
        ServiceState::External,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ServiceState::Stopped => "stopped",
            ServiceState::Starting => "starting",
            ServiceState::Ready => "ready",
            ServiceState::Running => "running",
            ServiceState::Failed => "failed",
            ServiceState::External => "external",
        }
    }

    pub fn parse(value: &str) -> Result<ServiceState, UnknownName> {
        ServiceState::ALL
            .into_iter()
            .find(|s| s.name() == value)
            .ok_or_else(|| UnknownName {
                kind: "service state",
                value: value.to_owned(),
                expected: "stopped, starting, ready, running, failed, external",
            })
    }

    /// Whether a service that comes after this one may start.
    pub fn is_ready(self) -> bool {
        matches!(
            self,
            ServiceState::Ready | ServiceState::Running | ServiceState::External
        )
    }
}

impl std::fmt::Display for ServiceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One service as its agent last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: ServiceName,
    pub state: ServiceState,
    /// When it entered that state (ms since the epoch).
    pub since_ms: i64,
    /// The exit code of a service that exited; `None` while it runs or when a signal ended it.
    pub exit_code: Option<i32>,
    /// Why it failed or is not ready (a probe error, the last lines of its output with secrets
    /// removed); empty when there is nothing to say.
    pub detail: String,
    /// Started by someone else (a container): the agent probes it but cannot start or stop it.
    pub external: bool,
    /// The template version last written to its config file.
    pub config_version: Option<u32>,
    /// The file on disk is not what was last written (a hand edit), or is gone.
    pub config_drift: bool,
}

impl ServiceStatus {
    pub fn new(name: ServiceName, state: ServiceState, since_ms: i64) -> ServiceStatus {
        ServiceStatus {
            name,
            state,
            since_ms,
            exit_code: None,
            detail: String::new(),
            external: false,
            config_version: None,
            config_drift: false,
        }
    }
}

/// Which of a node's services may run while it holds `normal`. `up` releases them wave by wave
/// (DESIGN §15) and `down` withdraws them in reverse; a node that finished `up` runs them all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Release {
    /// Every service the node defines.
    #[default]
    All,
    /// These only (and so none, when empty).
    Only(BTreeSet<ServiceName>),
}

impl Release {
    pub fn none() -> Release {
        Release::Only(BTreeSet::new())
    }

    pub fn allows(&self, name: &ServiceName) -> bool {
        match self {
            Release::All => true,
            Release::Only(names) => names.contains(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_take_the_node_alphabet_only() {
        assert!(ServiceName::parse("worker-xrootd").is_ok());
        assert!(ServiceName::parse("czar_http.2").is_ok());
        for bad in ["", "a b", "x;rm", "é", &"a".repeat(65)] {
            assert!(ServiceName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn service_states_keep_their_names() {
        for state in ServiceState::ALL {
            assert_eq!(ServiceState::parse(state.name()).ok(), Some(state));
        }
        assert!(ServiceState::parse("up").is_err());
        let ready: Vec<_> = ServiceState::ALL
            .into_iter()
            .filter(|s| s.is_ready())
            .collect();
        assert_eq!(
            ready,
            [
                ServiceState::Ready,
                ServiceState::Running,
                ServiceState::External
            ]
        );
    }

    #[test]
    fn a_release_allows_all_or_the_names_it_holds() {
        let proxy = ServiceName::parse("proxy").unwrap_or_else(|e| panic!("{e}"));
        assert!(Release::All.allows(&proxy));
        assert!(!Release::none().allows(&proxy));
        assert!(Release::Only([proxy.clone()].into()).allows(&proxy));
    }
}
