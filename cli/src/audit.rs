//! `qserv audit [--since DUR]`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qserv_proto::v1::AuditRequest;
use serde_json::{Value, json};

use crate::exit::{CliError, from_status};
use crate::jobs::time_text;
use crate::{Output, client, table, with_user};

/// Unix milliseconds `ago` before now; 0 (the beginning) when that is before the epoch.
pub fn since_ms(ago: Duration) -> i64 {
    SystemTime::now()
        .checked_sub(ago)
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
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
        Output::Json => {
            let list: Vec<Value> = entries
                .iter()
                .map(|e| {
                    json!({
                        "at": time_text(e.at_ms), "identity": e.identity, "role": e.role,
                        "operation": e.operation,
                        "params": serde_json::from_str::<Value>(&e.params_json).unwrap_or(Value::Null),
                        "result": e.result,
                        "job": if e.job_id.is_empty() { Value::Null } else { Value::String(e.job_id.clone()) },
                    })
                })
                .collect();
            println!(
                "{}",
                json!({ "entries": list, "truncated": page.truncated })
            );
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        time_text(e.at_ms).as_str().unwrap_or("-").to_owned(),
                        e.identity.clone(),
                        e.role.clone(),
                        e.operation.clone(),
                        e.params_json.clone(),
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
