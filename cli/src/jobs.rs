//! Jobs as the operator sees them: following one to its end with per-node progress, and the
//! `qserv jobs …` commands.

use std::io::IsTerminal;
use std::time::Duration;

use qserv_proto::v1::coordinator_client::CoordinatorClient;
use qserv_proto::v1::{Job, JobLogsRequest, JobRequest, ListJobsRequest};
use qserv_proto::v1::{JobState, LogLevel};
use tonic::transport::Channel;

use crate::exit::{CliError, Exit, from_status};
use crate::job_doc::{JobJson, JobsJson, LogLineJson, LogsJson, time_text};
use crate::json::to_json;
use crate::progress::{Live, Plain, Progress};
use crate::target::Target;
use crate::{Output, client, instances, table, with_user};

/// How long a follower of a job keeps trying to watch it again after its stream broke (a
/// connection reset, a coordinator restarted, a leader lost to another coordinator of a list);
/// past it, a coordinator that is gone is exit 5. Reading a job is idempotent: only its
/// submission must never be repeated.
const REATTACH_FOR: Duration = Duration::from_secs(30);

/// A stream that ended this way may be watched again: the transport failed, not the request.
fn reattachable(status: &tonic::Status) -> bool {
    use tonic::Code;
    matches!(
        status.code(),
        Code::Unavailable
            | Code::Unknown
            | Code::Cancelled
            | Code::Internal
            | Code::DeadlineExceeded
    )
}

fn is_finished(job: &Job) -> bool {
    job.state().is_finished()
}

/// The exit code a finished job stands for (DESIGN §4).
pub fn job_exit(job: &Job) -> Result<(), CliError> {
    if !job.store_error.is_empty() {
        // Not the job's failure: the coordinator cannot record how it ended.
        return Err(CliError::new(
            Exit::Other,
            format!(
                "job {} ({}) ended {}, but {}",
                job.id,
                job.kind,
                job.state().name(),
                job.store_error
            ),
        ));
    }
    match job.state() {
        JobState::Succeeded => Ok(()),
        JobState::Failed if job.refused => Err(CliError::new(
            Exit::Refused,
            format!("job {} ({}) refused: {}", job.id, job.kind, job.error),
        )),
        JobState::Failed if job.timed_out => Err(CliError::new(
            Exit::TimedOut,
            format!("job {} ({}) timed out: {}", job.id, job.kind, job.error),
        )),
        JobState::Failed => Err(CliError::new(
            Exit::JobFailed,
            format!("job {} ({}) failed: {}", job.id, job.kind, job.error),
        )),
        state => Err(CliError::new(
            Exit::JobFailed,
            format!(
                "job {} ({}) ended {}: {}",
                job.id,
                job.kind,
                state.name(),
                job.error
            ),
        )),
    }
}

/// Follows a job to its end, printing each step and node change as a line; returns the job.
pub async fn follow(
    client: &mut CoordinatorClient<Channel>,
    coordinator: &str,
    id: &str,
    output: Output,
    quiet: bool,
) -> Result<Job, CliError> {
    let mut stream = client
        .watch_job(with_user(JobRequest { id: id.to_owned() }))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    let show = output == Output::Table && !quiet;
    let mut progress: Option<Box<dyn Progress>> = show.then(|| {
        if std::io::stdout().is_terminal() {
            Box::new(Live::new()) as Box<dyn Progress>
        } else {
            Box::new(Plain::default())
        }
    });
    let mut last: Option<Job> = None;
    let mut backoff = Duration::from_millis(200);
    let mut broken_since: Option<tokio::time::Instant> = None;
    loop {
        let why = match stream.message().await {
            Ok(Some(job)) => {
                broken_since = None;
                backoff = Duration::from_millis(200);
                if let Some(progress) = progress.as_mut() {
                    progress.update(&job);
                }
                let done = is_finished(&job);
                last = Some(job);
                if done {
                    break;
                }
                continue;
            }
            Ok(None) => "the coordinator ended the stream".to_owned(),
            Err(status) if reattachable(&status) => status.message().to_owned(),
            Err(status) => return Err(from_status(&status, coordinator)),
        };
        if broken_since.is_none() && show {
            eprintln!("lost the stream of job {id} ({why}); following it again");
        }
        let since = *broken_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() >= REATTACH_FOR {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
        if let Ok(mut next) = client::connect(coordinator).await
            && let Ok(watched) = next
                .watch_job(with_user(JobRequest { id: id.to_owned() }))
                .await
        {
            stream = watched.into_inner();
            *client = next;
        }
    }
    if let Some(progress) = progress.as_mut() {
        progress.finish();
    }
    let Some(job) = last else {
        return Err(CliError::new(
            Exit::Other,
            format!("the coordinator sent nothing about job {id}"),
        ));
    };
    if !is_finished(&job) {
        return Err(CliError::new(
            Exit::Unreachable,
            format!(
                "lost the coordinator at {coordinator} while following job {id}; it goes on there: 'qserv jobs wait {id}'"
            ),
        ));
    }
    Ok(job)
}

/// Prints a finished job the way the output format asks and turns it into the exit code.
pub fn report(job: &Job, output: Output) -> Result<(), CliError> {
    match output {
        Output::Json => println!("{}", to_json(&JobJson::from(job))?),
        Output::Table => {
            let took = (job.finished_at_ms - job.started_at_ms.max(job.created_at_ms)).max(0);
            let succeeded = job.state() == JobState::Succeeded;
            if succeeded && !job.note.is_empty() {
                println!(
                    "job {} ({}) succeeded: {}",
                    job.id,
                    job.kind,
                    crate::table::sanitize(&job.note)
                );
            } else if succeeded {
                println!(
                    "job {} ({}) succeeded in {:.1} s",
                    job.id,
                    job.kind,
                    took as f64 / 1000.0
                );
            }
        }
    }
    job_exit(job)
}

pub async fn list(
    client: &mut CoordinatorClient<Channel>,
    coordinator: &str,
    output: Output,
    limit: u32,
    since: Option<std::time::Duration>,
) -> Result<(), CliError> {
    let jobs = client
        .list_jobs(with_user(list_request(limit, since)))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner()
        .jobs;
    match output {
        Output::Json => println!("{}", to_json(&JobsJson::of(&jobs))?),
        Output::Table => print!("{}", jobs_table(&jobs)),
    }
    Ok(())
}

/// `jobs list --instance all`.
pub async fn list_every(
    all: &[(String, Target)],
    limit_time: std::time::Duration,
    output: Output,
    limit: u32,
    since: Option<std::time::Duration>,
) -> Result<(), CliError> {
    let answers = instances::each(all, limit_time, |mut client| async move {
        client
            .list_jobs(with_user(list_request(limit, since)))
            .await
            .map(|r| r.into_inner().jobs)
    })
    .await;
    instances::print_every(
        &answers,
        output,
        "jobs",
        |jobs| JobsJson::of(jobs).jobs,
        |jobs| jobs_table(jobs),
    )
}

fn list_request(limit: u32, since: Option<std::time::Duration>) -> ListJobsRequest {
    ListJobsRequest {
        limit,
        since_ms: since.map_or(0, crate::audit::since_ms),
    }
}

fn jobs_table(jobs: &[Job]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                j.kind.clone(),
                j.state().name().to_owned(),
                time_text(j.created_at_ms).unwrap_or_else(|| "-".to_owned()),
                j.requested_by.clone(),
                j.error.clone(),
            ]
        })
        .collect();
    table::render(
        &["ID", "KIND", "STATE", "CREATED", "REQUESTED BY", "ERROR"],
        &rows,
    )
}

pub async fn show(
    client: &mut CoordinatorClient<Channel>,
    coordinator: &str,
    id: &str,
    output: Output,
) -> Result<(), CliError> {
    let job = client
        .get_job(with_user(JobRequest { id: id.to_owned() }))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    match output {
        Output::Json => println!("{}", to_json(&JobJson::from(&job))?),
        Output::Table => {
            println!("job {} ({}) {}", job.id, job.kind, job.state().name());
            println!("requested by {}", job.requested_by);
            if !job.error.is_empty() {
                println!("error: {}", job.error);
            }
            println!();
            let steps: Vec<Vec<String>> = job
                .steps
                .iter()
                .map(|s| vec![s.name.clone(), s.state().name().to_owned()])
                .collect();
            print!("{}", table::render(&["STEP", "STATE"], &steps));
            if !job.nodes.is_empty() {
                println!();
                let nodes: Vec<Vec<String>> = job
                    .nodes
                    .iter()
                    .map(|n| {
                        vec![
                            n.name.clone(),
                            n.state().name().to_owned(),
                            n.detail.clone(),
                            n.error.clone(),
                        ]
                    })
                    .collect();
                print!(
                    "{}",
                    table::render(&["NODE", "STATE", "DETAIL", "ERROR"], &nodes)
                );
            }
        }
    }
    Ok(())
}

/// Which lines `jobs logs` asks for.
pub struct LogPage {
    pub follow: bool,
    /// The last this many; 0 for all.
    pub limit: u32,
}

pub async fn logs(
    client: &mut CoordinatorClient<Channel>,
    coordinator: &str,
    id: &str,
    page: LogPage,
    output: Output,
) -> Result<(), CliError> {
    let mut stream = client
        .job_logs(with_user(JobLogsRequest {
            id: id.to_owned(),
            follow: page.follow,
            limit: page.limit,
        }))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    let color = std::io::stdout().is_terminal();
    // Without --follow, -o json prints one document; following, one line per log line (JSON
    // Lines), as they come.
    let mut collected: Vec<LogLineJson> = Vec::new();
    loop {
        match stream.message().await {
            Ok(Some(line)) => match output {
                Output::Json if page.follow => println!("{}", to_json(&LogLineJson::from(&line))?),
                Output::Json => collected.push(LogLineJson::from(&line)),
                Output::Table => {
                    let at = time_text(line.at_ms);
                    let node = if line.node.is_empty() {
                        String::new()
                    } else {
                        format!(" {}:", line.node)
                    };
                    let level = match line.level() {
                        LogLevel::Error if color => "\x1b[31merror\x1b[0m",
                        level => level.name(),
                    };
                    println!(
                        "{} {level}{} {}",
                        at.as_deref().unwrap_or("-"),
                        crate::table::sanitize(&node),
                        crate::table::sanitize(&line.message)
                    );
                }
            },
            Ok(None) => break,
            Err(status) => return Err(from_status(&status, coordinator)),
        }
    }
    if output == Output::Json && !page.follow {
        let document = LogsJson {
            id: id.to_owned(),
            lines: collected,
        };
        println!("{}", to_json(&document)?);
    }
    Ok(())
}

pub async fn cancel(coordinator: &str, id: &str, output: Output) -> Result<(), CliError> {
    let (_, job) = crate::client::change(coordinator, |mut client| async move {
        client
            .cancel_job(with_user(JobRequest { id: id.to_owned() }))
            .await
    })
    .await?;
    match output {
        Output::Json => println!("{}", to_json(&JobJson::from(&job))?),
        Output::Table => println!(
            "job {} ({}): cancellation requested, now {}",
            job.id,
            job.kind,
            job.state().name()
        ),
    }
    Ok(())
}
