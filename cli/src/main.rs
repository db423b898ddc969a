//! `qserv`: the operator's command line. It talks only to the coordinator.

mod audit;
mod certs;
mod client;
mod exit;
mod instances;
mod jobs;
mod lifecycle;
mod playground;
mod progress;
mod routing;
mod status;
mod table;
mod target;
mod upgrade;
mod workers;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use qserv_proto::v1::VersionRequest;

use crate::exit::{CliError, Exit};
use crate::target::{Flag, Flags, Selection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, Parser)]
#[command(
    name = "qserv",
    version,
    about = "Operate a Qserv instance through its coordinator"
)]
struct Cli {
    /// The instance to act on, as named in the configuration file; `all` (read-only commands)
    /// for every one.
    #[arg(long, global = true, env = "QSERV_INSTANCE")]
    instance: Option<String>,
    /// Configuration file [default: $XDG_CONFIG_HOME/qserv/config.toml or
    /// ~/.config/qserv/config.toml].
    #[arg(long, global = true, env = "QSERV_CONFIG")]
    config: Option<PathBuf>,
    /// Coordinator address; several, comma-separated, for coordinators sharing a store.
    #[arg(
        long,
        global = true,
        env = "QSERV_COORDINATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    coordinator: String,
    /// Output format.
    #[arg(
        short,
        long,
        global = true,
        env = "QSERV_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    output: Output,
    /// Client certificate (PEM) for a coordinator that requires mutual TLS.
    #[arg(long, global = true, env = "QSERV_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, global = true, env = "QSERV_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// CA (PEM) that signed the coordinator's certificate.
    #[arg(long, global = true, env = "QSERV_TLS_CA")]
    tls_ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the instance's mode, health and every node.
    Status {
        /// Keep showing the status as it changes.
        #[arg(long)]
        watch: bool,
    },
    /// Install the instance: accounts, schemas, worker registry; ends in maintenance mode.
    Install {
        /// Instance spec (TOML); without it, the inventory the coordinator already holds.
        #[arg(long)]
        spec: Option<PathBuf>,
        /// Take over an instance that is already installed; changes nothing in its databases.
        #[arg(long)]
        adopt: bool,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Wait until every node is available, then enter normal mode and start services.
    Up {
        /// Give up after this long (exit 6), e.g. 90s, 10m.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Stop the services and enter maintenance mode.
    Down {
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Restart the Qserv services node by node, staying in normal mode.
    Restart {
        /// Only these nodes, comma-separated [default: all, in inventory order].
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Only nodes of this role: czar, worker or repl.
        #[arg(long)]
        role: Option<String>,
        /// At most this many nodes at once.
        #[arg(long, default_value_t = 1)]
        parallel: u32,
        /// How long one node may take to come back with its services and database ready.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        node_timeout: Duration,
        /// How long a restarted node must stay up before the next one goes.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        settle: Duration,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Drop every Qserv database and service account of the instance and forget it.
    Delete {
        /// The instance's name, repeated to confirm.
        #[arg(long, value_name = "INSTANCE_NAME")]
        confirm: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Workers: list, add, remove, replace (changes in maintenance mode only).
    Workers {
        #[command(subcommand)]
        command: WorkersCommand,
    },
    /// Schema upgrades: plan, apply, repair.
    Upgrade {
        #[command(subcommand)]
        command: UpgradeCommand,
    },
    /// Jobs: list, show, logs, cancel, wait.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
    /// Start a whole local instance on loopback, install it and bring it up.
    Playground {
        /// Number of workers.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Directory for data and logs [default: a new directory under /tmp, removed at exit].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Number of instances (data releases dr1, dr2, …), each with its own coordinator.
        #[arg(long, default_value_t = 1)]
        instances: u32,
    },
    /// The audit trail: who asked for what, when, and what came of it.
    Audit {
        /// Only entries newer than this, e.g. 1h, 7d.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
        since: Duration,
        /// At most this many entries, the newest.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Certificates for mutual TLS.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Every configured instance side by side: mode, health, epoch, active job, schema.
    Instances {
        /// How long each instance may take to answer.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(subcommand)]
        command: Option<InstancesCommand>,
    },
    /// Show the versions of this CLI and of the coordinator.
    Version,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, clap::Args)]
struct FollowArgs {
    /// Print the job id and return instead of following the job.
    #[arg(long)]
    detach: bool,
    /// Queue behind a running job instead of being refused.
    #[arg(long)]
    wait: bool,
}

impl From<FollowArgs> for lifecycle::Follow {
    fn from(args: FollowArgs) -> Self {
        lifecycle::Follow {
            detach: args.detach,
            wait: args.wait,
        }
    }
}

#[derive(Debug, Subcommand)]
enum InstancesCommand {
    /// Add an instance to the configuration file, with --coordinator and the TLS flags.
    Add { name: String },
}

#[derive(Debug, Subcommand)]
enum CertsCommand {
    /// Write a CA and the certificates of the coordinator, agents and clients into DIR.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Host names and addresses of the coordinator, comma-separated.
        #[arg(long)]
        coordinator: String,
        /// NAME=HOST[,HOST…] for each agent.
        #[arg(long)]
        agent: Vec<String>,
        /// NAME:ROLE client certificates [default: operator:operator and viewer:viewer].
        #[arg(long)]
        client: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
enum WorkersCommand {
    /// Every worker: ids, registration, readiness; and registry rows no node explains.
    List,
    /// Add the worker nodes of a spec: accounts, schemas, registration.
    Add {
        #[arg(long)]
        spec: PathBuf,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Swap a worker for a new one in one job: the new one joins (schema, id, registration),
    /// then the old one leaves the registry and the inventory.
    Replace {
        /// The worker leaving.
        old: String,
        /// A spec holding the one new worker node.
        #[arg(long)]
        spec: PathBuf,
        /// Also drop the old worker's databases and accounts, when its agent answers.
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Unregister a worker and drop it from the inventory; --purge also drops its databases.
    Remove {
        name: String,
        #[arg(long)]
        purge: bool,
        #[command(flatten)]
        follow: FollowArgs,
    },
}

#[derive(Debug, Subcommand)]
enum UpgradeCommand {
    /// Per node and module: current version, target, and the scripts that would run.
    Plan,
    /// Bring every node (or --nodes) to target, all at once (maintenance mode only).
    Apply {
        /// At most this many nodes at once [default: all].
        #[arg(long, default_value_t = 0)]
        parallel: u32,
        /// Only these nodes, comma-separated.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Start no further node once one failed.
        #[arg(long)]
        fail_fast: bool,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Mark a dirty database repaired at a version after fixing it by hand.
    Repair {
        node: String,
        #[arg(long)]
        module: String,
        /// The version the database is at now that it was fixed by hand.
        #[arg(long, allow_negative_numbers = true)]
        version: i64,
        /// What was fixed and how; recorded on the node and in the audit trail with your name.
        #[arg(long, default_value = "")]
        reason: String,
        /// Repair a database that is not dirty (sets its version only).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        follow: FollowArgs,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// The most recent jobs.
    List {
        /// At most this many jobs, the newest.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only jobs created within this, e.g. 1h, 7d.
        #[arg(long, value_parser = humantime::parse_duration)]
        since: Option<Duration>,
    },
    /// One job: steps, nodes, error.
    Show { id: String },
    /// A job's log lines.
    Logs {
        id: String,
        /// Keep printing new lines until the job ends.
        #[arg(long)]
        follow: bool,
        /// Only the last this many lines (then new ones with --follow).
        #[arg(long)]
        limit: Option<u32>,
    },
    /// Ask a job to stop at its next step boundary or wait.
    Cancel { id: String },
    /// Follow a job to its end; exits like the command that started it.
    Wait { id: String },
}

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
                let doc =
                    serde_json::json!({"error": {"code": err.exit.code(), "message": err.message}});
                println!("{doc}");
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
    match cli.command {
        Command::Audit { since, limit } => {
            audit::run(&cli.coordinator, cli.output, since, limit).await
        }
        Command::Certs {
            command:
                CertsCommand::Init {
                    dir,
                    coordinator,
                    agent,
                    client,
                },
        } => certs::init(&dir, &coordinator, &agent, &client),
        Command::Status { watch } => status::run(&cli.coordinator, cli.output, watch).await,
        Command::Version => version(&cli.coordinator, cli.output).await,
        Command::Playground {
            workers,
            dir,
            instances,
        } => playground::run(workers, instances, dir).await,
        Command::Install {
            spec,
            adopt,
            follow,
        } => {
            let mutation = lifecycle::Mutation::Install {
                spec: spec.as_deref(),
                adopt,
            };
            lifecycle::run(&cli.coordinator, cli.output, mutation, follow.into()).await
        }
        Command::Up { timeout, follow } => {
            lifecycle::run(
                &cli.coordinator,
                cli.output,
                lifecycle::Mutation::Up { timeout },
                follow.into(),
            )
            .await
        }
        Command::Down { follow } => {
            lifecycle::run(
                &cli.coordinator,
                cli.output,
                lifecycle::Mutation::Down,
                follow.into(),
            )
            .await
        }
        Command::Restart {
            nodes,
            role,
            parallel,
            node_timeout,
            settle,
            follow,
        } => {
            let args = lifecycle::RestartArgs {
                nodes,
                role,
                parallel,
                node_timeout,
                settle,
            };
            lifecycle::restart(&cli.coordinator, cli.output, args, follow.into()).await
        }
        Command::Delete { confirm, follow } => {
            let mutation = lifecycle::Mutation::Delete { confirm: &confirm };
            lifecycle::run(&cli.coordinator, cli.output, mutation, follow.into()).await
        }
        Command::Workers { command } => match command {
            WorkersCommand::List => workers::list(&cli.coordinator, cli.output).await,
            WorkersCommand::Add { spec, follow } => {
                workers::add(&cli.coordinator, cli.output, &spec, follow.into()).await
            }
            WorkersCommand::Replace {
                old,
                spec,
                purge,
                follow,
            } => {
                workers::replace(
                    &cli.coordinator,
                    cli.output,
                    &old,
                    &spec,
                    purge,
                    follow.into(),
                )
                .await
            }
            WorkersCommand::Remove {
                name,
                purge,
                follow,
            } => workers::remove(&cli.coordinator, cli.output, &name, purge, follow.into()).await,
        },
        Command::Upgrade { command } => match command {
            UpgradeCommand::Plan => upgrade::plan(&cli.coordinator, cli.output).await,
            UpgradeCommand::Apply {
                parallel,
                nodes,
                fail_fast,
                follow,
            } => {
                let args = upgrade::ApplyArgs {
                    parallel,
                    nodes,
                    fail_fast,
                };
                upgrade::apply(&cli.coordinator, cli.output, args, follow.into()).await
            }
            UpgradeCommand::Repair {
                node,
                module,
                version,
                reason,
                force,
                follow,
            } => {
                let repair = upgrade::Repair {
                    node,
                    module,
                    version,
                    reason,
                    force,
                };
                upgrade::repair(&cli.coordinator, cli.output, repair, follow.into()).await
            }
        },
        Command::Jobs { command } => {
            let coordinator = cli.coordinator.as_str();
            let mut client = client::connect(coordinator).await?;
            match command {
                JobsCommand::List { limit, since } => {
                    jobs::list(&mut client, coordinator, cli.output, limit, since).await
                }
                JobsCommand::Show { id } => {
                    jobs::show(&mut client, coordinator, &id, cli.output).await
                }
                JobsCommand::Logs { id, follow, limit } => {
                    let page = jobs::LogPage {
                        follow,
                        limit: limit.unwrap_or(0),
                    };
                    jobs::logs(&mut client, coordinator, &id, page, cli.output).await
                }
                JobsCommand::Cancel { id } => jobs::cancel(coordinator, &id, cli.output).await,
                JobsCommand::Wait { id } => {
                    let job =
                        jobs::follow(&mut client, coordinator, &id, cli.output, false).await?;
                    jobs::report(&job, cli.output)
                }
            }
        }
        Command::Instances { .. } => Ok(()),
        Command::Completions { shell } => {
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "qserv", &mut out);
            out.flush()
                .map_err(|e| CliError::new(Exit::Other, format!("cannot write to stdout: {e}")))
        }
    }
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
                Ok(v) => {
                    serde_json::json!({"address": coordinator, "version": v.version, "protocol_version": v.protocol_version})
                }
                Err(err) => serde_json::json!({"address": coordinator, "error": err.message}),
            };
            println!(
                "{}",
                serde_json::json!({
                    "client": {"version": qserv_proto::VERSION, "protocol_version": qserv_proto::PROTOCOL_VERSION},
                    "coordinator": coordinator_json,
                })
            );
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
    fn finds_the_user_of_a_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\nqserv:x:1000:1000::/home/qserv:/bin/sh\n";
        assert_eq!(user_of_uid(passwd, 1000).as_deref(), Some("qserv"));
        assert_eq!(user_of_uid(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_of_uid(passwd, 42), None);
    }
}
