//! The command line as clap parses it: global flags, commands and their arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::lifecycle;

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
pub struct Cli {
    /// The instance to act on, as named in the configuration file; `all` (read-only commands)
    /// for every one.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "QSERV_INSTANCE"
    )]
    pub instance: Option<String>,
    /// Configuration file [default: $XDG_CONFIG_HOME/qserv/config.toml or
    /// ~/.config/qserv/config.toml].
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "QSERV_CONFIG"
    )]
    pub config: Option<PathBuf>,
    /// Coordinator address; several, comma-separated, for coordinators sharing a store.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "QSERV_COORDINATOR",
        default_value = "http://127.0.0.1:7070"
    )]
    pub coordinator: String,
    /// Output format.
    #[arg(
        short,
        long,
        global = true,
        help_heading = "Global options",
        env = "QSERV_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    pub output: Output,
    /// Client certificate (PEM) for a coordinator that requires mutual TLS.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "QSERV_TLS_CERT"
    )]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "QSERV_TLS_KEY"
    )]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that signed the coordinator's certificate.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "QSERV_TLS_CA"
    )]
    pub tls_ca: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
        /// How long each wave of services may take to become ready (exit 4 after it, with
        /// what was started stopped again).
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        service_timeout: Duration,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Stop the services and enter maintenance mode.
    Down {
        #[command(flatten)]
        activity: ActivityArgs,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Restart the Qserv services node by node, staying in normal mode.
    Restart {
        /// Only these nodes, comma-separated [default: all, in inventory order].
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Only nodes of this role: czar, worker or repl.
        #[arg(long, value_parser = qserv_model::Role::parse)]
        role: Option<qserv_model::Role>,
        /// At most this many nodes at once.
        #[arg(long, default_value_t = 1)]
        parallel: u32,
        /// How long one node may take to come back with its services and database ready.
        #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
        node_timeout: Duration,
        /// How long a restarted node must stay up before the next one goes.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        settle: Duration,
        /// Only this service (repeat for several), on the nodes that run it, one node at a time.
        #[arg(long = "service", value_parser = parse_service)]
        services: Vec<qserv_model::ServiceName>,
        #[command(flatten)]
        activity: ActivityArgs,
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
    /// Services' configuration files: apply, diff, show, history, rollback.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
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
        /// Run stand-ins for a layout's services on every node, started in its order: qserv.
        #[arg(long, value_parser = crate::playground_layout::parse)]
        layout: Option<qserv_model::Layout>,
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

/// What `down` and `restart` do about Qserv queries executing and ingest transactions open.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ActivityArgs {
    /// Wait this long for queries and ingests to end (exit 6, nothing stopped, if they do not).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "force")]
    pub drain: Option<Duration>,
    /// Stop the services under running queries and open ingests; the audit trail records it.
    #[arg(long)]
    pub force: bool,
}

impl From<ActivityArgs> for qserv_proto::v1::ActivityPolicy {
    fn from(args: ActivityArgs) -> Self {
        qserv_proto::v1::ActivityPolicy {
            drain_ms: args.drain.map_or(0, |d| {
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
            }),
            force: args.force,
        }
    }
}

#[derive(Debug, Clone, Copy, clap::Args)]
pub struct FollowArgs {
    /// Print the job id and return instead of following the job.
    #[arg(long)]
    pub detach: bool,
    /// Queue behind a running job instead of being refused.
    #[arg(long)]
    pub wait: bool,
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
pub enum InstancesCommand {
    /// Add an instance to the configuration file, with --coordinator and the TLS flags.
    Add { name: String },
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
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
        /// Days every certificate issued is valid [default: 365 for clients, 1825 for the
        /// coordinator and agents; the CA outlives them all].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36500))]
        days: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkersCommand {
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
        #[command(flatten)]
        leaving: crate::workers::Leaving,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Unregister a worker and drop it from the inventory; --purge also drops its databases.
    Remove {
        name: String,
        #[command(flatten)]
        leaving: crate::workers::Leaving,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Take a worker out of service in the replication registry (is_enabled = 0).
    Disable {
        name: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Let a worker serve replicas but take no new ones (is_read_only = 1).
    ReadOnly {
        name: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Put a worker back in full service.
    Enable {
        name: String,
        #[command(flatten)]
        follow: FollowArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Store FILE as the service's next template version and write it, rendered on each node
    /// with its own values, to every node that runs the service: all or nothing (maintenance
    /// mode, or --rolling).
    Apply {
        #[command(flatten)]
        scope: crate::configs::ScopeArgs,
        /// The template (minijinja; the agents' secrets file values, node, role, instance).
        file: PathBuf,
        /// Why, kept with the version.
        #[arg(long, default_value = "")]
        message: String,
        /// Write and restart the service node by node; stops at the first node that does not
        /// come back, with its previous file put back (allowed in normal mode).
        #[arg(long)]
        rolling: bool,
        #[command(flatten)]
        follow: FollowArgs,
    },
    /// Print what `apply` would change on each node (secrets masked); nothing when nothing.
    Diff {
        #[command(flatten)]
        scope: crate::configs::ScopeArgs,
        file: PathBuf,
    },
    /// Print a stored template version (the latest by default).
    Show {
        #[arg(long, value_parser = parse_service)]
        service: qserv_model::ServiceName,
        #[arg(long)]
        version: Option<u32>,
    },
    /// The stored versions of a service's template.
    History {
        #[arg(long, value_parser = parse_service)]
        service: qserv_model::ServiceName,
    },
    /// Store an earlier version's text as the next version and write it, as apply does.
    Rollback {
        #[command(flatten)]
        scope: crate::configs::ScopeArgs,
        /// The version to go back to.
        #[arg(long)]
        to: u32,
        #[arg(long)]
        rolling: bool,
        #[command(flatten)]
        follow: FollowArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UpgradeCommand {
    /// Per node and module: current version, target, and the scripts that would run.
    Plan,
    /// Bring every node (or --nodes) to target, all at once (maintenance mode only).
    Apply {
        /// At most this many nodes at once [default: all].
        #[arg(long, default_value_t = 0, hide_default_value = true)]
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
pub enum JobsCommand {
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
    /// A job's log lines; with -o json one document `{"id", "lines": […]}`, or with --follow
    /// one JSON object per line as the lines come (JSON Lines).
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

fn parse_service(value: &str) -> Result<qserv_model::ServiceName, String> {
    qserv_model::ServiceName::parse(value).map_err(|e| e.to_string())
}
