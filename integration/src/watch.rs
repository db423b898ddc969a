//! `qserv -o json status --watch` as a timestamped stream, to see exactly when a change arrived.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use crate::binaries;

pub struct StatusWatch {
    child: Child,
    updates: Receiver<(Instant, serde_json::Value)>,
}

impl StatusWatch {
    pub fn start(coordinator: &str) -> StatusWatch {
        let mut child = Command::new(binaries::path("qserv"))
            .args([
                "--coordinator",
                coordinator,
                "-o",
                "json",
                "status",
                "--watch",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start qserv status --watch: {e}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("qserv status --watch has no stdout"));
        let (tx, updates) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Ok(doc) = serde_json::from_str(&line)
                    && tx.send((Instant::now(), doc)).is_err()
                {
                    break;
                }
            }
        });
        StatusWatch { child, updates }
    }

    /// The arrival time and content of the first update that satisfies `check`.
    pub fn until(
        &self,
        limit: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> (Instant, serde_json::Value) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.updates.recv_timeout(left) {
                Ok((at, doc)) if check(&doc) => return (at, doc),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no matching status update within {limit:?}")
                }
                Err(RecvTimeoutError::Disconnected) => panic!("qserv status --watch ended"),
            }
        }
    }
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl StatusWatch {
    /// Every update that arrives within `window`.
    pub fn collect(&self, window: Duration) -> Vec<(Instant, serde_json::Value)> {
        let end = Instant::now() + window;
        let mut seen = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.updates.recv_timeout(left) {
                Ok(update) => seen.push(update),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return seen,
            }
        }
    }
}

/// The entry of node `name` in a status document.
pub fn node<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["nodes"]
        .as_array()?
        .iter()
        .find(|n| n["name"] == name)
}

/// Resident set size of a process in KiB, from /proc.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
