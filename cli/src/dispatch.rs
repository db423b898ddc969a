//! From a parsed command line to the module that carries it out: one arm per command, no
//! logic of its own. Routing (which coordinator, which certificates) is done before.

use std::io::Write;

use clap::CommandFactory;

use crate::args::{
    CertsCommand, Cli, Command, ConfigCommand, JobsCommand, UpgradeCommand, WorkersCommand,
};
use crate::exit::{CliError, Exit};
use crate::{
    Output, audit, certs, client, configs, jobs, lifecycle, playground, status, upgrade, workers,
};

pub async fn command(cli: Cli) -> Result<(), CliError> {
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
                    days,
                },
        } => certs::init(
            &dir,
            &certs::Issue {
                coordinator: &coordinator,
                agents: &agent,
                clients: &client,
                days,
            },
            cli.output,
        ),
        Command::Status { watch } => status::run(&cli.coordinator, cli.output, watch).await,
        Command::Version => crate::version(&cli.coordinator, cli.output).await,
        Command::Playground {
            workers,
            dir,
            instances,
            layout,
        } => playground::run(workers, instances, dir, layout).await,
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
        Command::Up {
            timeout,
            service_timeout,
            follow,
        } => {
            lifecycle::run(
                &cli.coordinator,
                cli.output,
                lifecycle::Mutation::Up {
                    timeout,
                    service_timeout,
                },
                follow.into(),
            )
            .await
        }
        Command::Down { activity, follow } => {
            lifecycle::run(
                &cli.coordinator,
                cli.output,
                lifecycle::Mutation::Down {
                    activity: activity.into(),
                },
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
            services,
            activity,
            follow,
        } => {
            let args = lifecycle::RestartArgs {
                nodes,
                role,
                parallel,
                node_timeout,
                settle,
                services,
                activity: activity.into(),
            };
            lifecycle::restart(&cli.coordinator, cli.output, args, follow.into()).await
        }
        Command::Delete { confirm, follow } => {
            let mutation = lifecycle::Mutation::Delete { confirm: &confirm };
            lifecycle::run(&cli.coordinator, cli.output, mutation, follow.into()).await
        }
        Command::Workers { command } => workers(&cli.coordinator, cli.output, command).await,
        Command::Upgrade { command } => upgrade(&cli.coordinator, cli.output, command).await,
        Command::Config { command } => config(&cli.coordinator, cli.output, command).await,
        Command::Jobs { command } => jobs(&cli.coordinator, cli.output, command).await,
        // Answered above, before a single target was chosen.
        Command::Instances { .. } => Ok(()),
        Command::Completions { shell } => {
            let mut out = std::io::stdout();
            clap_complete::generate(shell, &mut Cli::command(), "qserv", &mut out);
            out.flush()
                .map_err(|e| CliError::new(Exit::Other, format!("cannot write to stdout: {e}")))
        }
    }
}

async fn workers(
    coordinator: &str,
    output: Output,
    command: WorkersCommand,
) -> Result<(), CliError> {
    match command {
        WorkersCommand::List => workers::list(coordinator, output).await,
        WorkersCommand::Add { spec, follow } => {
            workers::add(coordinator, output, &spec, follow.into()).await
        }
        WorkersCommand::Replace {
            old,
            spec,
            leaving,
            follow,
        } => workers::replace(coordinator, output, &old, &spec, leaving, follow.into()).await,
        WorkersCommand::Remove {
            name,
            leaving,
            follow,
        } => workers::remove(coordinator, output, &name, leaving, follow.into()).await,
        WorkersCommand::Disable { name, follow } => {
            let state = qserv_proto::v1::WorkerState::Disabled;
            workers::set_state(coordinator, output, &name, state, follow.into()).await
        }
        WorkersCommand::ReadOnly { name, follow } => {
            let state = qserv_proto::v1::WorkerState::ReadOnly;
            workers::set_state(coordinator, output, &name, state, follow.into()).await
        }
        WorkersCommand::Enable { name, follow } => {
            let state = qserv_proto::v1::WorkerState::Enabled;
            workers::set_state(coordinator, output, &name, state, follow.into()).await
        }
    }
}

async fn config(coordinator: &str, output: Output, command: ConfigCommand) -> Result<(), CliError> {
    match command {
        ConfigCommand::Apply {
            scope,
            file,
            message,
            rolling,
            follow,
        } => {
            let args = configs::Apply {
                scope,
                message,
                rolling,
            };
            configs::apply(coordinator, output, args, &file, follow.into()).await
        }
        ConfigCommand::Diff { scope, file } => {
            configs::diff(coordinator, output, scope, &file).await
        }
        ConfigCommand::Show { service, version } => {
            configs::show(coordinator, output, &service, version).await
        }
        ConfigCommand::History { service } => configs::history(coordinator, output, &service).await,
        ConfigCommand::Rollback {
            scope,
            to,
            rolling,
            follow,
        } => configs::rollback(coordinator, output, scope, to, rolling, follow.into()).await,
    }
}

async fn upgrade(
    coordinator: &str,
    output: Output,
    command: UpgradeCommand,
) -> Result<(), CliError> {
    match command {
        UpgradeCommand::Plan => upgrade::plan(coordinator, output).await,
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
            upgrade::apply(coordinator, output, args, follow.into()).await
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
            upgrade::repair(coordinator, output, repair, follow.into()).await
        }
    }
}

async fn jobs(coordinator: &str, output: Output, command: JobsCommand) -> Result<(), CliError> {
    let mut client = client::connect(coordinator).await?;
    match command {
        JobsCommand::List { limit, since } => {
            jobs::list(&mut client, coordinator, output, limit, since).await
        }
        JobsCommand::Show { id } => jobs::show(&mut client, coordinator, &id, output).await,
        JobsCommand::Logs { id, follow, limit } => {
            let page = jobs::LogPage {
                follow,
                limit: limit.unwrap_or(0),
            };
            jobs::logs(&mut client, coordinator, &id, page, output).await
        }
        JobsCommand::Cancel { id } => jobs::cancel(coordinator, &id, output).await,
        JobsCommand::Wait { id } => {
            let job = jobs::follow(&mut client, coordinator, &id, output, false).await?;
            jobs::report(&job, output)
        }
    }
}
