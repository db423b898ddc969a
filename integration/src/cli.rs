//! Running the `qserv` CLI as an operator would.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::binaries;

#[derive(Debug)]
pub struct CliOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CliOutput {
    /// The last JSON document on stdout.
    pub fn json(&self) -> serde_json::Value {
        let last = self
            .stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!(
                "qserv printed no JSON ({e}); exit {}\nstdout: {}\nstderr: {}",
                self.code, self.stdout, self.stderr
            )
        })
    }
}

/// Runs `qserv --coordinator URL ARGS…`, with no configuration file.
pub fn run_cli(coordinator: &str, args: &[&str]) -> CliOutput {
    let mut all = vec!["--coordinator", coordinator];
    all.extend_from_slice(args);
    run_qserv(&all)
}

/// Runs `qserv ARGS…` alone: the environment names no coordinator, instance or output, and no
/// configuration file unless ARGS does (`--config`), whatever the user running the tests has.
pub fn run_qserv(args: &[&str]) -> CliOutput {
    let start = Instant::now();
    let out = Command::new(binaries::path("qserv"))
        .args(args)
        .env_remove("QSERV_COORDINATOR")
        .env_remove("QSERV_OUTPUT")
        .env_remove("QSERV_INSTANCE")
        .env("QSERV_CONFIG", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("cannot run qserv: {e}"));
    CliOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// Like [`run_cli`], but a CLI still running after `limit` is killed and reported with code
/// -1, so that a test of a hang fails instead of hanging itself.
pub fn run_cli_within(coordinator: &str, args: &[&str], limit: Duration) -> CliOutput {
    use std::io::Read;
    let start = Instant::now();
    let mut child = Command::new(binaries::path("qserv"))
        .arg("--coordinator")
        .arg(coordinator)
        .args(args)
        .env_remove("QSERV_COORDINATOR")
        .env_remove("QSERV_OUTPUT")
        .env_remove("QSERV_INSTANCE")
        .env("QSERV_CONFIG", "/dev/null")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run qserv: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    CliOutput {
        code,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}
