//! The instance's services started and stopped in their order (DESIGN §15). `up` releases the
//! services wave by wave: a wave's services may start on their nodes once every service of the
//! waves before is ready on every node. A service that exits or does not become ready in time
//! fails `up`: what was started is stopped again in reverse, and the mode goes back to
//! `maintenance`. `down` withdraws the waves in reverse, each once the next has stopped.
//!
//! How far the release has gone is `Core::waves_released`; the agents hold it too, so a job
//! resumed by another coordinator continues from where the agents are, never stopping what it
//! had started.

use std::collections::BTreeSet;
use std::time::Duration;

use qserv_model::{Mode, OrderedService, Role, ServiceOrder, ServiceState};

use super::ctx::{Check, JobCtx, StepError};
use crate::domain::Node;
use crate::domain::job::Level;
use crate::instance::services::{ReadySince, WaveState, lapse, wave_state, wave_stopped};
use crate::instance::{InstanceState, NodeState};
use crate::runtime::core::next_epoch;

/// Default of `qserv up --service-timeout`: how long one wave may take.
pub const SERVICE_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a wave may take to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// The inventory's nodes whose role runs a service of `wave`.
fn nodes_of(ctx: &JobCtx, wave: &[&OrderedService]) -> Vec<Node> {
    let roles: BTreeSet<Role> = wave.iter().map(|s| s.role).collect();
    ctx.nodes()
        .into_iter()
        .filter(|n| roles.contains(&n.role))
        .collect()
}

/// How many waves the agents already hold released: the highest wave any agent in `normal`
/// may run a service of (a job resumed after its coordinator died goes on from there).
pub fn released_waves(order: &ServiceOrder, view: &InstanceState) -> usize {
    let waves = order.waves();
    view.nodes
        .iter()
        .filter(|n| n.agent_mode() == Some(Mode::Normal))
        .filter_map(|n| n.observed.as_ref())
        .flat_map(|o| {
            waves.iter().enumerate().filter_map(move |(k, wave)| {
                wave.iter()
                    .any(|s| s.role == o.role.unwrap_or(s.role) && o.released.allows(&s.name))
                    .then_some(k + 1)
            })
        })
        .max()
        .unwrap_or(0)
}

/// `up`'s last step: every wave started and ready, then every service released.
pub async fn start(ctx: &JobCtx, service_timeout: Duration) -> Result<(), StepError> {
    let order = ctx.core.snapshot.borrow().services.clone();
    if order.is_empty() {
        return Ok(());
    }
    if ctx.core.mode().0 != Mode::Normal {
        // A resumed job whose start was rolled back before its coordinator stopped.
        return Err(StepError::Failed(
            "the services' start was rolled back: the instance is in maintenance; run 'qserv up' again".to_owned(),
        ));
    }
    let waves = order.waves();
    // Right after this process's `normal` step released nothing, nothing is released; a job
    // resumed by another process asks the agents how far the release had gone.
    let resumed = if *ctx.core.waves_released.borrow() == Some(0) {
        0
    } else {
        released_waves(&order, &ctx.fresh_view(&ctx.nodes()).await)
    };
    if resumed > 0 {
        ctx.log(
            Level::Info,
            "",
            format!(
                "resuming: the agents hold {resumed} of {} waves released",
                waves.len()
            ),
        )
        .await;
    }
    let mut seen = ReadySince::new();
    for (k, wave) in waves.iter().enumerate() {
        let names: Vec<&str> = wave.iter().map(|s| s.name.as_str()).collect();
        ctx.log(
            Level::Info,
            "",
            format!(
                "wave {} of {}: starting {}",
                k + 1,
                waves.len(),
                names.join(", ")
            ),
        )
        .await;
        ctx.core
            .waves_released
            .send_replace(Some((k + 1).max(resumed)));
        let nodes = nodes_of(ctx, wave);
        ctx.push_release(nodes.clone()).await;
        let done = format!("wave {}: {} ready", k + 1, names.join(", "));
        let ready = ctx
            .wait_services(&nodes, service_timeout, &done, |node| {
                match wave_state(wave, node) {
                    WaveState::Ready => Check::Done,
                    WaveState::Waiting(why) => Check::Lacks(why),
                    WaveState::Failed { service, why } => Check::Fails(format!("{service}: {why}")),
                }
            })
            .await
            .and_then(|view| {
                // What started in earlier waves must still be ready: a service that died since
                // (even one its agent started again) fails `up` as one that does not start.
                let started: Vec<&OrderedService> = waves[..=k].iter().flatten().copied().collect();
                match lapse(&started, &view, &mut seen) {
                    Some(why) => Err(StepError::Failed(why)),
                    None => Ok(()),
                }
            });
        if let Err(err) = ready {
            let why = match err {
                StepError::Failed(why) => format!("a service failed to start: {why}"),
                StepError::TimedOut(why) => format!(
                    "a service did not become ready within --service-timeout {}: {why}",
                    humantime::format_duration(service_timeout)
                ),
                other => return Err(other),
            };
            ctx.log(
                Level::Error,
                "",
                format!("{why}; stopping what this job started, in reverse order"),
            )
            .await;
            roll_back(ctx, &order, (k + 1).max(resumed)).await?;
            return Err(StepError::Failed(format!(
                "{why}; every service started was stopped again and the instance is back in maintenance"
            )));
        }
    }
    ctx.core.waves_released.send_replace(None);
    ctx.push_release(ctx.nodes()).await;
    Ok(())
}

/// Stops the first `started` waves in reverse, then puts the instance in `maintenance`.
async fn roll_back(ctx: &JobCtx, order: &ServiceOrder, started: usize) -> Result<(), StepError> {
    stop(ctx, order, started).await;
    let (_, epoch) = ctx.core.mode();
    let next = next_epoch(epoch)?;
    ctx.core.set_epoch(next).await?;
    ctx.core.waves_released.send_replace(None);
    ctx.push_mode(Mode::Maintenance).await;
    ctx.core.set_mode(Mode::Maintenance, Some(next)).await?;
    Ok(())
}

/// Withdraws the first `started` waves in reverse order, each once the one after it stopped.
/// A wave that does not stop in time is logged and the next goes anyway: stopping must not
/// leave more running than it has to.
pub async fn stop(ctx: &JobCtx, order: &ServiceOrder, started: usize) {
    let waves = order.waves();
    for k in (0..started.min(waves.len())).rev() {
        let wave = &waves[k];
        ctx.core.waves_released.send_replace(Some(k));
        let nodes = nodes_of(ctx, wave);
        ctx.push_release(nodes.clone()).await;
        let names: Vec<&str> = wave.iter().map(|s| s.name.as_str()).collect();
        let done = format!("wave {}: {} stopped", k + 1, names.join(", "));
        let stopped = ctx
            .wait_services(&nodes, STOP_TIMEOUT, &done, |node| {
                wave_stopped(wave, node).map_or(Check::Done, Check::Lacks)
            })
            .await;
        match stopped {
            Ok(view) => external_still_running(ctx, wave, &view).await,
            Err(err) => {
                ctx.log(
                    Level::Warn,
                    "",
                    format!("wave {} did not stop in time: {err}", k + 1),
                )
                .await;
            }
        }
    }
}

/// Says which services of `wave` run because someone else started them: the agent cannot stop
/// those.
async fn external_still_running(ctx: &JobCtx, wave: &[&OrderedService], view: &InstanceState) {
    for node in &view.nodes {
        for name in external_ready(wave, node) {
            ctx.log(
                Level::Warn,
                node.name(),
                format!("{name} was started by someone else and still runs: stop it where it was started (for Kubernetes, scale its StatefulSet to 0)"),
            )
            .await;
        }
    }
}

fn external_ready(wave: &[&OrderedService], node: &NodeState) -> Vec<String> {
    let Some(observed) = node.observed.as_ref() else {
        return Vec::new();
    };
    observed
        .service_states
        .iter()
        .filter(|s| s.external && s.state == ServiceState::Ready)
        .filter(|s| {
            wave.iter()
                .any(|w| w.name == s.name && w.role == node.role())
        })
        .map(|s| s.name.to_string())
        .collect()
}
