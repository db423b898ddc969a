//! One exec service's processes: started through `sh -c` in a process group of its own, with no
//! `QSERV_*` variable (the database password among them) in its environment and its output in
//! a file; stopped with SIGTERM to the whole group, then SIGKILL after the grace period.

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::controllers::service_group;

/// How often an adopted group, which cannot be waited for, is checked.
const ADOPTED_POLL: Duration = Duration::from_millis(200);

/// A service's processes.
pub enum Running {
    /// Started by this agent: it can wait for the shell.
    Child(Child),
    /// Left running by an earlier agent that was killed: only its group is known.
    Adopted(i32),
}

/// How the service's shell ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// `None` when a signal ended it, or for an adopted group.
    pub code: Option<i32>,
    pub why: String,
}

impl Running {
    pub fn pgid(&self) -> Option<i32> {
        match self {
            Running::Child(child) => child.id().and_then(|id| i32::try_from(id).ok()),
            Running::Adopted(pgid) => Some(*pgid),
        }
    }

    /// Resolves when the service ended: the shell exited, or no process of an adopted group
    /// is left.
    pub async fn ended(&mut self) -> Ended {
        match self {
            Running::Child(child) => match child.wait().await {
                Ok(status) => Ended {
                    code: status.code(),
                    why: format!("it exited ({status})"),
                },
                Err(err) => Ended {
                    code: None,
                    why: format!("cannot wait for it: {err}"),
                },
            },
            Running::Adopted(pgid) => {
                while service_group::alive(*pgid) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                Ended {
                    code: None,
                    why: "the processes an earlier agent left running ended".to_owned(),
                }
            }
        }
    }

    /// Kills what is left of the group at once (after the shell ended, its children may not
    /// have).
    pub fn kill(&self) {
        if let Some(pgid) = self.pgid() {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }

    /// SIGTERM to the whole group, then SIGKILL if anything of it is still there after
    /// `grace`. Says whether it had to kill.
    pub async fn stop(self, grace: Duration) -> bool {
        let Some(pgid) = self.pgid() else {
            return false;
        };
        let group = Pid::from_raw(pgid);
        let _ = killpg(group, Signal::SIGTERM);
        let gone = async {
            match self {
                Running::Child(mut child) => {
                    let _ = child.wait().await;
                }
                Running::Adopted(pgid) => {
                    while service_group::alive(pgid) {
                        tokio::time::sleep(ADOPTED_POLL / 4).await;
                    }
                }
            }
        };
        let killed = tokio::time::timeout(grace, gone).await.is_err();
        // Children that outlived the shell still belong to the group.
        let _ = killpg(group, Signal::SIGKILL);
        killed
    }
}

/// Starts `command` in its own process group, its output appended to `output`.
pub fn spawn(command: &str, output: File) -> std::io::Result<Running> {
    let stderr = output.try_clone()?;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::from(output))
        .stderr(Stdio::from(stderr))
        .process_group(0)
        .kill_on_drop(true);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("QSERV_") {
            cmd.env_remove(key);
        }
    }
    cmd.spawn().map(Running::Child)
}
