//! How a followed job's progress is shown: live bars on a terminal (one line per node with its
//! state and detail, an overall bar, elapsed time), or a plain line per change elsewhere (a
//! pipe, a log, `-o json` callers pass `quiet`).

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use qserv_proto::v1::{Job, JobNode, JobNodeState, StepState};

use crate::table::sanitize;

pub trait Progress {
    /// Shows what changed since the last `update`.
    fn update(&mut self, job: &Job);
    /// Leaves the last state on screen.
    fn finish(&mut self);
}

/// The text a node's line carries: state, detail and error, defanged for a terminal.
fn node_text(node: &JobNode) -> String {
    let mut line = format!("{} {}", node.state().name(), node.detail);
    if !node.error.is_empty() {
        line.push_str(&format!(" — {}", node.error));
    }
    sanitize(line.trim_end())
}

/// Nodes finished (done, failed or skipped) out of all, for the overall bar.
fn settled(job: &Job) -> (u64, u64) {
    let total = job.nodes.len() as u64;
    let done = job
        .nodes
        .iter()
        .filter(|n| {
            matches!(
                n.state(),
                JobNodeState::Done | JobNodeState::Failed | JobNodeState::Skipped
            )
        })
        .count() as u64;
    (done, total)
}

/// The step running now, or the last one that changed.
fn current_step(job: &Job) -> String {
    job.steps
        .iter()
        .rev()
        .find(|s| s.state() == StepState::Running)
        .or_else(|| {
            job.steps
                .iter()
                .rev()
                .find(|s| s.state() != StepState::Pending)
        })
        .map(|s| format!("{}: {}", s.name, s.state().name()))
        .unwrap_or_default()
}

/// A line per change, for pipes and logs.
#[derive(Default)]
pub struct Plain {
    seen_nodes: BTreeMap<String, String>,
    seen_steps: BTreeMap<String, StepState>,
}

impl Progress for Plain {
    fn update(&mut self, job: &Job) {
        let mut out = std::io::stdout();
        for step in &job.steps {
            let state = step.state();
            if self.seen_steps.get(&step.name) != Some(&state) && state != StepState::Pending {
                let _ = writeln!(out, "[{}] step {}: {}", job.id, step.name, state.name());
                self.seen_steps.insert(step.name.clone(), state);
            }
        }
        for node in &job.nodes {
            let line = node_text(node);
            if self.seen_nodes.get(&node.name) != Some(&line) {
                let _ = writeln!(out, "[{}]   {}: {line}", job.id, sanitize(&node.name));
                self.seen_nodes.insert(node.name.clone(), line);
            }
        }
        let _ = out.flush();
    }

    fn finish(&mut self) {}
}

/// Bars redrawn in place, for a terminal.
pub struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    nodes: BTreeMap<String, ProgressBar>,
    name_width: usize,
}

impl Live {
    pub fn new() -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let overall = multi.add(ProgressBar::new(0));
        overall.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} nodes  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(200));
        Live {
            multi,
            overall,
            nodes: BTreeMap::new(),
            name_width: 0,
        }
    }

    fn node_bar(&mut self, name: &str) -> ProgressBar {
        if let Some(bar) = self.nodes.get(name) {
            return bar.clone();
        }
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("  {prefix} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        self.nodes.insert(name.to_owned(), bar.clone());
        bar
    }
}

impl Progress for Live {
    fn update(&mut self, job: &Job) {
        let (done, total) = settled(job);
        self.overall.set_length(total);
        self.overall.set_position(done);
        self.overall.set_message(sanitize(&current_step(job)));
        self.name_width = job
            .nodes
            .iter()
            .map(|n| n.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(self.name_width);
        let width = self.name_width;
        for node in &job.nodes {
            let bar = self.node_bar(&node.name);
            bar.set_prefix(format!("{:<width$}", sanitize(&node.name)));
            bar.set_message(node_text(node));
        }
    }

    fn finish(&mut self) {
        self.overall.finish();
        for bar in self.nodes.values() {
            bar.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, state: JobNodeState, detail: &str) -> JobNode {
        JobNode {
            name: name.to_owned(),
            state: state.into(),
            detail: detail.to_owned(),
            ..JobNode::default()
        }
    }

    #[test]
    fn counts_settled_nodes_and_names_the_running_step() {
        let job = Job {
            nodes: vec![
                node("a", JobNodeState::Done, "x"),
                node("b", JobNodeState::Running, "migrate"),
                node("c", JobNodeState::Failed, "y"),
            ],
            steps: vec![
                qserv_proto::v1::JobStep {
                    name: "check".to_owned(),
                    state: StepState::Succeeded.into(),
                    ..Default::default()
                },
                qserv_proto::v1::JobStep {
                    name: "apply".to_owned(),
                    state: StepState::Running.into(),
                    ..Default::default()
                },
            ],
            ..Job::default()
        };
        assert_eq!(settled(&job), (2, 3));
        assert_eq!(current_step(&job), "apply: running");
    }

    #[test]
    fn node_lines_are_defanged() {
        let mut n = node("w", JobNodeState::Failed, "migrate\u{1b}[2J");
        n.error = "boom".to_owned();
        assert_eq!(node_text(&n), "failed migrate\u{fffd}[2J — boom");
    }
}
