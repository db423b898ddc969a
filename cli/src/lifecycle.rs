//! `install`, `up`, `down`, `delete`, `restart`: each asks the coordinator for a job and
//! follows it.

use std::path::Path;
use std::time::Duration;

use qserv_proto::v1::coordinator_client::CoordinatorClient;
use qserv_proto::v1::{
    ActivityPolicy, DeleteRequest, DownRequest, InstallRequest, JobRef, MutationOptions,
    RestartRequest, UpRequest,
};
use tonic::transport::Channel;

use crate::exit::{CliError, Exit};
use crate::{Output, client, jobs, with_user};

/// How a mutating command behaves once its job exists.
#[derive(Debug, Clone, Copy)]
pub struct Follow {
    pub detach: bool,
    pub wait: bool,
}

#[derive(Clone, Copy)]
pub enum Mutation<'a> {
    Install {
        spec: Option<&'a Path>,
        adopt: bool,
    },
    Up {
        timeout: Duration,
        service_timeout: Duration,
    },
    Down {
        activity: ActivityPolicy,
    },
    Delete {
        confirm: &'a str,
    },
}

/// The largest spec file sent to the coordinator.
const MAX_SPEC_BYTES: u64 = 1024 * 1024;

pub fn read_spec(path: &Path) -> Result<String, CliError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        CliError::new(
            Exit::Refused,
            format!("cannot read spec file {}: {e}", path.display()),
        )
    })?;
    if meta.len() > MAX_SPEC_BYTES {
        return Err(CliError::new(
            Exit::Refused,
            format!(
                "spec file {} is {} bytes, more than a spec can be; check that it is the right file",
                path.display(),
                meta.len()
            ),
        ));
    }
    std::fs::read_to_string(path).map_err(|e| {
        CliError::new(
            Exit::Refused,
            format!("cannot read spec file {}: {e}", path.display()),
        )
    })
}

pub async fn run(
    coordinator: &str,
    output: Output,
    mutation: Mutation<'_>,
    follow: Follow,
) -> Result<(), CliError> {
    let options = Some(MutationOptions { wait: follow.wait });
    let spec_toml = match mutation {
        Mutation::Install { spec, .. } => spec.map(read_spec).transpose()?.unwrap_or_default(),
        _ => String::new(),
    };
    let (mut client, job_ref) = client::change(coordinator, |mut client| {
        let spec_toml = spec_toml.clone();
        async move {
            match mutation {
                Mutation::Install { adopt, .. } => {
                    client
                        .install(with_user(InstallRequest {
                            spec_toml,
                            options,
                            adopt,
                        }))
                        .await
                }
                Mutation::Up {
                    timeout,
                    service_timeout,
                } => {
                    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                    client
                        .up(with_user(UpRequest {
                            timeout_ms: millis(timeout),
                            options,
                            service_timeout_ms: millis(service_timeout).max(1),
                        }))
                        .await
                }
                Mutation::Down { activity } => {
                    client
                        .down(with_user(DownRequest {
                            options,
                            activity: Some(activity),
                        }))
                        .await
                }
                Mutation::Delete { confirm } => {
                    client
                        .delete(with_user(DeleteRequest {
                            confirm: confirm.to_owned(),
                            options,
                        }))
                        .await
                }
            }
        }
    })
    .await?;
    follow_job(&mut client, coordinator, output, job_ref, follow).await
}

/// What `qserv restart` asks for.
pub struct RestartArgs {
    pub nodes: Vec<String>,
    pub role: Option<qserv_model::Role>,
    pub parallel: u32,
    pub node_timeout: Duration,
    pub settle: Duration,
    pub services: Vec<qserv_model::ServiceName>,
    pub activity: ActivityPolicy,
}

pub async fn restart(
    coordinator: &str,
    output: Output,
    args: RestartArgs,
    follow: Follow,
) -> Result<(), CliError> {
    if args.parallel == 0 {
        return Err(CliError::new(Exit::Usage, "--parallel must be at least 1"));
    }
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1);
    let (mut client, job_ref) = client::change(coordinator, |mut client| {
        let request = RestartRequest {
            nodes: args.nodes.clone(),
            role: qserv_proto::model::role_to_wire(args.role),
            parallel: args.parallel,
            node_timeout_ms: millis(args.node_timeout),
            settle_ms: millis(args.settle),
            options: Some(MutationOptions { wait: follow.wait }),
            activity: Some(args.activity),
            services: args.services.iter().map(ToString::to_string).collect(),
        };
        async move { client.restart(with_user(request)).await }
    })
    .await?;
    follow_job(&mut client, coordinator, output, job_ref, follow).await
}

/// What every mutating command does with the coordinator's answer: report a no-op, print the id
/// (`--detach`), or follow the job to its end and exit as it ended.
pub async fn follow_job(
    client: &mut CoordinatorClient<Channel>,
    coordinator: &str,
    output: Output,
    job_ref: JobRef,
    follow: Follow,
) -> Result<(), CliError> {
    if job_ref.id.is_empty() {
        match output {
            Output::Json => crate::json::print(&NoOpJson {
                job: None,
                message: &job_ref.message,
                ran_by: &job_ref.ran_by,
            })?,
            Output::Table => println!("{}", job_ref.message),
        }
        return Ok(());
    }
    if follow.detach {
        match output {
            Output::Json => crate::json::print(&DetachedJson { job: &job_ref.id })?,
            Output::Table => println!("{}", job_ref.id),
        }
        return Ok(());
    }
    if output == Output::Table {
        let by = if job_ref.ran_by.is_empty() {
            String::new()
        } else {
            format!(
                " by coordinator {}",
                crate::table::sanitize(&job_ref.ran_by)
            )
        };
        println!(
            "job {} started{by}; following it (Ctrl-C leaves it running)",
            job_ref.id
        );
    }
    let job = jobs::follow(client, coordinator, &job_ref.id, output, false).await?;
    jobs::report(&job, output)
}

/// What a change that needed no job prints (`-o json`).
#[derive(Debug, serde::Serialize)]
struct NoOpJson<'a> {
    job: Option<&'a str>,
    message: &'a str,
    ran_by: &'a str,
}

/// What `--detach` prints (`-o json`): the job to follow later.
#[derive(Debug, serde::Serialize)]
struct DetachedJson<'a> {
    job: &'a str,
}
