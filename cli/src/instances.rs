//! `qserv instances` (every configured instance side by side), `qserv instances add`, and the
//! fan-out that `--instance all` read commands share: every instance asked at once, each in
//! bounded time, one that does not answer in time shown as such without hiding the others.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use qserv_cli::config::{self, InstanceEntry};
use qserv_proto::names::health_name;
use qserv_proto::v1::coordinator_client::CoordinatorClient;
use qserv_proto::v1::{Health, InstanceStatus, InstanceStatusRequest};
use serde::Serialize;
use tonic::transport::Channel;

use crate::exit::{CliError, Exit, from_status};
use crate::target::Target;
use crate::{Output, client, table, with_user};

/// What one instance answered, or why it did not.
pub struct Answer<T> {
    pub name: String,
    pub target: Target,
    pub result: Result<T, String>,
}

/// Asks every instance at once through `ask`, each within `limit` (connection included).
pub async fn each<T, F, Fut>(
    targets: &[(String, Target)],
    limit: Duration,
    ask: F,
) -> Vec<Answer<T>>
where
    F: Fn(CoordinatorClient<Channel>) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let asks = targets.iter().map(|(name, target)| {
        let ask = &ask;
        async move {
            let attempt = async {
                let tls = client::tls_config(
                    target.tls_cert.clone(),
                    target.tls_key.clone(),
                    target.tls_ca.clone(),
                )?;
                let client = client::connect_with(&target.urls, tls.as_ref()).await?;
                ask(client).await.map_err(|s| from_status(&s, &target.urls))
            };
            let result = match tokio::time::timeout(limit, attempt).await {
                Ok(result) => result.map_err(|e| e.message),
                Err(_) => Err(format!(
                    "no answer from {} within {}",
                    target.urls,
                    humantime::format_duration(limit)
                )),
            };
            Answer {
                name: name.clone(),
                target: target.clone(),
                result,
            }
        }
    });
    futures::future::join_all(asks).await
}

/// Exit 5 when any instance did not answer: the output still shows every one.
pub fn exit_of<T>(answers: &[Answer<T>]) -> Result<(), CliError> {
    let missing = answers
        .iter()
        .filter(|a| a.result.is_err())
        .map(|a| a.name.as_str());
    shown_failure(missing, Exit::Unreachable, |names| {
        format!("no answer from instance {names}")
    })
}

/// A failure the output already shows, for the instances `names` (none: no failure).
fn shown_failure<'a>(
    names: impl Iterator<Item = &'a str>,
    exit: Exit,
    message: impl FnOnce(String) -> String,
) -> Result<(), CliError> {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        return Ok(());
    }
    Err(CliError::shown(exit, message(names.join(", "))))
}

/// `{"instances": [...]}`.
#[derive(Serialize)]
struct Instances<L> {
    instances: L,
}

/// One instance's answer, under the key the command names (`"status"`, `"jobs"`, `"plan"`).
#[derive(Serialize)]
struct InstanceAnswer<'a, J> {
    name: &'a str,
    reachable: bool,
    error: Option<&'a String>,
    #[serde(flatten)]
    answer: std::collections::BTreeMap<&'a str, J>,
}

/// Prints what every instance answered: in JSON `{"instances": [{"name", "reachable",
/// "error", KEY: …}]}`, as a table one section per instance. Exit 5 when any did not answer.
pub fn print_every<T, J, S>(
    answers: &[Answer<T>],
    output: Output,
    key: &str,
    json: impl Fn(&T) -> J,
    text: impl Fn(&T) -> S,
) -> Result<(), CliError>
where
    J: Serialize,
    S: std::fmt::Display,
{
    match output {
        Output::Json => {
            let instances: Vec<InstanceAnswer<'_, J>> = answers
                .iter()
                .map(|a| InstanceAnswer {
                    name: &a.name,
                    reachable: a.result.is_ok(),
                    error: a.result.as_ref().err(),
                    answer: a
                        .result
                        .as_ref()
                        .ok()
                        .map(|value| (key, json(value)))
                        .into_iter()
                        .collect(),
                })
                .collect();
            println!("{}", crate::json::to_json(&Instances { instances })?);
        }
        Output::Table => {
            for (index, answer) in answers.iter().enumerate() {
                if index > 0 {
                    println!();
                }
                let name = table::sanitize(&answer.name);
                match &answer.result {
                    Ok(value) => println!("== {name} ==\n{}", text(value).to_string().trim_end()),
                    Err(why) => println!("== {name}: unreachable: {} ==", table::sanitize(why)),
                }
            }
        }
    }
    exit_of(answers)
}

/// One module's versions across an instance's nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleRange {
    pub lowest: Option<i64>,
    pub highest: Option<i64>,
    pub target: Option<i64>,
    /// Nodes whose database of this module reports no version (uninitialized or unread).
    pub unversioned: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSummary {
    pub id: String,
    pub kind: String,
    pub state: String,
}

/// One row of `qserv instances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceRow {
    pub name: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub coordinator: String,
    pub mode: Option<&'static str>,
    pub health: Option<&'static str>,
    pub epoch: Option<u64>,
    pub active_job: Option<JobSummary>,
    pub modules: BTreeMap<String, ModuleRange>,
}

/// The row an instance's answer makes.
pub fn row(name: &str, coordinator: &str, answer: &Result<InstanceStatus, String>) -> InstanceRow {
    let mut row = InstanceRow {
        name: name.to_owned(),
        reachable: answer.is_ok(),
        error: answer.as_ref().err().cloned(),
        coordinator: coordinator.to_owned(),
        mode: None,
        health: None,
        epoch: None,
        active_job: None,
        modules: BTreeMap::new(),
    };
    let Ok(status) = answer else {
        return row;
    };
    if !status.instance.is_empty() && status.instance != name {
        row.error = Some(format!(
            "the coordinator runs instance '{}', not '{name}': fix the configuration",
            status.instance
        ));
        return row;
    }
    row.mode = Some(qserv_model::Mode::name_or_unknown(
        qserv_proto::model::mode(status.mode),
    ));
    row.health = Some(health_name(
        Health::try_from(status.health).unwrap_or(Health::Unknown),
    ));
    row.epoch = Some(status.epoch);
    row.active_job = status.active_job.as_ref().map(|job| JobSummary {
        id: job.id.clone(),
        kind: job.kind.clone(),
        state: job.state().name().to_owned(),
    });
    row.modules = modules(status);
    row
}

/// Per module: the lowest and highest version its databases report, and the target.
pub fn modules(status: &InstanceStatus) -> BTreeMap<String, ModuleRange> {
    let mut ranges: BTreeMap<String, ModuleRange> = BTreeMap::new();
    for schema in status.nodes.iter().flat_map(|n| &n.schema) {
        let range = ranges.entry(schema.module.clone()).or_insert(ModuleRange {
            lowest: None,
            highest: None,
            target: None,
            unversioned: 0,
        });
        match schema.version {
            Some(v) => {
                range.lowest = Some(range.lowest.map_or(v, |l| l.min(v)));
                range.highest = Some(range.highest.map_or(v, |h| h.max(v)));
            }
            None => range.unversioned += 1,
        }
        if let Some(target) = schema.target {
            range.target = Some(range.target.map_or(target, |t| t.max(target)));
        }
    }
    ranges
}

/// `worker 3..4/4`: versions, then the target; `?` for none known.
fn range_text(module: &str, range: &ModuleRange) -> String {
    let version = |v: Option<i64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let versions = match (range.lowest, range.highest) {
        (Some(l), Some(h)) if l != h => format!("{l}..{h}"),
        (low, _) => version(low),
    };
    let unversioned = if range.unversioned > 0 {
        format!(" ({} without a version)", range.unversioned)
    } else {
        String::new()
    };
    format!("{module} {versions}/{}{unversioned}", version(range.target))
}

pub fn rows_table(rows: &[InstanceRow]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let dash = || "-".to_owned();
            vec![
                table::sanitize(&r.name),
                match (r.mode, r.reachable) {
                    (Some(mode), _) => mode.to_owned(),
                    (None, true) => "wrong instance".to_owned(),
                    (None, false) => "unreachable".to_owned(),
                },
                r.health.map_or_else(dash, str::to_owned),
                r.epoch.map_or_else(dash, |e| e.to_string()),
                r.active_job.as_ref().map_or_else(dash, |j| {
                    table::sanitize(&format!("{} {} {}", j.id, j.kind, j.state))
                }),
                if let Some(error) = &r.error {
                    table::sanitize(error)
                } else {
                    r.modules
                        .iter()
                        .map(|(m, range)| table::sanitize(&range_text(m, range)))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ]
        })
        .collect();
    table::render(
        &[
            "INSTANCE",
            "MODE",
            "HEALTH",
            "EPOCH",
            "ACTIVE JOB",
            "SCHEMA (VERSION/TARGET)",
        ],
        &body,
    )
}

/// `qserv instances`.
pub async fn list(
    targets: &[(String, Target)],
    limit: Duration,
    output: Output,
) -> Result<(), CliError> {
    let answers = each(targets, limit, |mut client| async move {
        client
            .get_status(with_user(InstanceStatusRequest {}))
            .await
            .map(tonic::Response::into_inner)
    })
    .await;
    let rows: Vec<InstanceRow> = answers
        .iter()
        .map(|a| row(&a.name, &a.target.urls, &a.result))
        .collect();
    match output {
        Output::Json => println!("{}", crate::json::to_json(&Instances { instances: &rows })?),
        Output::Table => print!("{}", rows_table(&rows)),
    }
    exit_of(&answers)?;
    let wrong = rows
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.name.as_str());
    shown_failure(wrong, Exit::Refused, |names| {
        format!("the coordinator of {names} runs another instance; fix the configuration")
    })
}

/// `qserv instances add NAME`: appends the instance to the configuration file.
pub fn add(path: &Path, name: &str, target: &Target) -> Result<(), CliError> {
    let entry = InstanceEntry {
        coordinators: target
            .urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect(),
        tls_cert: target.tls_cert.clone(),
        tls_key: target.tls_key.clone(),
        tls_ca: target.tls_ca.clone(),
    };
    config::add(path, name, &entry).map_err(|e| CliError::new(Exit::Usage, e.to_string()))?;
    println!(
        "instance {name} ({}) added to {}",
        entry.address_list(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use qserv_proto::v1::{ActiveJob, NodeSchema, NodeStatus};

    use super::*;

    fn node(schema: &[(&str, Option<i64>, i64)]) -> NodeStatus {
        NodeStatus {
            schema: schema
                .iter()
                .map(|(module, version, target)| NodeSchema {
                    module: (*module).to_owned(),
                    version: *version,
                    target: Some(*target),
                    ..NodeSchema::default()
                })
                .collect(),
            ..NodeStatus::default()
        }
    }

    #[test]
    fn a_row_ranges_each_module_over_the_nodes() {
        let status = InstanceStatus {
            instance: "dr1".to_owned(),
            mode: qserv_proto::v1::Mode::Normal as i32,
            health: Health::Ok as i32,
            epoch: 7,
            active_job: Some(ActiveJob {
                id: "j4".to_owned(),
                kind: "upgrade".to_owned(),
                state: qserv_proto::v1::JobState::Running.into(),
                ..ActiveJob::default()
            }),
            nodes: vec![
                node(&[("czar", Some(5), 5)]),
                node(&[("worker", Some(3), 4)]),
                node(&[("worker", Some(4), 4)]),
                node(&[("worker", None, 4)]),
            ],
            ..InstanceStatus::default()
        };
        let row = row("dr1", "https://a:7070", &Ok(status));
        assert_eq!(
            (row.mode, row.health, row.epoch),
            (Some("normal"), Some("ok"), Some(7))
        );
        assert_eq!(row.active_job.as_ref().map(|j| j.id.as_str()), Some("j4"));
        let worker = &row.modules["worker"];
        assert_eq!(
            (
                worker.lowest,
                worker.highest,
                worker.target,
                worker.unversioned
            ),
            (Some(3), Some(4), Some(4), 1)
        );
        let text = rows_table(std::slice::from_ref(&row));
        assert!(
            text.contains("czar 5/5, worker 3..4/4 (1 without a version)"),
            "{text}"
        );
    }

    #[test]
    fn a_coordinator_of_another_instance_is_a_row_saying_so() {
        let status = InstanceStatus {
            instance: "dr2".to_owned(),
            mode: qserv_proto::v1::Mode::Normal as i32,
            ..InstanceStatus::default()
        };
        let row = row("dr1", "https://a:7070", &Ok(status));
        assert!(row.reachable && row.mode.is_none());
        let text = rows_table(&[row]);
        assert!(
            text.contains("wrong instance") && text.contains("runs instance 'dr2', not 'dr1'"),
            "{text}"
        );
    }

    #[test]
    fn an_unreachable_instance_is_a_row_saying_so() {
        let row = row("dr2", "https://c:7070", &Err("no answer".to_owned()));
        assert!(!row.reachable);
        assert_eq!(row.mode, None);
        let text = rows_table(&[row]);
        assert!(
            text.contains("unreachable") && text.contains("no answer"),
            "{text}"
        );
    }
}
