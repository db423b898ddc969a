//! `qserv audit [--since DUR]`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qserv_proto::v1::{AuditEntry, AuditRequest};
use serde::Serialize;

use crate::exit::{CliError, from_status};
use crate::job_doc::time_text;
use crate::params_doc::ParamsJson;
use crate::{Output, client, table, with_user};

/// Unix milliseconds `ago` before now; 0 (the beginning) when that is before the epoch.
pub fn since_ms(ago: Duration) -> i64 {
    SystemTime::now()
        .checked_sub(ago)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

/// `audit -o json`.
#[derive(Debug, Serialize)]
pub struct AuditJson {
    pub entries: Vec<AuditEntryJson>,
    /// More entries matched than were returned (older ones left out).
    pub truncated: bool,
}

#[derive(Debug, Serialize)]
pub struct AuditEntryJson {
    pub at: Option<String>,
    pub identity: String,
    pub role: String,
    pub operation: String,
    /// What the job was asked to do; `None` for a request refused before it became a job.
    pub params: Option<ParamsJson>,
    pub result: String,
    pub job: Option<String>,
}

impl AuditJson {
    pub fn of(entries: &[AuditEntry], truncated: bool) -> AuditJson {
        AuditJson {
            entries: entries
                .iter()
                .map(|e| AuditEntryJson {
                    at: time_text(e.at_ms),
                    identity: e.identity.clone(),
                    role: e.role.clone(),
                    operation: e.operation.clone(),
                    params: ParamsJson::of(e.params.as_ref()),
                    result: e.result.clone(),
                    job: crate::json::non_empty(&e.job_id),
                })
                .collect(),
            truncated,
        }
    }
}

pub async fn run(
    coordinator: &str,
    output: Output,
    since: Duration,
    limit: u32,
) -> Result<(), CliError> {
    let mut client = client::connect(coordinator).await?;
    let page = client
        .list_audit(with_user(AuditRequest {
            since_ms: since_ms(since),
            limit,
        }))
        .await
        .map_err(|s| from_status(&s, coordinator))?
        .into_inner();
    let entries = page.entries;
    if page.truncated {
        eprintln!(
            "showing the newest {} entries of the last {}; older ones: a larger --limit or a shorter --since",
            entries.len(),
            humantime::format_duration(since)
        );
    }
    match output {
        Output::Json => crate::json::print(&AuditJson::of(&entries, page.truncated))?,
        Output::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        time_text(e.at_ms).unwrap_or_else(|| "-".to_owned()),
                        e.identity.clone(),
                        e.role.clone(),
                        e.operation.clone(),
                        crate::params_doc::cell(e.params.as_ref()),
                        if e.job_id.is_empty() {
                            "-".to_owned()
                        } else {
                            e.job_id.clone()
                        },
                        e.result.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &[
                        "AT",
                        "IDENTITY",
                        "ROLE",
                        "OPERATION",
                        "PARAMS",
                        "JOB",
                        "RESULT"
                    ],
                    &rows
                )
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::assert_golden;

    #[test]
    fn audit_keeps_its_documented_shape() {
        let entries = [
            AuditEntry {
                at_ms: 1_764_000_000_000,
                identity: "alice".to_owned(),
                role: "operator".to_owned(),
                operation: "upgrade apply".to_owned(),
                params: Some(qserv_proto::v1::JobParams {
                    kind: Some(qserv_proto::v1::job_params::Kind::Upgrade(
                        qserv_proto::v1::UpgradeParams {
                            parallel: 0,
                            nodes: vec!["worker-1".to_owned(), "worker-2".to_owned()],
                            fail_fast: false,
                        },
                    )),
                }),
                result: "accepted".to_owned(),
                job_id: "j12".to_owned(),
            },
            AuditEntry {
                at_ms: 1_764_000_001_000,
                identity: "bob".to_owned(),
                role: "viewer".to_owned(),
                operation: "down".to_owned(),
                params: None,
                result: "denied: viewer may not down".to_owned(),
                job_id: String::new(),
            },
        ];
        assert_golden("audit.json", &AuditJson::of(&entries, true));
    }
}
