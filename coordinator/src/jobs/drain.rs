//! The first step of `down` and `restart` in `normal`: no services stop under Qserv's own work
//! in flight (DESIGN §16). Without `--drain` or `--force` activity refuses, checked again here
//! on a fact of this moment; `--drain` waits for it to end, bounded, and times out with
//! nothing stopped; `--force` goes ahead and says what it overrode.

use std::time::Duration;

use crate::instance::Mode;
use crate::instance::NodeState;

use super::ctx::{JobCtx, Level, StepError};
use crate::domain::Node;
use crate::domain::activity::{self, ActivityPolicy};

fn busy(node: &NodeState) -> Option<String> {
    if !node.reachable() {
        // What it runs cannot be known; a dead czar holds no query the stop would break.
        return None;
    }
    node.activity().describe()
}

pub async fn run(ctx: &JobCtx, what: &str, policy: ActivityPolicy) -> Result<(), StepError> {
    let (mode, _) = ctx.core.mode();
    if mode != Mode::Normal {
        return Ok(());
    }
    let nodes: Vec<Node> = ctx
        .nodes()
        .into_iter()
        .filter(|n| n.role.carries_work())
        .collect();
    if policy.drain_ms == 0 {
        let view = ctx.fresh_view(&nodes).await;
        let running = view.running_activity();
        if policy.force {
            if let Some(overridden) = running.describe() {
                ctx.log(
                    Level::Warn,
                    "",
                    format!("--force: stopping the services under {overridden}"),
                )
                .await;
            }
            return Ok(());
        }
        return activity::refusal(what, running, policy).map_err(StepError::Refused);
    }
    let limit = Duration::from_millis(policy.drain_ms);
    match ctx
        .wait_until(&nodes, limit, "no work in flight", |node, _| busy(node))
        .await
    {
        Ok(_) => Ok(()),
        Err(StepError::TimedOut(why)) => Err(StepError::TimedOut(format!(
            "work still in flight after --drain {}: {why}; nothing was stopped",
            humantime::format_duration(limit)
        ))),
        Err(err) => Err(err),
    }
}
