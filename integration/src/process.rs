//! Child processes that die with their handle, and with the test that started them.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running child whose output goes to a log file; killed on drop.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ChildGuard {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> ChildGuard {
        let file = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open log {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log handle: {e}"));
        command.stdin(Stdio::null()).stdout(file).stderr(err);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        ChildGuard {
            name: name.to_owned(),
            child: Some(child),
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Whether the process has exited (and reaps it if so).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGKILL and reap: the process gets no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then SIGKILL if the process has not exited after `grace`.
    pub fn terminate(&mut self, grace: Duration) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGTERM);
            if self.wait_exit(grace).is_some() {
                self.child = None;
                return;
            }
        }
        self.kill();
    }

    /// SIGSTOP: the process freezes with its sockets open, like a hung host; no FIN, no RST.
    pub fn pause(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGSTOP);
        }
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        if let Some(pid) = self.pid() {
            send_signal(pid, libc::SIGCONT);
        }
    }

    /// The last `lines` lines of the log, for failure reports.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!(
                "---- {} (log {}) ----\n{}",
                self.name,
                self.log.display(),
                self.log_tail(30)
            );
        }
        self.kill();
    }
}

#[allow(unsafe_code)]
fn send_signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Asks the kernel to SIGKILL the child when the thread that started it ends, so servers never
/// outlive a test that was aborted or killed before its handles could drop.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    // SAFETY: the closure runs between fork and exec and calls only prctl(2), which is
    // async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}
