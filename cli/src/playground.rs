//! `qserv playground`: a whole local instance on loopback — one MariaDB server per node from the
//! system's `mariadbd`, an agent per node, a coordinator with SQLite — installed, brought up,
//! shown, and torn down on Ctrl-C. `--instances N` starts N such instances (dr1, dr2, …) side
//! by side, as a site runs data releases, with a configuration file naming them.
//! `--layout qserv` gives every node stand-ins for Qserv's services, started in their order
//! (`playground_layout.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::exit::{CliError, Exit};
use crate::lifecycle::{self, Follow, Mutation};
use crate::{Output, status};

fn fail(message: impl Into<String>) -> CliError {
    CliError::new(Exit::Other, message)
}

fn find(names: &[&str], extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .collect();
    names
        .iter()
        .flat_map(|n| dirs.iter().map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// The agent and coordinator binaries: next to this `qserv`, else on the PATH.
fn sibling(name: &str) -> Result<PathBuf, CliError> {
    let here = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)));
    here.filter(|p| p.is_file())
        .or_else(|| find(&[name], &[]))
        .ok_or_else(|| {
            fail(format!(
                "{name} not found next to qserv or on the PATH; build it with 'cargo build --bins'"
            ))
        })
}

/// `DIR/bin/qserv`, a link to this binary; returns `DIR/bin`.
fn link_qserv(dir: &std::path::Path) -> Result<PathBuf, CliError> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)
        .map_err(|e| fail(format!("cannot create {}: {e}", bin.display())))?;
    let exe =
        std::env::current_exe().map_err(|e| fail(format!("cannot find this qserv binary: {e}")))?;
    let link = bin.join("qserv");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&exe, &link)
        .map_err(|e| fail(format!("cannot link {}: {e}", link.display())))?;
    Ok(bin)
}

fn free_port() -> Result<u16, CliError> {
    qserv_proto::transport::free_local_port().ok_or_else(|| fail("no free port on 127.0.0.1"))
}

fn random_secret() -> String {
    let mut buf = [0u8; 12];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut buf);
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

async fn wait_port(port: u16, what: &str, child: &mut Child, log: &Path) -> Result<(), CliError> {
    for _ in 0..600 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(10).collect();
            return Err(fail(format!(
                "{what} exited ({status}) at start; last lines of {}:\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(fail(format!(
        "{what} did not listen on port {port} within 60 s"
    )))
}

fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Child, CliError> {
    let file = std::fs::File::create(log)
        .map_err(|e| fail(format!("cannot create {}: {e}", log.display())))?;
    let err = file.try_clone().map_err(|e| fail(e.to_string()))?;
    Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot start {}: {e}", program.display())))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The programs a playground runs.
struct Tools {
    mariadbd: PathBuf,
    agent: PathBuf,
    coordinator: PathBuf,
    /// An empty MariaDB data directory, copied for each node.
    template: PathBuf,
    /// `qserv-standin`, with `--layout qserv`.
    standin: Option<PathBuf>,
}

/// One running instance: its coordinator's address and every process it started.
struct Instance {
    name: String,
    url: String,
    children: Vec<Child>,
}

pub async fn run(
    workers: u32,
    instances: u32,
    dir: Option<PathBuf>,
    layout: Option<qserv_model::Layout>,
) -> Result<(), CliError> {
    let install_hint = "install it with 'sudo apt-get install -y mariadb-server' (Debian, Ubuntu)";
    let mariadbd = find(&["mariadbd", "mysqld"], &["/usr/sbin", "/usr/libexec"])
        .ok_or_else(|| fail(format!("mariadbd not found: {install_hint}")))?;
    let install_db = find(&["mariadb-install-db", "mysql_install_db"], &["/usr/bin"])
        .ok_or_else(|| fail(format!("mariadb-install-db not found: {install_hint}")))?;
    let workers = workers.clamp(1, 64);
    let instances = instances.clamp(1, 8);

    let scratch;
    let dir = match dir {
        Some(dir) => dir,
        None => {
            scratch = tempfile::Builder::new()
                .prefix("qserv-playground-")
                .tempdir_in("/tmp")
                .map_err(|e| fail(format!("cannot create a playground directory: {e}")))?;
            scratch.path().to_owned()
        }
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    println!("playground in {}", dir.display());

    let template = dir.join("template");
    if !template.join("mysql").is_dir() {
        make_template(&install_db, &template)?;
    }
    let tools = Tools {
        mariadbd,
        agent: sibling("qserv-agent")?,
        coordinator: sibling("qserv-coordinator")?,
        template,
        standin: layout.map(|_| sibling("qserv-standin")).transpose()?,
    };

    // One instance keeps the layout and name it always had; several are dr1, dr2, … each in
    // a directory of its own, as data releases are.
    let names: Vec<String> = if instances == 1 {
        vec!["playground".to_owned()]
    } else {
        (1..=instances).map(|i| format!("dr{i}")).collect()
    };
    let mut running: Vec<Instance> = Vec::new();
    let started = async {
        for name in &names {
            let home = if instances == 1 {
                dir.clone()
            } else {
                dir.join(name)
            };
            if instances > 1 {
                println!("instance {name}:");
            }
            running.push(start_instance(&tools, name, workers, &home).await?);
        }
        for instance in &running {
            bring_up(&instance.url).await?;
        }
        Ok::<(), CliError>(())
    };
    let outcome = started.await;
    let outcome = match outcome {
        Ok(()) => show(&running, &dir).await,
        Err(err) => Err(err),
    };
    if outcome.is_ok() {
        qserv_proto::telemetry::shutdown_signal().await;
        // stdout may be gone by now (a closed pipe); stopping must not depend on it.
        let _ = writeln!(std::io::stdout(), "\nstopping the playground");
    }
    if tools.standin.is_some() {
        // The services outlive a killed agent (a restarted one takes them over): stop them
        // in their order first.
        for instance in &running {
            let follow = Follow {
                detach: false,
                wait: true,
            };
            let down = Mutation::Down {
                activity: Default::default(),
            };
            let _ = lifecycle::run(&instance.url, Output::Table, down, follow).await;
        }
    }
    for instance in running.into_iter().rev() {
        for mut child in instance.children.into_iter().rev() {
            let _ = child.kill().await;
        }
    }
    outcome
}

fn make_template(install_db: &Path, template: &Path) -> Result<(), CliError> {
    // A private temporary directory: bootstraps running side by side in a shared /tmp have
    // lost each other's temporary tables.
    let tmp = private_tmp(template.with_extension("tmp"))?;
    let mut command = std::process::Command::new(install_db);
    command
        .arg("--no-defaults")
        .arg(format!("--datadir={}", template.display()))
        .arg(format!("--tmpdir={}", tmp.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
    if is_root() {
        command.arg("--user=root");
    }
    let out = command
        .output()
        .map_err(|e| fail(format!("cannot run mariadb-install-db: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(())
}

/// Creates a server's own temporary directory.
fn private_tmp(dir: PathBuf) -> Result<PathBuf, CliError> {
    std::fs::create_dir_all(&dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Installs the instance at `url` and brings it up, following each job.
async fn bring_up(url: &str) -> Result<(), CliError> {
    let follow = Follow {
        detach: false,
        wait: true,
    };
    lifecycle::run(
        url,
        Output::Table,
        Mutation::Install {
            spec: None,
            adopt: false,
        },
        follow,
    )
    .await?;
    lifecycle::run(
        url,
        Output::Table,
        Mutation::Up {
            timeout: Duration::from_secs(120),
            service_timeout: Duration::from_secs(60),
        },
        follow,
    )
    .await
}

/// Shows what runs and how to reach it; several instances get a configuration file naming
/// them, so that `qserv instances` and `--instance` work.
async fn show(running: &[Instance], dir: &Path) -> Result<(), CliError> {
    println!();
    // A new terminal has no `qserv` on its PATH when it was run from a build tree: the
    // playground puts one in its own directory, and the lines it prints set both.
    let bin = link_qserv(dir)?;
    let config = dir.join("config.toml");
    let _ = std::fs::remove_file(&config);
    let mut targets = Vec::new();
    for instance in running {
        let entry = qserv_cli::config::InstanceEntry {
            coordinators: vec![instance.url.clone()],
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
        };
        qserv_cli::config::add(&config, &instance.name, &entry).map_err(|e| fail(e.to_string()))?;
        targets.push((
            instance.name.clone(),
            crate::target::Target::of(&instance.name, &entry),
        ));
    }
    if let [only] = running {
        status::run(&only.url, Output::Table, false).await?;
        println!(
            "try next (in another terminal):\n  export PATH=\"{}:$PATH\"\n  export QSERV_COORDINATOR={}\n  qserv status --watch\n  qserv jobs list\n  qserv down && qserv up\n\
             logs are in {}; press Ctrl-C to stop everything",
            bin.display(),
            only.url,
            dir.display()
        );
        return Ok(());
    }
    crate::instances::list(&targets, Duration::from_secs(5), Output::Table).await?;
    let first = running.first().map(|i| i.name.as_str()).unwrap_or("dr1");
    println!(
        "try next (in another terminal):\n  export PATH=\"{}:$PATH\"\n  export QSERV_CONFIG={}\n  qserv instances\n  qserv --instance all status\n  qserv --instance {first} restart\n\
         logs are in {}; press Ctrl-C to stop everything",
        bin.display(),
        config.display(),
        dir.display()
    );
    Ok(())
}

/// Starts one instance's databases, agents and coordinator under `home`.
async fn start_instance(
    tools: &Tools,
    name: &str,
    workers: u32,
    home: &Path,
) -> Result<Instance, CliError> {
    std::fs::create_dir_all(home)
        .map_err(|e| fail(format!("cannot create {}: {e}", home.display())))?;
    let mut nodes: Vec<(String, &str)> =
        vec![("czar-0".to_owned(), "czar"), ("repl-0".to_owned(), "repl")];
    nodes.extend((1..=workers).map(|i| (format!("worker-{i}"), "worker")));
    let mut instance = Instance {
        name: name.to_owned(),
        url: String::new(),
        children: Vec::new(),
    };
    let mut spec = match tools.standin {
        Some(_) => format!("layout = \"qserv\"\nname = \"{name}\"\n"),
        None => format!("name = \"{name}\"\n"),
    };
    for (node, role) in &nodes {
        let grpc = start_node(tools, home, node, role, &mut instance.children).await?;
        spec.push_str(&format!(
            "\n[[nodes]]\nname = \"{node}\"\nrole = \"{role}\"\nagent = \"http://127.0.0.1:{grpc}\"\n"
        ));
    }
    let spec_path = home.join("spec.toml");
    std::fs::write(&spec_path, &spec).map_err(|e| fail(e.to_string()))?;
    let (port, http) = (free_port()?, free_port()?);
    let args = vec![
        format!("--listen=127.0.0.1:{port}"),
        format!("--http-listen=127.0.0.1:{http}"),
        format!("--state-dir={}", home.join("coordinator").display()),
        format!("--spec={}", spec_path.display()),
        "--insecure".to_owned(),
    ];
    let log = home.join("coordinator.log");
    let mut coordinator = spawn(&tools.coordinator, &args, &log)?;
    let up = wait_port(port, "the coordinator", &mut coordinator, &log).await;
    instance.children.push(coordinator);
    up?;
    instance.url = format!("http://127.0.0.1:{port}");
    println!("  coordinator {}\n", instance.url);
    Ok(instance)
}

/// Starts a node's MariaDB server and agent; returns the agent's gRPC port.
async fn start_node(
    tools: &Tools,
    home: &Path,
    name: &str,
    role: &str,
    children: &mut Vec<Child>,
) -> Result<u16, CliError> {
    let node_dir = home.join(name);
    let data = node_dir.join("data");
    if !data.is_dir() {
        std::fs::create_dir_all(&node_dir).map_err(|e| fail(e.to_string()))?;
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&tools.template)
            .arg(&data)
            .status()
            .map_err(|e| fail(format!("cannot copy the template: {e}")))?;
        if !status.success() {
            return Err(fail("copying the MariaDB template failed"));
        }
    }
    let db_port = free_port()?;
    let mut args = vec![
        "--no-defaults".to_owned(),
        format!("--datadir={}", data.display()),
        format!("--port={db_port}"),
        format!("--socket={}", node_dir.join("mysqld.sock").display()),
        format!("--tmpdir={}", private_tmp(node_dir.join("tmp"))?.display()),
        "--bind-address=127.0.0.1".to_owned(),
        "--skip-name-resolve".to_owned(),
        "--performance-schema=OFF".to_owned(),
        "--innodb-buffer-pool-size=32M".to_owned(),
    ];
    if is_root() {
        args.push("--user=root".to_owned());
    }
    let log = node_dir.join("mariadb.log");
    let mut db = spawn(&tools.mariadbd, &args, &log)?;
    let up = wait_port(db_port, &format!("mariadbd of {name}"), &mut db, &log).await;
    children.push(db);
    up?;

    let secrets = node_dir.join("secrets.toml");
    std::fs::write(
        &secrets,
        format!(
            "mysqld_user_qserv_password = \"{}\"\nrepl_user = \"qsreplica\"\nrepl_password = \"{}\"\n",
            random_secret(),
            random_secret()
        ),
    )
    .map_err(|e| fail(e.to_string()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600));
    }
    let (grpc, http) = (free_port()?, free_port()?);
    let mut args = vec![
        format!("--name={name}"),
        format!("--role={role}"),
        format!("--listen=127.0.0.1:{grpc}"),
        format!("--http-listen=127.0.0.1:{http}"),
        format!("--db-url=mysql://root@127.0.0.1:{db_port}"),
        format!("--secrets-file={}", secrets.display()),
        format!("--state-dir={}", node_dir.join("agent-state").display()),
        // A playground on loopback, for one user: plaintext changes are accepted.
        "--insecure".to_owned(),
    ];
    if let Some(standin) = &tools.standin {
        let role = qserv_model::Role::parse(role).map_err(|e| fail(e.to_string()))?;
        let events = home.join("services.events");
        let config =
            crate::playground_layout::agent_config(standin, name, role, &events, free_port)?;
        let path = node_dir.join("agent.toml");
        std::fs::write(&path, config).map_err(|e| fail(e.to_string()))?;
        args.push(format!("--config={}", path.display()));
    }
    let log = node_dir.join("agent.log");
    let mut agent = spawn(&tools.agent, &args, &log)?;
    let up = wait_port(grpc, &format!("the agent of {name}"), &mut agent, &log).await;
    children.push(agent);
    up?;
    println!(
        "  {name:<10} {role:<7} mariadb 127.0.0.1:{db_port}  agent 127.0.0.1:{grpc} (health http://127.0.0.1:{http}/readyz)"
    );
    Ok(grpc)
}
