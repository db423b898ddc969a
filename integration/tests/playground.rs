//! `qserv playground`: the README's first command brings up a whole instance and tears it down.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use qserv_integration::{binaries, run_cli};

#[test]
fn playground_installs_brings_up_and_tears_down() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(binaries::path("qserv"))
        .args(["playground", "--workers", "2", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the playground: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut url = None;
    let mut path = None;
    let mut seen = String::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(value) = line.trim().strip_prefix("export QSERV_COORDINATOR=") {
            url = Some(value.to_owned());
        }
        if line.trim().starts_with("export PATH=") {
            path = Some(line.trim().to_owned());
        }
        if line.contains("press Ctrl-C") {
            break;
        }
    }
    let Some(url) = url else {
        let _ = child.kill();
        panic!("the playground did not come up:\n{seen}");
    };
    assert!(seen.contains("mode normal  health ok"), "{seen}");
    // Keep reading so the playground's last words find an open pipe.
    let drain =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));

    // The lines it prints work as printed in a new shell, where no qserv is on the PATH.
    let path = path.unwrap_or_else(|| panic!("no PATH line printed:\n{seen}"));
    let printed = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{path}\nexport QSERV_COORDINATOR={url}\nqserv status"
        ))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap_or_else(|e| panic!("cannot run sh: {e}"));
    assert!(
        printed.status.success()
            && String::from_utf8_lossy(&printed.stdout).contains("mode normal"),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );

    let status = run_cli(&url, &["-o", "json", "status"]).json();
    assert_eq!(status["mode"], "normal");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(4));
    assert!(
        status["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|n| n["db_ready"] == true)
    );

    let pid = i32::try_from(child.id()).unwrap_or_default();
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let mut exited = None;
    for _ in 0..300 {
        if let Ok(Some(code)) = child.try_wait() {
            exited = Some(code);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(code) = exited else {
        let _ = child.kill();
        panic!("the playground did not stop on SIGINT");
    };
    assert!(code.success(), "{code}");
    let tail = drain.join().unwrap_or_default();
    assert!(tail.contains("stopping the playground"), "{tail}");
    let out = run_cli(&url, &["status"]);
    assert_eq!(out.code, 5, "the coordinator is gone");
}

#[test]
fn a_playground_of_two_instances_is_seen_side_by_side() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(binaries::path("qserv"))
        .args(["playground", "--workers", "1", "--instances", "2", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the playground: {e}"));
    let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let mut config = None;
    let mut seen = String::new();
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(value) = line.trim().strip_prefix("export QSERV_CONFIG=") {
            config = Some(value.to_owned());
        }
        if line.contains("press Ctrl-C") {
            break;
        }
    }
    let Some(config) = config else {
        let _ = child.kill();
        panic!("the playground did not come up:\n{seen}");
    };
    let drain =
        std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
    assert!(
        seen.contains("dr1") && seen.contains("dr2"),
        "both instances in its table:\n{seen}"
    );

    let out = qserv_integration::run_qserv(&["--config", &config, "-o", "json", "instances"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let doc = out.json();
    let rows = doc["instances"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["dr1", "dr2"]);
    assert!(
        rows.iter()
            .all(|r| r["mode"] == "normal" && r["reachable"] == true),
        "{doc}"
    );
    let status = qserv_integration::run_qserv(&[
        "--config",
        &config,
        "--instance",
        "dr2",
        "-o",
        "json",
        "status",
    ]);
    assert_eq!(status.json()["instance"], "dr2");

    let pid = i32::try_from(child.id()).unwrap_or_default();
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let mut exited = None;
    for _ in 0..300 {
        if let Ok(Some(code)) = child.try_wait() {
            exited = Some(code);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Some(code) = exited else {
        let _ = child.kill();
        panic!("the playground did not stop on SIGINT");
    };
    assert!(code.success(), "{code}");
    let tail = drain.join().unwrap_or_default();
    assert!(tail.contains("stopping the playground"), "{tail}");
}
