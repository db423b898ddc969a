//! How the global flags, the configuration file and `--instance` become what a command talks
//! to; `qserv instances`, and read-only commands run for every instance.

use std::path::PathBuf;
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use qserv_cli::config::{self, Config};

use crate::exit::{CliError, Exit};
use crate::target::{self, Flags, Origin, Selection, Target};
use crate::{
    Cli, Command, InstancesCommand, JobsCommand, UpgradeCommand, instances, jobs, status, upgrade,
};

/// Where a global flag's value came from.
pub fn origin(matches: &ArgMatches, id: &str) -> Origin {
    if matches.value_source(id) == Some(ValueSource::CommandLine) {
        return Origin::CommandLine;
    }
    // A global flag typed after the subcommand is recorded there.
    let mut current = matches;
    while let Some((_, sub)) = current.subcommand() {
        if sub.value_source(id) == Some(ValueSource::CommandLine) {
            return Origin::CommandLine;
        }
        current = sub;
    }
    match matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Origin::Environment,
        _ => Origin::Default,
    }
}

/// The configuration file of this user's environment (XDG), when it has a home.
fn default_config_path() -> Option<PathBuf> {
    config::default_path(
        std::env::var("XDG_CONFIG_HOME").ok().as_deref(),
        std::env::var("HOME").ok().as_deref(),
    )
}

/// The configuration file and its path as shown in messages. A file named with --config must
/// exist, unless `creating` it; the default one may be missing. A broken file only matters to a
/// command that needs it (`needed`); others warn and go on.
pub fn load_config(
    path: Option<&PathBuf>,
    needed: bool,
    creating: bool,
) -> Result<(Config, String), CliError> {
    let (path, optional) = match path {
        Some(path) => (Some(path.clone()), creating),
        None => (default_config_path(), true),
    };
    let Some(path) = path else {
        return Ok((
            Config::default(),
            "(no configuration file: HOME is not set)".to_owned(),
        ));
    };
    let shown = path.display().to_string();
    match Config::load(&path, optional) {
        Ok(config) => Ok((config, shown)),
        Err(err) if needed => Err(CliError::new(Exit::Usage, err.to_string())),
        Err(err) => {
            eprintln!("qserv: warning: {err}");
            Ok((Config::default(), shown))
        }
    }
}

/// Commands that accept `--instance all`.
pub fn reads_every_instance(command: &Command) -> bool {
    matches!(
        command,
        Command::Status { watch: false }
            | Command::Instances { .. }
            | Command::Upgrade {
                command: UpgradeCommand::Plan
            }
            | Command::Jobs {
                command: JobsCommand::List { .. }
            }
    )
}

/// `qserv instances [add NAME]`.
pub async fn instances_command(
    cli: &Cli,
    flags: &Flags,
    config: &Config,
    config_path: &str,
    timeout: Duration,
    command: Option<&InstancesCommand>,
) -> Result<(), CliError> {
    match command {
        Some(InstancesCommand::Add { name }) => {
            if flags.coordinator.origin == Origin::Default {
                return Err(CliError::new(
                    Exit::Usage,
                    "instances add needs the instance's coordinators: --coordinator URL[,URL…]",
                ));
            }
            let path = cli.config.clone().or_else(default_config_path);
            let Some(path) = path else {
                return Err(CliError::new(
                    Exit::Usage,
                    "no configuration file to write: set HOME or pass --config FILE",
                ));
            };
            let target = Target {
                instance: Some(name.clone()),
                urls: flags.coordinator.value.clone(),
                tls_cert: flags.tls_cert.value.clone(),
                tls_key: flags.tls_key.value.clone(),
                tls_ca: flags.tls_ca.value.clone(),
            };
            instances::add(&path, name, &target)
        }
        None => {
            // Without --instance, every configured one.
            let asked = Flags {
                instance: Some(
                    flags
                        .instance
                        .clone()
                        .unwrap_or_else(|| config::ALL.to_owned()),
                ),
                ..flags.clone()
            };
            let targets = match target::select(&asked, config, config_path)
                .map_err(|why| CliError::new(Exit::Usage, why))?
            {
                Selection::All(all) => all,
                Selection::One(target) => {
                    vec![(target.instance.clone().unwrap_or_default(), target)]
                }
            };
            instances::list(&targets, timeout, cli.output).await
        }
    }
}

/// A read-only command for every configured instance at once.
pub async fn every_instance(cli: &Cli, all: &[(String, Target)]) -> Result<(), CliError> {
    const LIMIT: Duration = Duration::from_secs(10);
    match &cli.command {
        Command::Status { .. } => status::every(all, LIMIT, cli.output).await,
        Command::Upgrade { .. } => upgrade::plan_every(all, LIMIT, cli.output).await,
        Command::Jobs {
            command: JobsCommand::List { limit, since },
        } => jobs::list_every(all, LIMIT, cli.output, *limit, *since).await,
        _ => Err(CliError::new(
            Exit::Usage,
            "--instance all is for status, upgrade plan and jobs list",
        )),
    }
}
