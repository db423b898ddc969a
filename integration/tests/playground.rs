//! `qserv playground`: the README's first command brings up a whole instance and tears it down;
//! with `--instances 2`, two of them side by side.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use qserv_integration::{binaries, run_cli, run_qserv};

/// A running playground: what it printed until it said it was up, and its later output.
struct Playground {
    child: Child,
    seen: String,
    rest: JoinHandle<String>,
}

impl Playground {
    fn start(args: &[&str], dir: &std::path::Path) -> Playground {
        let mut child = Command::new(binaries::path("qserv"))
            .arg("playground")
            .args(args)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the playground: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        let mut seen = String::new();
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("press Ctrl-C") {
                break;
            }
        }
        // Keep reading so the playground's last words find an open pipe.
        let rest =
            std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>().join("\n"));
        Playground { child, seen, rest }
    }

    /// The value of a printed `export NAME=VALUE` line.
    fn export(&mut self, name: &str) -> String {
        let prefix = format!("export {name}=");
        let found = self
            .seen
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix.as_str()).map(str::to_owned));
        found.unwrap_or_else(|| {
            let _ = self.child.kill();
            panic!("the playground did not come up (no {name}):\n{}", self.seen)
        })
    }

    /// SIGINT, as Ctrl-C: the playground stops everything and exits 0.
    fn stop(mut self) {
        let pid = i32::try_from(self.child.id()).unwrap_or_default();
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        let mut exited = None;
        for _ in 0..300 {
            if let Ok(Some(code)) = self.child.try_wait() {
                exited = Some(code);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let Some(code) = exited else {
            let _ = self.child.kill();
            panic!("the playground did not stop on SIGINT");
        };
        assert!(code.success(), "{code}");
        let tail = self.rest.join().unwrap_or_default();
        assert!(tail.contains("stopping the playground"), "{tail}");
    }
}

#[test]
fn playground_installs_brings_up_and_tears_down() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut playground = Playground::start(&["--workers", "2"], dir.path());
    let url = playground.export("QSERV_COORDINATOR");
    let path = format!("export PATH={}", playground.export("PATH"));
    assert!(
        playground.seen.contains("mode normal  health ok"),
        "{}",
        playground.seen
    );

    // The lines it prints work as printed in a new shell, where no qserv is on the PATH.
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

    playground.stop();
    let out = run_cli(&url, &["status"]);
    assert_eq!(out.code, 5, "the coordinator is gone");
}

#[test]
fn a_playground_of_two_instances_is_seen_side_by_side() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut playground = Playground::start(&["--workers", "1", "--instances", "2"], dir.path());
    let config = playground.export("QSERV_CONFIG");
    assert!(
        playground.seen.contains("dr1") && playground.seen.contains("dr2"),
        "both instances in its table:\n{}",
        playground.seen
    );

    let out = run_qserv(&["--config", &config, "-o", "json", "instances"]);
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
    let status = run_qserv(&[
        "--config",
        &config,
        "--instance",
        "dr2",
        "-o",
        "json",
        "status",
    ]);
    assert_eq!(status.json()["instance"], "dr2");

    playground.stop();
}

#[test]
fn a_playground_with_qserv_layout_starts_every_service_in_order_and_stops_them_all() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut playground = Playground::start(&["--workers", "1", "--layout", "qserv"], dir.path());
    let url = playground.export("QSERV_COORDINATOR");
    let status = run_cli(&url, &["-o", "json", "status"]).json();
    assert_eq!(status["mode"], "normal");
    for node in status["nodes"].as_array().into_iter().flatten() {
        let states = node["service_states"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert!(
            !states.is_empty() && states.iter().all(|s| s["state"] == "ready"),
            "{node}"
        );
    }
    playground.stop();
    let events = qserv_integration::standin::events(&dir.path().join("services.events"));
    let count = |kind| events.iter().filter(|e| e.kind == kind).count();
    use qserv_integration::standin::Kind;
    assert_eq!(count(Kind::Start), 9, "{events:#?}");
    assert_eq!(
        count(Kind::Stop),
        9,
        "every service stopped with the playground: {events:#?}"
    );
}
