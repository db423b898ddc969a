//! systemd integration: the unit files pass `systemd-analyze verify`, and both binaries tell a
//! `NOTIFY_SOCKET` when they serve and ping the watchdog they are given.

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use qserv_integration::process::ChildGuard;
use qserv_integration::{binaries, free_port};

fn units_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd")
}

#[test]
fn unit_files_verify() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut units = Vec::new();
    // The template is verified as one of its instances.
    for (file, name) in [
        ("qserv-agent.service", "qserv-agent.service"),
        ("qserv-coordinator.service", "qserv-coordinator.service"),
        (
            "qserv-coordinator@.service",
            "qserv-coordinator@dr1.service",
        ),
    ] {
        let text =
            std::fs::read_to_string(units_dir().join(file)).unwrap_or_else(|e| panic!("{e}"));
        for key in [
            "Type=notify",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "StateDirectory=",
            "LoadCredential=",
            "User=",
        ] {
            assert!(text.contains(key), "{name} lacks {key}");
        }
        // verify checks that ExecStart's binary exists: point it at the one just built.
        let binary = file.trim_end_matches(".service").trim_end_matches('@');
        let text = text.replace(
            &format!("/usr/bin/{binary}"),
            &binaries::path(binary).display().to_string(),
        );
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        units.push(path);
    }
    // The Qserv services' template, verified as one of Qserv's services; its ExecStart runs
    // Qserv's entrypoint, which this machine has not: a stand-in takes its place.
    let template = std::fs::read_to_string(units_dir().join("qserv@.service"))
        .unwrap_or_else(|e| panic!("{e}"));
    for key in [
        "ExecStart=/usr/bin/entrypoint %i",
        "PartOf=qserv-agent.service",
        "NoNewPrivileges=yes",
    ] {
        assert!(template.contains(key), "qserv@.service lacks {key}");
    }
    let path = dir.path().join("qserv@worker-xrootd.service");
    let standin = binaries::path("qserv-standin").display().to_string();
    std::fs::write(&path, template.replace("/usr/bin/entrypoint", &standin))
        .unwrap_or_else(|e| panic!("{e}"));
    units.push(path);
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .args(&units)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze is missing (apt-get install -y systemd): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    assert!(
        !stderr.contains("Unknown") && !stderr.contains("Ignoring"),
        "warnings: {stderr}"
    );
}

/// Starts `command` with a notify socket and watchdog; returns what it sent within `limit`.
fn notifications(mut command: Command, limit: Duration) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap_or_else(|e| panic!("{e}"));
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap_or_else(|e| panic!("{e}"));
    command
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "300000");
    let _child = ChildGuard::spawn("notified", command, &dir.path().join("log"));
    let start = std::time::Instant::now();
    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    while start.elapsed() < limit {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            if messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2 {
                break;
            }
        }
    }
    messages
}

#[test]
fn both_binaries_notify_ready_and_ping_the_watchdog() {
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut coordinator = Command::new(binaries::path("qserv-coordinator"));
    coordinator
        .arg(format!("--listen=127.0.0.1:{}", free_port()))
        .arg(format!("--http-listen=127.0.0.1:{}", free_port()))
        .arg(format!("--state-dir={}", state.path().join("c").display()));
    let mut agent = Command::new(binaries::path("qserv-agent"));
    agent
        .args(["--name", "worker-1", "--role", "worker"])
        .arg(format!("--listen=127.0.0.1:{}", free_port()))
        .arg(format!("--http-listen=127.0.0.1:{}", free_port()))
        .arg(format!("--db-url=mysql://root@127.0.0.1:{}", free_port()))
        .arg(format!("--state-dir={}", state.path().join("a").display()));
    for (name, command) in [("coordinator", coordinator), ("agent", agent)] {
        let messages = notifications(command, Duration::from_secs(20));
        assert!(
            messages.first().is_some_and(|m| m.starts_with("READY=1")),
            "{name}: {messages:?}"
        );
        assert!(
            messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2,
            "{name}: {messages:?}"
        );
    }
}
