//! The services this node runs (DESIGN §15), as its config file declares them: how each is
//! launched, how its readiness is probed, how long it gets to stop. Pure parsing and checks;
//! the controllers run what this decides.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use qserv_model::{Role, ServiceName};
use serde::Deserialize;

/// Who starts the node's services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControllerChoice {
    /// Someone else (containers, units the agent does not own); the agent only probes.
    None,
    /// The agent, as child processes in their own process groups.
    Exec,
    /// The agent, through `systemctl`.
    Systemd,
}

impl ControllerChoice {
    pub fn parse(value: &str) -> Result<ControllerChoice, ServiceDefError> {
        match value {
            "none" => Ok(ControllerChoice::None),
            "exec" => Ok(ControllerChoice::Exec),
            "systemd" => Ok(ControllerChoice::Systemd),
            other => Err(ServiceDefError(format!(
                "unknown service controller '{other}': expected none, exec or systemd"
            ))),
        }
    }
}

/// How a service is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// `sh -c COMMAND` in its own process group.
    Exec(String),
    /// A systemd unit.
    Unit(String),
    /// Started by someone else, who waits on `qserv-agent gate --service`.
    External,
}

/// How the agent knows a service serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// No probe: running is ready.
    Running,
    /// A TCP connection is accepted.
    Tcp { host: String, port: u16 },
    /// `GET` answers 2xx.
    Http {
        host: String,
        port: u16,
        path: String,
    },
}

/// One service, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDef {
    pub name: ServiceName,
    pub launch: Launch,
    pub ready: Readiness,
    /// Between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// Where Qserv's `/meta/version` answers (DESIGN §18); kept for the upgrade checks.
    pub version: Option<String>,
    /// The service's configuration file (DESIGN §17); kept for reconfiguration.
    pub config: Option<PathBuf>,
}

/// A `[[services]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawService {
    pub name: String,
    pub exec: Option<String>,
    pub unit: Option<String>,
    pub ready: Option<String>,
    pub version: Option<String>,
    pub config: Option<PathBuf>,
    pub stop_timeout: Option<String>,
}

/// The single-service flags of earlier versions (`--service-cmd`, `--service-unit`).
#[derive(Debug, Clone, Default)]
pub struct SingleService {
    pub command: Option<String>,
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ServiceDefError(pub String);

fn refuse<T>(text: String) -> Result<T, ServiceDefError> {
    Err(ServiceDefError(text))
}

/// The node's services: the `[[services]]` entries, or the single-service flags as one service
/// named after the role.
pub fn definitions(
    choice: ControllerChoice,
    role: Role,
    single: SingleService,
    raw: Vec<RawService>,
    default_stop: Duration,
) -> Result<Vec<ServiceDef>, ServiceDefError> {
    if raw.is_empty() {
        return single_service(choice, role, single, default_stop);
    }
    if single.command.is_some() || single.unit.is_some() {
        return refuse(
            "both --service-cmd/--service-unit and [[services]] are given: declare every service in [[services]] and drop the flag".to_owned(),
        );
    }
    let mut seen = HashSet::new();
    let mut defs = Vec::with_capacity(raw.len());
    for entry in raw {
        let def = definition(choice, entry, default_stop)?;
        if !seen.insert(def.name.clone()) {
            return refuse(format!("service '{}' is declared twice", def.name));
        }
        defs.push(def);
    }
    Ok(defs)
}

fn single_service(
    choice: ControllerChoice,
    role: Role,
    single: SingleService,
    stop_timeout: Duration,
) -> Result<Vec<ServiceDef>, ServiceDefError> {
    let launch = match (choice, single.command, single.unit) {
        (ControllerChoice::None, None, None) => return Ok(Vec::new()),
        (ControllerChoice::Exec, Some(command), None) => Launch::Exec(command),
        (ControllerChoice::Systemd, None, Some(unit)) => Launch::Unit(unit),
        (ControllerChoice::Exec, None, _) => {
            return refuse(
                "service-cmd is required by the exec controller: pass --service-cmd or declare [[services]] in the config file".to_owned(),
            );
        }
        (ControllerChoice::Systemd, _, None) => {
            return refuse(
                "service-unit is required by the systemd controller: pass --service-unit or declare [[services]] in the config file".to_owned(),
            );
        }
        _ => {
            return refuse(
                "--service-cmd goes with --service-controller exec, --service-unit with systemd, and neither with none".to_owned(),
            );
        }
    };
    let name = ServiceName::parse(role.name()).map_err(|e| ServiceDefError(e.to_string()))?;
    Ok(vec![ServiceDef {
        name,
        launch,
        ready: Readiness::Running,
        stop_timeout,
        version: None,
        config: None,
    }])
}

fn definition(
    choice: ControllerChoice,
    raw: RawService,
    default_stop: Duration,
) -> Result<ServiceDef, ServiceDefError> {
    let name = ServiceName::parse(&raw.name).map_err(|e| ServiceDefError(e.to_string()))?;
    let launch = match (raw.exec, raw.unit) {
        (Some(_), Some(_)) => {
            return refuse(format!(
                "service '{name}' has both exec and unit: give one, or neither for a service started by someone else"
            ));
        }
        (Some(command), None) if choice == ControllerChoice::Exec => {
            if command.trim().is_empty() {
                return refuse(format!("service '{name}' has an empty exec command"));
            }
            Launch::Exec(command)
        }
        (None, Some(unit)) if choice == ControllerChoice::Systemd => {
            if unit.trim().is_empty() || unit.chars().any(char::is_whitespace) {
                return refuse(format!("service '{name}' has no valid unit name: '{unit}'"));
            }
            Launch::Unit(unit)
        }
        (Some(_), None) => {
            return refuse(format!(
                "service '{name}' has exec, which needs service-controller = \"exec\""
            ));
        }
        (None, Some(_)) => {
            return refuse(format!(
                "service '{name}' has unit, which needs service-controller = \"systemd\""
            ));
        }
        (None, None) => Launch::External,
    };
    let ready = match raw.ready.as_deref() {
        None => Readiness::Running,
        Some(text) => readiness(text).map_err(|why| {
            ServiceDefError(format!(
                "service '{name}' has an invalid ready probe: {why}"
            ))
        })?,
    };
    let stop_timeout = match raw.stop_timeout.as_deref() {
        None => default_stop,
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            ServiceDefError(format!(
                "service '{name}' has an invalid stop-timeout '{text}': {e}"
            ))
        })?,
    };
    Ok(ServiceDef {
        name,
        launch,
        ready,
        stop_timeout,
        version: raw.version,
        config: raw.config,
    })
}

/// `tcp://HOST:PORT` or `http://HOST[:PORT]/PATH`.
pub fn readiness(text: &str) -> Result<Readiness, String> {
    let expected = "expected tcp://HOST:PORT or http://HOST[:PORT]/PATH";
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(format!("'{text}' has no scheme; {expected}"));
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(format!("'{text}' holds user information; {expected}"));
    }
    let default_port = match scheme {
        "tcp" if path.is_empty() || path == "/" => None,
        "tcp" => {
            return Err(format!(
                "'{text}' has a path, which TCP has not; {expected}"
            ));
        }
        "http" => Some(80),
        "https" => {
            return Err(format!(
                "'{text}': https probes are not supported; probe the port with tcp://HOST:PORT"
            ));
        }
        other => return Err(format!("unknown scheme '{other}'; {expected}")),
    };
    let (host, port) =
        host_port(authority, default_port).map_err(|why| format!("'{text}': {why}"))?;
    Ok(match scheme {
        "tcp" => Readiness::Tcp { host, port },
        _ => Readiness::Http {
            host,
            port,
            path: if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            },
        },
    })
}

/// `host:port`, `[v6]:port` or, with a default port, `host`. A host is a name of letters,
/// digits, `-`, `.` and `_`, an IPv4 address, or an IPv6 address in brackets.
fn host_port(authority: &str, default_port: Option<u16>) -> Result<(String, u16), String> {
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, rest) = v6.split_once(']').ok_or("an unclosed '[' in the address")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{host}' in brackets is not an IPv6 address"));
        }
        let port = match rest {
            "" => None,
            _ => Some(
                rest.strip_prefix(':')
                    .ok_or("text after the ']' of the address")?,
            ),
        };
        (host, port)
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        let name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
        if host.is_empty() || !host.chars().all(name) {
            return Err(
                "no valid host: use a name, an IPv4 address or [an IPv6 address]".to_owned(),
            );
        }
        (host, port)
    };
    let port = match (port, default_port) {
        (Some(text), _) => text
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port '{text}'"))?,
        (None, Some(port)) => port,
        (None, None) => return Err("no port".to_owned()),
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
