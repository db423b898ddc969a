//! Mutual TLS, roles from certificates, secrets kept out of every output, hostile names, audit.

use std::path::Path;
use std::time::Duration;

use qserv_integration::cluster::{SECRET_QSMASTER, SECRET_REPL};
use qserv_integration::{Cluster, NodeSetup, THREE_NODES, run_cli};

const LIMIT: Duration = Duration::from_secs(30);

fn certs(dir: &Path, agents: &[&str]) {
    let mut args = vec![
        "certs".to_owned(),
        "init".to_owned(),
        format!("--dir={}", dir.display()),
        "--coordinator=127.0.0.1,localhost".to_owned(),
    ];
    args.extend(
        agents
            .iter()
            .map(|a| format!("--agent={a}=127.0.0.1,localhost")),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cli("http://127.0.0.1:1", &args);
    assert_eq!(out.code, 0, "certs init failed: {}", out.stderr);
}

fn tls_args(dir: &Path, client: &str) -> Vec<String> {
    vec![
        format!("--tls-cert={}", dir.join(format!("{client}.pem")).display()),
        format!("--tls-key={}", dir.join(format!("{client}.key")).display()),
        format!("--tls-ca={}", dir.join("ca.pem").display()),
    ]
}

fn cli_as(cluster: &Cluster, args: &[String], command: &[&str]) -> qserv_integration::CliOutput {
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(command);
    run_cli(&cluster.coordinator.url(), &all)
}

#[test]
fn mutual_tls_roles_secrets_and_audit() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let good = dir.path().join("pki");
    let other = dir.path().join("other");
    certs(&good, &["czar-0", "worker-1", "repl-0"]);
    certs(&other, &["czar-0"]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(good.join("operator.key")).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o600), "keys are private");
    }

    let cluster = Cluster::start_secure("dr1", &THREE_NODES, &good);
    let c = &cluster.coordinator;
    assert!(c.url().starts_with("https://"));
    // Status over mTLS as operator, and the coordinator reaches every agent over mTLS.
    for node in ["czar-0", "worker-1", "repl-0"] {
        c.wait_node(node, "ready over mTLS", LIMIT, |n| n["db_ready"] == true);
    }

    // No client certificate, a certificate from another CA, plaintext: all refused.
    let ca_only = vec![format!("--tls-ca={}", good.join("ca.pem").display())];
    let out = cli_as(&cluster, &ca_only, &["status"]);
    assert_ne!(out.code, 0, "no client certificate: {}", out.stdout);
    let foreign = vec![
        format!("--tls-cert={}", other.join("operator.pem").display()),
        format!("--tls-key={}", other.join("operator.key").display()),
        format!("--tls-ca={}", good.join("ca.pem").display()),
    ];
    let out = cli_as(&cluster, &foreign, &["status"]);
    assert_ne!(out.code, 0, "a certificate from another CA: {}", out.stdout);
    let plaintext = c.url().replace("https://", "http://");
    let out = run_cli(&plaintext, &["status"]);
    assert_ne!(out.code, 0, "plaintext against TLS: {}", out.stdout);

    // A viewer reads but cannot change anything.
    let viewer = tls_args(&good, "viewer");
    let out = cli_as(&cluster, &viewer, &["-o", "json", "status"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    for command in [&["install"][..], &["down"][..]] {
        let out = cli_as(&cluster, &viewer, command);
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("permission denied: viewer (viewer) may not"),
            "{}",
            out.stderr
        );
    }
    assert_eq!(c.status()["mode"], "uninstalled");

    // The operator runs the whole lifecycle over mTLS.
    let mut outputs = String::new();
    for command in [
        &["install"][..],
        &["up", "--timeout", "60s"][..],
        &["down"][..],
        &["-o", "json", "status"][..],
    ] {
        let out = c.cli(command);
        assert_eq!(
            out.code, 0,
            "{command:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        outputs.push_str(&out.stdout);
        outputs.push_str(&out.stderr);
    }
    for id in ["j1", "j2", "j3"] {
        let logs = c.cli(&["jobs", "logs", id]);
        outputs.push_str(&logs.stdout);
        outputs.push_str(&c.cli(&["-o", "json", "jobs", "show", id]).stdout);
    }
    outputs.push_str(&c.cli(&["-o", "json", "audit"]).stdout);
    let mut logs = c.log_text();
    for agent in &cluster.agents {
        logs.push_str(&agent.log_text());
        logs.push_str(
            &agent
                .http("/metrics")
                .map(|(_, body)| body)
                .unwrap_or_default(),
        );
    }
    logs.push_str(&c.cli(&["-o", "json", "upgrade", "plan"]).stdout);
    for secret in [SECRET_QSMASTER, SECRET_REPL] {
        assert!(
            !outputs.contains(secret),
            "a secret reached the CLI's output"
        );
        assert!(
            !logs.contains(secret),
            "a secret reached a log, metrics or the plan"
        );
    }
    assert!(
        logs.contains("applying migration script"),
        "the logs were read"
    );

    // An agent takes commands only from the coordinator's certificate.
    let agent_url = cluster.agents[1].url();
    let pki = good.clone();
    let denied = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(async move {
            use qserv_proto::tls::TlsFiles;
            use qserv_proto::v1::PurgeRequest;
            use qserv_proto::v1::agent_client::AgentClient;
            let files = TlsFiles {
                cert: pki.join("operator.pem"),
                key: pki.join("operator.key"),
                ca: pki.join("ca.pem"),
            };
            let tls = files.client().unwrap_or_else(|e| panic!("{e}"));
            let endpoint = qserv_proto::transport::secure_endpoint(&agent_url, Some(&tls))
                .unwrap_or_else(|e| panic!("{e}"));
            let channel = endpoint.connect().await.unwrap_or_else(|e| panic!("{e}"));
            match AgentClient::new(channel)
                .purge(PurgeRequest::default())
                .await
            {
                Ok(_) => "purged".to_owned(),
                Err(status) => format!("{:?}: {}", status.code(), status.message()),
            }
        })
    })
    .join()
    .unwrap_or_default();
    assert_eq!(
        denied,
        "PermissionDenied: permission denied: operator (operator) may not purge"
    );
    assert_eq!(
        cluster
            .db("worker-1")
            .execute("SHOW DATABASES LIKE 'qservw_worker'"),
        "qservw_worker"
    );

    // The audit trail says who did what, including the refusals.
    let audit = c.cli(&["-o", "json", "audit"]).json();
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let find = |op: &str, role: &str| {
        entries
            .iter()
            .find(|e| e["operation"] == op && e["role"] == role)
            .cloned()
    };
    let install = find("install", "operator").unwrap_or_default();
    assert_eq!(install["identity"], "operator");
    assert_eq!(install["result"], "accepted");
    assert_eq!(install["job"], "j1");
    // `install` without a spec: the inventory the coordinator has, typed on the wire.
    assert_eq!(install["params"]["kind"], "install", "{install}");
    assert!(install["params"]["instance"].is_null(), "{install}");
    assert!(
        install["params"]["format"].is_null(),
        "no store document: {install}"
    );
    let refused = find("install", "viewer").unwrap_or_default();
    assert!(
        refused["params"].is_null(),
        "refused before it was a job: {refused}"
    );
    assert!(
        refused["result"]
            .as_str()
            .is_some_and(|r| r.starts_with("denied")),
        "{refused}"
    );
    assert!(find("down", "operator").is_some() && find("up", "operator").is_some());

    // Certificates rotated on disk take effect without a restart: here the coordinator moves to
    // another CA, so only clients of that CA get in from now on.
    for file in ["coordinator.pem", "coordinator.key", "ca.pem"] {
        std::fs::copy(other.join(file), good.join(file)).unwrap_or_else(|e| panic!("{e}"));
    }
    let rotated = tls_args(&other, "operator");
    let out = cli_as(&cluster, &rotated, &["status"]);
    assert_eq!(
        out.code, 0,
        "the rotated certificates are served: {}",
        out.stderr
    );
    let out = cli_as(&cluster, &tls_args(&good, "viewer"), &["status"]);
    assert_ne!(out.code, 0, "clients of the old CA are refused now");
}

#[test]
fn an_agent_refuses_a_secrets_file_others_can_read() {
    let db = qserv_integration::MariaDb::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let secrets = dir.path().join("secrets.toml");
    std::fs::write(&secrets, "mysqld_user_qserv_password = \"s3cret-Loose\"\n")
        .unwrap_or_else(|e| panic!("{e}"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let out = std::process::Command::new(qserv_integration::binaries::path("qserv-agent"))
        .args([
            "--name",
            "worker-1",
            "--role",
            "worker",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg(format!("--db-url={}", db.url()))
        .arg(format!(
            "--state-dir={}",
            dir.path().join("state").display()
        ))
        .arg(format!("--secrets-file={}", secrets.display()))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("readable by group or others") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret-Loose"));
}

#[test]
fn a_spec_carrying_sql_is_refused_and_changes_nothing() {
    let cluster = Cluster::start(
        "dr1",
        &[NodeSetup {
            name: "worker-1",
            role: "worker",
        }],
    );
    let spec = cluster.dir().join("hostile.toml");
    std::fs::write(
        &spec,
        "name = \"dr1\"\n\n[[nodes]]\nname = \"x'; DROP DATABASE mysql; --\"\nrole = \"worker\"\nagent = \"http://127.0.0.1:1\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = cluster
        .coordinator
        .cli(&["install", "--spec", &spec.to_string_lossy()]);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("invalid node name"), "{}", out.stderr);
    let status = cluster.coordinator.status();
    assert_eq!(status["mode"], "uninstalled");
    assert_eq!(
        status["nodes"][0]["name"], "worker-1",
        "the inventory is unchanged"
    );
    assert_eq!(
        cluster
            .db("worker-1")
            .execute("SHOW DATABASES LIKE 'mysql'"),
        "mysql"
    );
}

#[test]
fn plaintext_changes_need_insecure_and_reads_do_not() {
    use qserv_integration::cluster::NO_INSECURE;
    let mut cluster = Cluster::start_with(
        "dr1",
        &[NodeSetup {
            name: "worker-1",
            role: "worker",
        }],
        &[NO_INSECURE.to_owned()],
    );
    cluster.wait_ready();
    let c = &cluster.coordinator;
    let out = c.cli(&["status"]);
    assert_eq!(out.code, 0, "reads are served in plaintext: {}", out.stderr);
    let out = c.cli(&["install"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("only over TLS") && out.stderr.contains("--insecure"),
        "says how to turn on TLS or pass --insecure: {}",
        out.stderr
    );
    assert_eq!(cluster.coordinator.status()["mode"], "uninstalled");
    // Refusals are written by a bounded background writer, so the entry lands shortly after
    // the reply.
    qserv_integration::wait_for(
        "the refusal in the audit trail",
        Duration::from_secs(10),
        || {
            let audit = c.cli(&["-o", "json", "audit"]).stdout;
            audit.contains("only over TLS").then_some(())
        },
    );

    // An agent without --insecure: any local process may read it, none may change it.
    let agent = cluster.agent_mut("worker-1");
    agent.set_args(&[NO_INSECURE]);
    agent.restart();
    let url = agent.url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        use qserv_proto::v1::agent_client::AgentClient;
        use qserv_proto::v1::{AgentStatusRequest, PurgeRequest};
        let mut client = AgentClient::connect(url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(client.get_status(AgentStatusRequest {}).await.is_ok());
        let refused = client
            .purge(PurgeRequest { target: None })
            .await
            .err()
            .unwrap_or_else(|| panic!("a plaintext purge was accepted"));
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert!(
            refused.message().contains("only over TLS") && refused.message().contains("--insecure"),
            "{}",
            refused.message()
        );
    });
}
