//! `qserv-agent`: runs beside one Qserv database and reports on it to the coordinator.
//! This file wires the pieces of the library together; none of the logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use prometheus_client::registry::Registry;
use qserv_model::{AgentState, Epoch, Mode, ServiceName};
use qserv_proto::telemetry::{init_logging, serve_http, shutdown_signal};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, watch};

use qserv_agent::config::{Config, Settings};
use qserv_agent::controllers::{probe, services as controller};
use qserv_agent::database::{local as db, migrate};
use qserv_agent::edge::{gate, grpc, server};
use qserv_agent::metrics;
use qserv_agent::node::{admit, state};

#[derive(Debug, Parser)]
#[command(
    name = "qserv-agent",
    version,
    about = "Agent beside a Qserv czar, worker or replication database",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// TOML file with the same keys as the long flags (flags and environment win).
    #[arg(long, env = "QSERV_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Block until the agent at URL reports mode normal (exit 0), or time out (exit 6).
    Gate {
        /// The agent's gRPC address, e.g. http://127.0.0.1:7080 (https:// with TLS).
        #[arg(long, default_value = "http://127.0.0.1:7080")]
        agent: String,
        /// Wait until this service's turn has come: the services it comes after are ready.
        #[arg(long, value_parser = parse_service)]
        service: Option<ServiceName>,
        /// Client certificate (PEM) for an agent that requires mutual TLS.
        #[arg(long, env = "QSERV_TLS_CERT")]
        tls_cert: Option<PathBuf>,
        #[arg(long, env = "QSERV_TLS_KEY")]
        tls_key: Option<PathBuf>,
        #[arg(long, env = "QSERV_TLS_CA")]
        tls_ca: Option<PathBuf>,
        /// How long to wait, e.g. 90s or 10m.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        timeout: Duration,
    },
}

fn parse_service(value: &str) -> Result<ServiceName, String> {
    ServiceName::parse(value).map_err(|e| e.to_string())
}

/// A panic's message can quote whatever the code held, a rendered migration among it: the log
/// gets where it happened, never what it said.
fn withhold_panic_messages() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, "internal error (panic); its message is withheld because it may quote secret text");
        eprintln!("qserv-agent: internal error at {location}; message withheld");
    }));
}

#[tokio::main]
async fn main() -> ExitCode {
    withhold_panic_messages();
    let cli = Cli::parse();
    if let Some(Command::Gate {
        agent,
        service,
        timeout,
        tls_cert,
        tls_key,
        tls_ca,
    }) = cli.command
    {
        let tls = match qserv_proto::tls::TlsFiles::from_flags(tls_cert, tls_key, tls_ca)
            .map_err(|e| e.to_string())
            .and_then(|files| {
                files
                    .map(|f| f.client().map_err(|e| e.to_string()))
                    .transpose()
            }) {
            Ok(tls) => tls,
            Err(err) => {
                eprintln!("qserv-agent gate: {err}");
                return ExitCode::from(2);
            }
        };
        return match gate::wait_open(&agent, service.as_ref(), timeout, tls.as_ref()).await {
            Ok(epoch) => {
                match &service {
                    Some(s) => println!(
                        "gate open: {agent} is in normal mode (epoch {epoch}) and {s} may start"
                    ),
                    None => println!("gate open: {agent} is in normal mode (epoch {epoch})"),
                }
                ExitCode::SUCCESS
            }
            Err(last) => {
                let what = match &service {
                    Some(s) => format!("did not release {s}"),
                    None => "did not reach normal mode".to_owned(),
                };
                eprintln!(
                    "qserv-agent gate: {agent} {what} within {}: {last}",
                    humantime::format_duration(timeout)
                );
                ExitCode::from(gate::TIMED_OUT)
            }
        };
    }
    let config = match Config::resolve(cli.settings, cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("qserv-agent: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("qserv-agent: {err:#}");
            tracing::error!(error = format!("{err:#}"), "agent stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let role = config.role.name();
    let mut registry = Registry::default();
    let metrics = metrics::Metrics::register(&mut registry, &config.name, role);
    let limits = qserv_proto::limits::ConnectionLimits::for_this_process();
    limits.counters.register(&mut registry, "qserv_agent");
    tracing::debug!(http = limits.http, grpc = limits.grpc, "connection caps");

    let state_dir = state::StateDir::open(&config.state_dir)?;
    let held = state_dir.load()?;
    let (desired_tx, desired_rx) = watch::channel(held.clone());

    let mut initial = AgentState {
        name: config.name.clone(),
        role: Some(config.role),
        agent_version: qserv_proto::VERSION.to_owned(),
        protocol_version: qserv_proto::PROTOCOL_VERSION,
        db_error: "not checked yet".to_owned(),
        boot_id: qserv_proto::incarnation(),
        ..AgentState::default()
    };
    state::show(&held, &mut initial);
    let (status_tx, status_rx) = watch::channel(initial);
    let certificate = config.tls.as_ref().map(|files| {
        tokio::spawn(report_certificate_expiry(
            files.cert.clone(),
            status_tx.clone(),
        ))
    });

    let grpc_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen for gRPC on {}", config.listen))?;
    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http_listen))?;
    tracing::info!(
        name = %config.name,
        role,
        grpc = %grpc_listener.local_addr()?,
        http = %http_listener.local_addr()?,
        db = %config.db_display,
        mode = Mode::name_or_unknown(held.mode),
        epoch = Epoch::to_wire(held.epoch),
        services = ?config.services.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        "agent started"
    );

    let active = db::ActiveMigrations::default();
    let prober = Arc::new(probe::Prober::new(
        db::LocalDb::new(config.db.clone(), active.clone()),
        db::modules_of(config.role),
        status_tx.clone(),
        metrics,
    ));
    let probe = tokio::spawn(prober.clone().run());
    // One restart at a time: the state lock serialises them before they get here.
    let (restarts_tx, restarts_rx) = tokio::sync::mpsc::channel(1);
    let controller = controller::Controller {
        defs: config.services.clone(),
        state_dir: config.state_dir.clone(),
        secrets: Arc::new(config.secrets.clone()),
        status: status_tx.clone(),
    };
    let controller = tokio::spawn(controller.run(desired_rx, restarts_rx));
    let records = qserv_agent::config_files::records::Records::load(&config.state_dir)?;
    let configs = Arc::new(qserv_agent::controllers::configs::ConfigKeeper::new(
        &config.services,
        records,
        status_tx.clone(),
    ));
    tokio::spawn(configs.clone().run());

    let ready_rx = status_rx.clone();
    let ready = Arc::new(move || {
        let state = ready_rx.borrow();
        if state.db_ready {
            Ok(())
        } else {
            Err(db::readiness_reason(&state.db_error).to_owned())
        }
    });
    let http = tokio::spawn(serve_http(
        http_listener,
        ready,
        Arc::new(registry),
        limits.clone(),
        shutdown_signal(),
    ));

    let secrets = Arc::new(config.secrets.clone());
    let service = grpc::AgentService {
        status: status_rx.clone(),
        status_tx,
        desired: desired_tx,
        state_dir: Arc::new(Mutex::new(state_dir)),
        options: config.db.clone(),
        secrets: secrets.clone(),
        role: config.role,
        tls_on: config.tls.is_some(),
        insecure: config.insecure,
        identity: admit::Identity {
            name: config.name.clone(),
            role: config.role,
        },
        prober,
        restarts: restarts_tx,
        saved_dir: config.state_dir.join("forgotten"),
        configs,
        migrator: Arc::new(migrate::Migrator::new(
            config.db.clone(),
            secrets,
            config.role,
            active,
        )),
    };
    if config.tls.is_none() && config.insecure && !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "serving gRPC without TLS on a non-loopback address");
    }
    let router = server::router(service, config.tls.is_some(), config.insecure, status_rx).await?;
    qserv_proto::reload::serve(
        router,
        grpc_listener,
        config.tls.as_ref(),
        &limits,
        shutdown_signal(),
    )
    .await?;
    probe.abort();
    // Dropping the controller's task would leave services orphaned: the services it started are
    // killed with it (kill_on_drop), which is what a stopping agent must do only when asked to.
    controller.abort();
    http.abort();
    if let Some(task) = certificate {
        task.abort();
    }
    tracing::info!("agent stopped");
    Ok(())
}

/// Keeps the end of the agent's certificate in its status, so that the coordinator warns
/// before it expires; a rotated file is seen within a minute.
async fn report_certificate_expiry(cert: std::path::PathBuf, status: watch::Sender<AgentState>) {
    let cache = qserv_proto::certs::ExpiryCache::default();
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        every.tick().await;
        let ends = cache.not_after_ms(&cert).unwrap_or(0);
        probe::publish(&status, false, |s| {
            let changed = s.certificate_expires_at_ms != ends;
            s.certificate_expires_at_ms = ends;
            changed
        });
    }
}
