//! `qserv playground --layout qserv`: every node runs stand-ins for the services Qserv's layout
//! gives its role (`qserv-standin`, built beside `qserv`), started by its agent in the
//! instance's order, each listening where its readiness probe looks.

use std::path::Path;

use qserv_model::{Role, ServiceOrder};

use crate::exit::{CliError, Exit};

/// The agent config of a node of `role`: its stand-ins, with ports from `port` and their
/// starts, readiness and stops written to `events`.
pub fn agent_config(
    standin: &Path,
    node: &str,
    role: Role,
    events: &Path,
    mut port: impl FnMut() -> Result<u16, CliError>,
) -> Result<String, CliError> {
    let mut config = "service-controller = \"exec\"\n".to_owned();
    for service in ServiceOrder::the_qserv_layout().node_order(role) {
        let port = port()?;
        config.push_str(&format!(
            "\n[[services]]\nname = \"{service}\"\n\
             exec = \"exec {} --service {service} --node {node} --port {port} --events {}\"\n\
             ready = \"tcp://127.0.0.1:{port}\"\nstop-timeout = \"5s\"\n",
            standin.display(),
            events.display()
        ));
    }
    Ok(config)
}

/// The one layout the playground knows.
pub fn parse(value: &str) -> Result<qserv_model::Layout, CliError> {
    qserv_model::Layout::parse(value).map_err(|e| CliError::new(Exit::Usage, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_runs_its_three_services_each_on_a_port_of_its_own() {
        let mut next = 4000;
        let config = agent_config(
            Path::new("/bin/qserv-standin"),
            "worker-1",
            Role::Worker,
            Path::new("/tmp/ev"),
            || {
                next += 1;
                Ok(next)
            },
        )
        .unwrap_or_default();
        let parsed: toml::Table = toml::from_str(&config).unwrap_or_default();
        let services = parsed["services"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = services.iter().filter_map(|s| s["name"].as_str()).collect();
        assert_eq!(names, ["worker-xrootd", "worker-cmsd", "worker-repl"]);
        assert_eq!(services[2]["ready"].as_str(), Some("tcp://127.0.0.1:4003"));
        assert!(parse("k8s").is_err() && parse("qserv").is_ok());
    }
}
