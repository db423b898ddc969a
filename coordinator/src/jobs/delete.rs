//! `delete`: drops the Qserv databases and service accounts on every node, then forgets the
//! inventory.

use qserv_proto::v1::{Mode, PurgeRequest};

use super::ctx::{JobCtx, StepError};
use super::lifecycle::nodes;
use crate::agents::{COMMAND_TIMEOUT, request, status_text};

pub const STEPS: &[&str] = &["purge", "forget"];

pub async fn step(ctx: &JobCtx, index: usize) -> Result<(), StepError> {
    match STEPS.get(index).copied() {
        Some("purge") => {
            let all = nodes(ctx);
            ctx.on_nodes("purge", &all, |(_, _, agent)| async move {
                let reply = ctx
                    .core
                    .agents
                    .client(&agent)?
                    .purge(request(PurgeRequest {}, COMMAND_TIMEOUT))
                    .await
                    .map_err(|s| status_text(&s))?
                    .into_inner();
                Ok(format!(
                    "dropped databases [{}] and accounts [{}]",
                    reply.dropped_databases.join(", "),
                    reply.dropped_accounts.join(", ")
                ))
            })
            .await
            .map(|_| ())
        }
        Some("forget") => {
            let epoch = ctx.core.next_epoch();
            ctx.core.store.forget(epoch).await?;
            ctx.core.reload().await?;
            ctx.core.snapshot.send_modify(|s| {
                s.mode = Mode::Uninstalled.into();
                s.epoch = epoch;
            });
            Ok(())
        }
        _ => Err(StepError::failed(format!("delete has no step {index}"))),
    }
}
