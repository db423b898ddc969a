//! `delete`: drops the Qserv databases and service accounts on every node, then forgets the
//! inventory. Each agent checks that the command is meant for it (node, role, instance) before
//! it drops anything.

use crate::instance::Mode;

use super::ctx::{FanOut, JobCtx, StepError};
use crate::domain::job::DeleteStep;
use crate::runtime::core::next_epoch;

pub async fn run(ctx: &JobCtx, step: DeleteStep) -> Result<(), StepError> {
    match step {
        DeleteStep::Purge => {
            let authority = ctx.core.authority();
            ctx.fan_out("purge", &ctx.nodes(), FanOut::ALL, |node| {
                let authority = authority.clone();
                async move {
                    let reply = ctx
                        .core
                        .agents
                        .purge(&node, &authority)
                        .await
                        .map_err(|e| e.to_string())?;
                    ctx.core.observe(&node.name, &reply.observed);
                    Ok((
                        format!(
                            "dropped databases [{}] and accounts [{}]",
                            reply.value.databases.join(", "),
                            reply.value.accounts.join(", ")
                        ),
                        (),
                    ))
                }
            })
            .await
            .map(|_| ())
        }
        DeleteStep::Forget => {
            // The epoch keeps growing across instances: an agent must never take a later
            // instance's command for an older one's.
            let (_, epoch) = ctx.core.mode();
            let next = next_epoch(epoch)?;
            ctx.core.store.forget(next).await?;
            ctx.core.reload().await?;
            ctx.core.snapshot.send_modify(|s| {
                s.mode = Mode::Uninstalled.into();
                s.epoch = Some(next);
            });
            Ok(())
        }
    }
}
