//! Agents, a coordinator, and whole local instances built from them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::ChildGuard;
use crate::{CliOutput, MariaDb, binaries, free_port, run_cli, wait_for};

/// The password of the `qsmaster` account the harness's secrets files hold.
/// An agent or coordinator argument for the harness: start without `--insecure` although
/// plaintext.
pub const NO_INSECURE: &str = "--no-insecure";

pub const SECRET_QSMASTER: &str = "qsm-Secret-7f3a";
/// The password of the replication account.
pub const SECRET_REPL: &str = "repl-Secret-91c2";

fn accepts(port: u16) -> bool {
    // A connect to a free port of the ephemeral range on loopback can meet itself (the kernel
    // picks that very port as the source): connected, with nobody listening.
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok_and(|stream| stream.local_addr().ok() != stream.peer_addr().ok())
}

/// A plain HTTP/1.0 GET on 127.0.0.1; returns the status code and body.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// A `qserv-agent` process beside one database.
#[derive(Debug)]
pub struct AgentProcess {
    pub name: String,
    pub role: String,
    pub grpc_port: u16,
    pub http_port: u16,
    db_url: String,
    dir: PathBuf,
    extra_args: Vec<String>,
    /// A command the agent is started through (`prlimit --nofile=…`), empty for none.
    launcher: Vec<String>,
    tls: Option<PathBuf>,
    /// Killed on drop by the guard itself, which first prints the log's tail if a test failed.
    guard: Option<ChildGuard>,
}

impl AgentProcess {
    /// Starts an agent for `db` and waits until its gRPC port accepts connections.
    pub fn start(name: &str, role: &str, db: &MariaDb, dir: &Path) -> AgentProcess {
        AgentProcess::launch(name, role, db, dir, None)
    }

    /// Starts an agent that serves mutual TLS with the certificates in `certs`.
    pub fn start_tls(
        name: &str,
        role: &str,
        db: &MariaDb,
        dir: &Path,
        certs: &Path,
    ) -> AgentProcess {
        AgentProcess::launch(name, role, db, dir, Some(certs))
    }

    fn launch(
        name: &str,
        role: &str,
        db: &MariaDb,
        dir: &Path,
        certs: Option<&Path>,
    ) -> AgentProcess {
        let mut agent = AgentProcess {
            name: name.to_owned(),
            role: role.to_owned(),
            grpc_port: free_port(),
            http_port: free_port(),
            db_url: db.url(),
            dir: dir.join(format!("agent-{name}")),
            extra_args: Vec::new(),
            launcher: Vec::new(),
            tls: certs.map(Path::to_owned),
            guard: None,
        };
        std::fs::create_dir_all(&agent.dir)
            .unwrap_or_else(|e| panic!("cannot create agent dir: {e}"));
        agent.write_secrets(&format!(
            "mysqld_user_qserv_password = \"{SECRET_QSMASTER}\"\nrepl_user = \"qsreplica\"\nrepl_password = \"{SECRET_REPL}\"\n"
        ));
        agent.restart();
        agent
    }

    /// Every log file of this agent's process, for checks that nothing secret was written.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Replaces the agent's secrets file (mode 0600); takes effect at the next restart.
    pub fn write_secrets(&self, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join("secrets.toml");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write secrets: {e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("cannot chmod secrets: {e}"));
    }

    /// Extra command-line arguments for the next (re)start.
    pub fn set_args(&mut self, args: &[&str]) {
        self.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
    }

    /// Starts the agent through `launcher` from the next (re)start on (`prlimit --nofile=…`).
    pub fn set_launcher(&mut self, launcher: &[&str]) {
        self.launcher = launcher.iter().map(|a| (*a).to_owned()).collect();
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.grpc_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().and_then(ChildGuard::pid)
    }

    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Freezes the agent (SIGSTOP): its connections stay open but nothing answers.
    pub fn pause(&self) {
        if let Some(guard) = &self.guard {
            guard.pause();
        }
    }

    pub fn resume(&self) {
        if let Some(guard) = &self.guard {
            guard.resume();
        }
    }

    /// (Re)starts the process with the same ports and state directory.
    pub fn restart(&mut self) {
        self.kill();
        let agent = binaries::path("qserv-agent");
        let mut command = match self.launcher.split_first() {
            Some((first, rest)) => {
                let mut command = Command::new(first);
                command.args(rest).arg(&agent);
                command
            }
            None => Command::new(&agent),
        };
        command
            .args(["--name", &self.name, "--role", &self.role])
            .arg(format!("--listen=127.0.0.1:{}", self.grpc_port))
            .arg(format!("--http-listen=127.0.0.1:{}", self.http_port))
            .arg(format!("--db-url={}", self.db_url))
            .arg(format!("--state-dir={}", self.dir.join("state").display()))
            .arg(format!(
                "--secrets-file={}",
                self.dir.join("secrets.toml").display()
            ))
            .args(self.tls.iter().flat_map(|certs| {
                [
                    format!(
                        "--tls-cert={}",
                        certs.join(format!("agent-{}.pem", self.name)).display()
                    ),
                    format!(
                        "--tls-key={}",
                        certs.join(format!("agent-{}.key", self.name)).display()
                    ),
                    format!("--tls-ca={}", certs.join("ca.pem").display()),
                ]
            }))
            // Without certificates the tests speak plaintext, which takes changes only so.
            .args(
                (self.tls.is_none() && !self.extra_args.iter().any(|a| a == NO_INSECURE))
                    .then_some("--insecure"),
            )
            .args(self.extra_args.iter().filter(|a| *a != NO_INSECURE))
            .env("RUST_LOG", "info,qserv_agent=debug")
            // Inert, so tests can tell whether the agent's QSERV_ variables reach its services.
            .env("QSERV_HARNESS_MARKER", "agent");
        let log = self.dir.join("agent.log");
        let mut guard = ChildGuard::spawn(&format!("qserv-agent {}", self.name), command, &log);
        let port = self.grpc_port;
        wait_for(
            &format!("agent {} to listen", self.name),
            Duration::from_secs(30),
            || {
                if let Some(status) = guard.exited() {
                    panic!(
                        "agent {} exited with {status}:\n{}",
                        self.name,
                        guard.log_tail(20)
                    );
                }
                accepts(port).then_some(())
            },
        );
        self.guard = Some(guard);
    }

    pub fn http(&self, path: &str) -> Option<(u16, String)> {
        http_get(self.http_port, path)
    }
}

/// A `qserv-coordinator` process.
#[derive(Debug)]
pub struct CoordinatorProcess {
    pub port: u16,
    pub http_port: u16,
    /// Arguments every CLI call gets (the client certificate with TLS).
    pub client_args: Vec<String>,
    https: bool,
    args: Vec<String>,
    dir: PathBuf,
    /// Killed on drop by the guard itself, which first prints the log's tail if a test failed.
    guard: Option<ChildGuard>,
}

impl CoordinatorProcess {
    /// Starts a coordinator with its state in `dir`; waits until it serves gRPC.
    pub fn start(dir: &Path, args: &[String]) -> CoordinatorProcess {
        match CoordinatorProcess::try_start(dir, args) {
            Ok(coordinator) => coordinator,
            Err((status, log)) => panic!("coordinator exited with {status}:\n{log}"),
        }
    }

    /// Like `start`, but a coordinator that exits at start-up is returned as (status, log).
    pub fn try_start(
        dir: &Path,
        args: &[String],
    ) -> Result<CoordinatorProcess, (std::process::ExitStatus, String)> {
        let mut coordinator = CoordinatorProcess {
            port: free_port(),
            http_port: free_port(),
            client_args: Vec::new(),
            https: args.iter().any(|a| a.starts_with("--tls-cert")),
            args: args.to_vec(),
            dir: dir.to_owned(),
            guard: None,
        };
        coordinator.try_restart()?;
        Ok(coordinator)
    }

    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut guard) = self.guard.take() {
            guard.kill();
        }
    }

    /// Replaces the extra arguments (for the next restart); the spec stays.
    pub fn set_args(&mut self, args: &[String]) {
        self.args = args.to_vec();
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn restart(&mut self) {
        if let Err((status, log)) = self.try_restart() {
            panic!("coordinator exited with {status}:\n{log}");
        }
    }

    /// `--insecure` for a coordinator without TLS, unless a test said otherwise with
    /// `--no-insecure` (dropped here: it is the harness's word, not the coordinator's).
    fn plaintext_args(&self) -> Option<&'static str> {
        let tls = self.args.iter().any(|a| a.starts_with("--tls-cert"));
        let secure = self.args.iter().any(|a| a == NO_INSECURE);
        (!tls && !secure).then_some("--insecure")
    }

    fn try_restart(&mut self) -> Result<(), (std::process::ExitStatus, String)> {
        self.kill();
        std::fs::create_dir_all(&self.dir)
            .unwrap_or_else(|e| panic!("cannot create coordinator dir: {e}"));
        let mut command = Command::new(binaries::path("qserv-coordinator"));
        command
            .arg(format!("--listen=127.0.0.1:{}", self.port))
            .arg(format!("--http-listen=127.0.0.1:{}", self.http_port))
            .arg(format!("--state-dir={}", self.dir.join("state").display()))
            .args(self.plaintext_args())
            .args(self.args.iter().filter(|a| *a != NO_INSECURE))
            .env("RUST_LOG", "info,qserv_coordinator=debug");
        let log = self.dir.join("coordinator.log");
        let mut guard = ChildGuard::spawn("qserv-coordinator", command, &log);
        let port = self.port;
        let exited = wait_for(
            "the coordinator to listen or exit",
            Duration::from_secs(30),
            || {
                if let Some(status) = guard.exited() {
                    return Some(Some(status));
                }
                accepts(port).then_some(None)
            },
        );
        if let Some(status) = exited {
            return Err((status, guard.log_tail(50)));
        }
        self.guard = Some(guard);
        Ok(())
    }

    /// Runs the CLI against this coordinator.
    pub fn cli(&self, args: &[&str]) -> CliOutput {
        let mut all: Vec<&str> = self.client_args.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        run_cli(&self.url(), &all)
    }

    /// Runs the CLI against this coordinator; killed (code -1) if it runs longer than `limit`.
    pub fn cli_within(&self, args: &[&str], limit: Duration) -> CliOutput {
        let mut all: Vec<&str> = self.client_args.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        crate::run_cli_within(&self.url(), &all, limit)
    }

    /// `qserv -o json status`, which must succeed.
    pub fn status(&self) -> serde_json::Value {
        let out = self.cli(&["-o", "json", "status"]);
        assert_eq!(out.code, 0, "qserv status failed: {}", out.stderr);
        out.json()
    }

    /// Polls the status until `check` accepts the entry of node `name`.
    pub fn wait_node(
        &self,
        name: &str,
        what: &str,
        limit: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        wait_for(&format!("{name}: {what}"), limit, || {
            let status = self.status();
            let node = status["nodes"]
                .as_array()?
                .iter()
                .find(|n| n["name"] == name)?
                .clone();
            check(&node).then_some(node)
        })
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.guard
            .as_ref()
            .map(|g| g.log_tail(lines))
            .unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.guard.as_ref().and_then(ChildGuard::pid)
    }

    /// SIGSTOP: frozen with its connections open, as a hung host or a long pause.
    pub fn pause(&self) {
        if let Some(guard) = &self.guard {
            guard.pause();
        }
    }

    pub fn resume(&self) {
        if let Some(guard) = &self.guard {
            guard.resume();
        }
    }

    /// The whole log of this coordinator's state directory, across restarts.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("coordinator.log")).unwrap_or_default()
    }

    /// Every file of its state directory (its store among them), as bytes.
    pub fn state_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut files = Vec::new();
        let mut dirs = vec![self.dir.join("state")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    files.push((path, bytes));
                }
            }
        }
        files
    }
}

/// A node of a local instance: its name and role.
#[derive(Debug, Clone, Copy)]
pub struct NodeSetup<'a> {
    pub name: &'a str,
    pub role: &'a str,
}

/// The smallest whole instance: a czar, one worker and the replication node.
pub const THREE_NODES: [NodeSetup<'static>; 3] = [
    NodeSetup {
        name: "czar-0",
        role: "czar",
    },
    NodeSetup {
        name: "worker-1",
        role: "worker",
    },
    NodeSetup {
        name: "repl-0",
        role: "repl",
    },
];

/// A whole local instance: one MariaDB and one agent per node, and a coordinator started with
/// the spec. Fields drop in order: coordinator, agents, databases, then the directory.
#[derive(Debug)]
pub struct Cluster {
    pub coordinator: CoordinatorProcess,
    pub agents: Vec<AgentProcess>,
    pub dbs: Vec<MariaDb>,
    pub name: String,
    dir: TempDir,
}

impl Cluster {
    pub fn start(name: &str, nodes: &[NodeSetup<'_>]) -> Cluster {
        Cluster::start_with(name, nodes, &[])
    }

    /// Like `start`, with mutual TLS everywhere from the certificates in `certs` (made by
    /// `qserv certs init`); the CLI calls present `operator.pem`.
    pub fn start_secure(name: &str, nodes: &[NodeSetup<'_>], certs: &Path) -> Cluster {
        Cluster::start_secure_with(name, nodes, certs, &[])
    }

    /// Like `start_secure`, with more coordinator arguments.
    pub fn start_secure_with(
        name: &str,
        nodes: &[NodeSetup<'_>],
        certs: &Path,
        extra: &[String],
    ) -> Cluster {
        let tls = |file: &str, flag: &str| format!("--{flag}={}", certs.join(file).display());
        let mut args = vec![
            tls("coordinator.pem", "tls-cert"),
            tls("coordinator.key", "tls-key"),
            tls("ca.pem", "tls-ca"),
        ];
        args.extend_from_slice(extra);
        let mut cluster = Cluster::build(name, nodes, &args, Some(certs));
        cluster.coordinator.client_args = vec![
            tls("operator.pem", "tls-cert"),
            tls("operator.key", "tls-key"),
            tls("ca.pem", "tls-ca"),
        ];
        cluster
    }

    /// Like `start`, with extra coordinator arguments (e.g. `--migrations-dir`).
    pub fn start_with(name: &str, nodes: &[NodeSetup<'_>], coordinator_args: &[String]) -> Cluster {
        Cluster::build(name, nodes, coordinator_args, None)
    }

    fn build(
        name: &str,
        nodes: &[NodeSetup<'_>],
        coordinator_args: &[String],
        certs: Option<&Path>,
    ) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("qserv-it-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a cluster directory: {e}"));
        let dbs: Vec<MariaDb> = nodes.iter().map(|_| MariaDb::start()).collect();
        let agents: Vec<AgentProcess> = nodes
            .iter()
            .zip(&dbs)
            .map(|(node, db)| match certs {
                None => AgentProcess::start(node.name, node.role, db, dir.path()),
                Some(certs) => AgentProcess::start_tls(node.name, node.role, db, dir.path(), certs),
            })
            .collect();
        let spec = dir.path().join("spec.toml");
        std::fs::write(&spec, spec_text(name, &agents))
            .unwrap_or_else(|e| panic!("cannot write spec: {e}"));
        let mut args = vec![format!("--spec={}", spec.display())];
        args.extend_from_slice(coordinator_args);
        let coordinator = CoordinatorProcess::start(&dir.path().join("coordinator"), &args);
        Cluster {
            coordinator,
            agents,
            dbs,
            name: name.to_owned(),
            dir,
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// czar-0, repl-0 and `workers` workers (worker-1…), as (name, role).
    pub fn standard_nodes(workers: usize) -> Vec<(String, &'static str)> {
        let mut nodes = vec![("czar-0".to_owned(), "czar"), ("repl-0".to_owned(), "repl")];
        nodes.extend((1..=workers).map(|i| (format!("worker-{i}"), "worker")));
        nodes
    }

    /// A standard instance, every database ready and `qserv install` done.
    pub fn installed(name: &str, workers: usize, coordinator_args: &[String]) -> Cluster {
        Cluster::installed_with_secrets(name, workers, coordinator_args, None)
    }

    /// Like `installed`, with every agent given `secrets` as its secrets file before install.
    pub fn installed_with_secrets(
        name: &str,
        workers: usize,
        coordinator_args: &[String],
        secrets: Option<&str>,
    ) -> Cluster {
        let names = Cluster::standard_nodes(workers);
        let setup: Vec<NodeSetup<'_>> = names
            .iter()
            .map(|(name, role)| NodeSetup { name, role })
            .collect();
        let mut cluster = Cluster::start_with(name, &setup, coordinator_args);
        if let Some(secrets) = secrets {
            for agent in &mut cluster.agents {
                agent.write_secrets(secrets);
                agent.restart();
            }
        }
        cluster.wait_ready();
        let out = cluster.coordinator.cli(&["install"]);
        assert_eq!(
            out.code, 0,
            "install failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        cluster
    }

    /// Waits until the coordinator sees every node's database ready.
    pub fn wait_ready(&self) {
        for agent in &self.agents {
            self.coordinator
                .wait_node(&agent.name, "ready", Duration::from_secs(30), |n| {
                    n["db_ready"] == true
                });
        }
    }

    pub fn index(&self, node: &str) -> usize {
        self.agents
            .iter()
            .position(|a| a.name == node)
            .unwrap_or_else(|| panic!("no node {node}"))
    }

    pub fn db(&self, node: &str) -> &MariaDb {
        &self.dbs[self.index(node)]
    }

    pub fn db_mut(&mut self, node: &str) -> &mut MariaDb {
        let i = self.index(node);
        &mut self.dbs[i]
    }

    /// Starts a database and an agent that are not in the spec (for `workers add`).
    pub fn start_extra(&mut self, name: &str, role: &str) -> String {
        let db = MariaDb::start();
        let agent = AgentProcess::start(name, role, &db, self.dir.path());
        let url = agent.url();
        self.dbs.push(db);
        self.agents.push(agent);
        url
    }

    /// Restarts the coordinator with another migrations directory (the spec stays).
    pub fn use_migrations(&mut self, dir: &tempfile::TempDir) {
        let mut args: Vec<String> = self
            .coordinator
            .args()
            .iter()
            .filter(|a| !a.starts_with("--migrations-dir="))
            .cloned()
            .collect();
        args.push(crate::migrations::arg(dir));
        self.coordinator.set_args(&args);
        self.coordinator.restart();
    }

    pub fn agent_mut(&mut self, node: &str) -> &mut AgentProcess {
        let i = self.index(node);
        &mut self.agents[i]
    }
}

/// The instance spec (DESIGN §5) for these agents.
pub fn spec_text(name: &str, agents: &[AgentProcess]) -> String {
    let mut text = format!("name = \"{name}\"\n");
    for agent in agents {
        text.push_str(&format!(
            "\n[[nodes]]\nname = \"{}\"\nrole = \"{}\"\nagent = \"{}\"\n",
            agent.name,
            agent.role,
            agent.url()
        ));
    }
    text
}
