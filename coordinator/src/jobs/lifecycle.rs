//! `up` and `down`.

use std::time::Duration;

use crate::domain::Services;
use crate::instance::Mode;

use super::ctx::{Check, JobCtx, StepError};
use crate::domain::job::{DownParams, DownStep, UpParams, UpStep};
use crate::instance::services::layout_problem;
use crate::instance::{InstanceState, NodeState, unavailable_reason};
use crate::runtime::core::next_epoch;

/// Default of `qserv up --timeout`.
const UP_TIMEOUT: Duration = Duration::from_secs(600);
/// How long `down` waits for reachable agents to confirm their services stopped.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// What a node lacks for `up`: availability, and every service its role has in the order.
fn available(node: &NodeState, view: &InstanceState) -> Option<String> {
    unavailable_reason(node).or_else(|| layout_problem(&view.services, node))
}

pub async fn up(ctx: &JobCtx, params: &UpParams, step: UpStep) -> Result<(), StepError> {
    let timeout = ctx.after_submission(match params.timeout_ms {
        0 => UP_TIMEOUT,
        ms => Duration::from_millis(ms),
    });
    let all = ctx.nodes();
    match step {
        UpStep::WaitAvailable => ctx
            .wait_until(&all, timeout, "available", available)
            .await
            .map(|_| ()),
        UpStep::Normal => {
            let (mode, _) = ctx.core.mode();
            if mode != Mode::Normal {
                // The barrier: every node checked again, after this step began, and available;
                // a database that died since the previous step keeps the instance out of
                // normal until it is back (or the timeout).
                ctx.wait_until(&all, timeout, "available (checked again)", available)
                    .await?;
                let (_, epoch) = ctx.core.mode();
                ctx.core.set_mode(Mode::Normal, next_epoch(epoch)?).await?;
            }
            if !ctx.core.snapshot.borrow().services.is_empty() {
                // The services start in the next step, wave by wave: none is released yet.
                // An agent that holds normal already keeps what it holds.
                ctx.core.waves_released.send_replace(Some(0));
            }
            ctx.push_mode(Mode::Normal).await;
            Ok(())
        }
        UpStep::Services => {
            let timeout = match params.service_timeout_ms {
                0 => super::waves::SERVICE_TIMEOUT,
                ms => Duration::from_millis(ms),
            };
            super::waves::start(ctx, timeout).await
        }
    }
}

pub async fn down(ctx: &JobCtx, params: &DownParams, step: DownStep) -> Result<(), StepError> {
    match step {
        DownStep::Drain => super::drain::run(ctx, "down", params.activity).await,
        DownStep::StopServices => {
            let order = ctx.core.snapshot.borrow().services.clone();
            if !order.is_empty() && ctx.core.mode().0 == Mode::Normal {
                // In reverse order, wave by wave, before the mode stops whatever is left.
                super::waves::stop(ctx, &order, order.waves().len()).await;
            }
            ctx.core.waves_released.send_replace(None);
            // The new epoch is stored first, so that no agent ever holds one the store has not.
            let (_, epoch) = ctx.core.mode();
            let next = next_epoch(epoch)?;
            ctx.core.set_epoch(next).await?;
            ctx.push_mode(Mode::Maintenance).await;
            let all = ctx.nodes();
            ctx.wait_services(&all, STOP_TIMEOUT, "services stopped", |node| {
                if !node.reachable() {
                    // It cannot run services we could stop; it learns the mode when it is back.
                    Check::Done
                } else if node.agent_epoch() < Some(next) {
                    Check::Lacks("has not taken the maintenance mode yet".to_owned())
                } else if node.services() == Services::Running {
                    Check::Lacks("services still running".to_owned())
                } else {
                    Check::Done
                }
            })
            .await
            .map(|_| ())
            .map_err(|e| StepError::Failed(format!("services did not stop: {e}")))
        }
        DownStep::Maintenance => {
            let (_, epoch) = ctx.core.mode();
            ctx.core.set_mode(Mode::Maintenance, epoch).await?;
            Ok(())
        }
    }
}
