//! `qserv`: the operator's command line. It talks only to the coordinator.

mod args;
mod audit;
mod certs;
mod client;
mod configs;
mod dispatch;
mod exit;
#[cfg(test)]
mod golden;
mod instances;
mod job_doc;
mod jobs;
mod json;
mod lifecycle;
mod params_doc;
mod playground;
mod playground_layout;
mod progress;
mod routing;
mod service_states;
mod status;
mod table;
mod target;
mod upgrade;
mod workers;

use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches};
use qserv_proto::v1::VersionRequest;

pub use crate::args::{
    Cli, Command, InstancesCommand, JobsCommand, Output, UpgradeCommand, WorkersCommand,
};
use crate::exit::{CliError, Exit};
use crate::target::{Flag, Flags, Selection};

/// The name of the user this process runs as, from `/etc/passwd`; `uid N` when it has none
/// (containers often run as a uid without an entry, and cron jobs without `USER`).
fn uid_user_name() -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return "unknown".to_owned();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    user_of_uid(&passwd, uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The name `passwd` (the `/etc/passwd` format) gives `uid`.
fn user_of_uid(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let uid_field = fields.nth(1)?;
        (uid_field.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// Who is asking, for the job's record: `user@host`.
pub fn caller() -> String {
    let user = std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(uid_user_name);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{user}@{}", host.trim())
}

pub use client::with_user;

#[tokio::main]
async fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let output = cli.output;
    match run(cli, &matches).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qserv: {}", err.message);
            if output == Output::Json && !err.in_output {
                let doc = json::ErrorJson {
                    error: json::ErrorBody {
                        code: err.exit.code(),
                        message: &err.message,
                    },
                };
                if let Ok(text) = json::to_json(&doc) {
                    println!("{text}");
                }
            }
            ExitCode::from(err.exit.code())
        }
    }
}

async fn run(cli: Cli, matches: &ArgMatches) -> Result<(), CliError> {
    let flags = Flags {
        instance: cli.instance.clone(),
        coordinator: Flag {
            value: cli.coordinator.clone(),
            origin: routing::origin(matches, "coordinator"),
        },
        tls_cert: Flag {
            value: cli.tls_cert.clone(),
            origin: routing::origin(matches, "tls_cert"),
        },
        tls_key: Flag {
            value: cli.tls_key.clone(),
            origin: routing::origin(matches, "tls_key"),
        },
        tls_ca: Flag {
            value: cli.tls_ca.clone(),
            origin: routing::origin(matches, "tls_ca"),
        },
    };
    let needed = cli.instance.is_some() || matches!(cli.command, Command::Instances { .. });
    let creating = matches!(
        cli.command,
        Command::Instances {
            command: Some(InstancesCommand::Add { .. }),
            ..
        }
    );
    let (config, config_path) = routing::load_config(cli.config.as_ref(), needed, creating)?;
    if let Command::Instances { timeout, command } = &cli.command {
        return routing::instances_command(
            &cli,
            &flags,
            &config,
            &config_path,
            *timeout,
            command.as_ref(),
        )
        .await;
    }
    let selection = target::select(&flags, &config, &config_path)
        .map_err(|why| CliError::new(Exit::Usage, why))?;
    let target = match selection {
        Selection::One(target) => target,
        Selection::All(all) if routing::reads_every_instance(&cli.command) => {
            return routing::every_instance(&cli, &all).await;
        }
        Selection::All(_) => {
            return Err(CliError::new(
                Exit::Usage,
                "--instance all is for status, upgrade plan and jobs list; name one instance to act on",
            ));
        }
    };
    client::configure_tls(
        target.tls_cert.clone(),
        target.tls_key.clone(),
        target.tls_ca.clone(),
    )?;
    if let Some(instance) = &target.instance {
        client::configure_instance(instance);
    }
    let cli = Cli {
        coordinator: target.urls,
        ..cli
    };
    dispatch::command(cli).await
}

/// Prints both versions; an unreachable coordinator is reported but not an error, so `version`
/// works on a machine that only has the CLI.
async fn version(coordinator: &str, output: Output) -> Result<(), CliError> {
    let server = match client::connect(coordinator).await {
        Ok(mut client) => client
            .get_version(VersionRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|s| exit::from_status(&s, coordinator)),
        Err(err) => Err(err),
    };
    match output {
        Output::Json => {
            let coordinator_json = match &server {
                Ok(v) => json::PeerVersion {
                    address: Some(coordinator),
                    version: Some(&v.version),
                    protocol_version: Some(v.protocol_version),
                    error: None,
                },
                Err(err) => json::PeerVersion {
                    address: Some(coordinator),
                    version: None,
                    protocol_version: None,
                    error: Some(&err.message),
                },
            };
            json::print(&json::VersionJson {
                client: json::PeerVersion {
                    address: None,
                    version: Some(qserv_proto::VERSION),
                    protocol_version: Some(qserv_proto::PROTOCOL_VERSION),
                    error: None,
                },
                coordinator: coordinator_json,
            })?;
        }
        Output::Table => {
            println!(
                "qserv {} (protocol {})",
                qserv_proto::VERSION,
                qserv_proto::PROTOCOL_VERSION
            );
            match &server {
                Ok(v) => println!(
                    "coordinator {} (protocol {}) at {coordinator}",
                    v.version, v.protocol_version
                ),
                Err(err) => println!("coordinator: {}", err.message),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_shows_each_default_once_and_global_options_apart() {
        let mut command = Cli::command();
        command.build();
        let apply = command
            .find_subcommand_mut("upgrade")
            .and_then(|u| u.find_subcommand_mut("apply"))
            .map(|a| a.render_help().to_string())
            .unwrap_or_default();
        let parallel = apply
            .lines()
            .find(|l| l.contains("--parallel"))
            .unwrap_or_default();
        assert_eq!(parallel.matches("[default:").count(), 1, "{parallel}");
        assert!(parallel.contains("[default: all]"), "{parallel}");
        let (own, global) = apply.split_once("Global options:").unwrap_or_default();
        assert!(
            own.contains("--fail-fast") && !own.contains("--coordinator"),
            "{apply}"
        );
        assert!(
            global.contains("--coordinator") && global.contains("--tls-cert"),
            "{apply}"
        );
    }

    #[test]
    fn restart_takes_a_known_role_and_names_the_bad_one() {
        use clap::Parser;
        let parsed = Cli::try_parse_from(["qserv", "restart", "--role", "worker"]);
        assert!(
            matches!(
                parsed.map(|c| c.command),
                Ok(Command::Restart {
                    role: Some(qserv_model::Role::Worker),
                    ..
                })
            ),
            "a known role parses to its role"
        );
        let refused = Cli::try_parse_from(["qserv", "restart", "--role", "wörker"])
            .err()
            .map(|e| (e.exit_code(), e.to_string()));
        assert!(
            refused.as_ref().is_some_and(|(code, text)| *code == 2
                && text.contains("unknown role 'wörker'")
                && text.contains("czar, worker, repl")),
            "{refused:?}"
        );
    }

    #[test]
    fn finds_the_user_of_a_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\nqserv:x:1000:1000::/home/qserv:/bin/sh\n";
        assert_eq!(user_of_uid(passwd, 1000).as_deref(), Some("qserv"));
        assert_eq!(user_of_uid(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_of_uid(passwd, 42), None);
    }
}
