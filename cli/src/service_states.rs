//! A node's services as `status` shows them (DESIGN §15): one JSON object per service, the
//! `ready/total` column of the table, and the lines that say which failed and why.

use qserv_model::ServiceState;
use qserv_proto::v1::ServiceStatus;
use serde::Serialize;

use crate::json::non_empty;

#[derive(Debug, Serialize)]
pub struct ServiceStateJson {
    pub name: String,
    /// stopped | starting | ready | running | failed | external
    pub state: &'static str,
    pub since_ms: i64,
    pub exit_code: Option<i32>,
    pub detail: Option<String>,
    /// Started by someone else: the agent cannot start or stop it.
    pub external: bool,
    /// The configuration template version its file was last written from; null for none.
    pub config_version: Option<u32>,
    /// The file on disk is not what was last written (a hand edit), or is gone.
    pub config_drift: bool,
}

/// A service this client cannot read (a newer agent's state) is shown as failed with why.
pub fn to_json(wire: &[ServiceStatus]) -> Vec<ServiceStateJson> {
    wire.iter()
        .map(|s| {
            let state = qserv_proto::model::service_state(s.state);
            ServiceStateJson {
                name: s.name.clone(),
                state: state.map_or("unknown", ServiceState::name),
                since_ms: s.since_ms,
                exit_code: s.exit_code,
                detail: non_empty(&s.detail),
                external: s.external,
                config_version: (s.config_version > 0).then_some(s.config_version),
                config_drift: s.config_drift,
            }
        })
        .collect()
}

/// The table's SERVICES cell: `ready/total` when the node declares services, else the summary.
pub fn cell(summary: &str, services: &[ServiceStateJson]) -> String {
    if services.is_empty() {
        return summary.to_owned();
    }
    let ready = services
        .iter()
        .filter(|s| ServiceState::parse(s.state).is_ok_and(ServiceState::is_ready))
        .count();
    format!("{ready}/{}", services.len())
}

/// One line per failed service: its name and the first line of why.
pub fn failures(node: &str, services: &[ServiceStateJson]) -> Vec<String> {
    services
        .iter()
        .filter(|s| s.state == ServiceState::Failed.name())
        .map(|s| {
            let why = s
                .detail
                .as_deref()
                .and_then(|d| d.lines().next())
                .unwrap_or("no reason given");
            let code = s
                .exit_code
                .map(|c| format!(" (exit code {c})"))
                .unwrap_or_default();
            format!("{node}: service {} failed{code}: {why}", s.name)
        })
        .collect()
}

/// One line per service whose configuration file is not what was last written.
pub fn drifted(node: &str, services: &[ServiceStateJson]) -> Vec<String> {
    services
        .iter()
        .filter(|s| s.config_drift)
        .map(|s| {
            let version = s
                .config_version
                .map_or_else(String::new, |v| format!(" (version {v})"));
            format!(
                "{node}: service {} config drifted: its file is not what the agent last wrote{version}",
                s.name
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use qserv_proto::v1::ServiceRunState;

    use super::*;

    fn wire(name: &str, state: ServiceRunState) -> ServiceStatus {
        ServiceStatus {
            name: name.to_owned(),
            state: state.into(),
            ..ServiceStatus::default()
        }
    }

    #[test]
    fn the_cell_counts_ready_services_and_failures_name_theirs() {
        let mut failed = wire("worker-cmsd", ServiceRunState::Failed);
        failed.exit_code = Some(3);
        failed.detail = "it exited (exit status: 3); last output:\ncannot bind 2131".to_owned();
        let services = to_json(&[
            wire("worker-xrootd", ServiceRunState::Ready),
            failed,
            wire("worker-repl", ServiceRunState::External),
        ]);
        assert_eq!(cell("starting", &services), "2/3");
        assert_eq!(cell("none", &[]), "none");
        assert_eq!(
            failures("worker-2", &services),
            [
                "worker-2: service worker-cmsd failed (exit code 3): it exited (exit status: 3); last output:"
            ]
        );
        assert!(drifted("worker-2", &services).is_empty());
        let mut edited = wire("czar-http", ServiceRunState::Ready);
        edited.config_version = 3;
        edited.config_drift = true;
        assert_eq!(
            drifted("czar-0", &to_json(&[edited])),
            [
                "czar-0: service czar-http config drifted: its file is not what the agent last wrote (version 3)"
            ]
        );
        let unknown = to_json(&[ServiceStatus {
            state: 42,
            ..wire("x", ServiceRunState::Ready)
        }]);
        assert_eq!(unknown[0].state, "unknown");
    }
}
