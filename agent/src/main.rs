//! `qserv-agent`: runs beside one Qserv database and reports on it to the coordinator.

mod config;
mod db;
mod grpc;
mod metrics;
mod probe;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use prometheus_client::registry::Registry;
use qserv_proto::names::role_name;
use qserv_proto::telemetry::{init_logging, serve_http, shutdown_signal};
use qserv_proto::v1::agent_server::AgentServer;
use qserv_proto::v1::{AgentStatus, DatabaseStatus, Mode, ServiceState};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Config, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "qserv-agent",
    version,
    about = "Agent beside a Qserv czar, worker or replication database"
)]
struct Cli {
    /// TOML file with the same keys as the long flags (flags and environment win).
    #[arg(long, env = "QSERV_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let config = match Config::resolve(cli.settings, cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("qserv-agent: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    match run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "agent stopped");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let role = role_name(config.role);
    let mut registry = Registry::default();
    let metrics = metrics::Metrics::register(&mut registry, &config.name, role);

    let initial = AgentStatus {
        name: config.name.clone(),
        role: config.role.into(),
        agent_version: qserv_proto::VERSION.to_owned(),
        protocol_version: qserv_proto::PROTOCOL_VERSION,
        database: Some(DatabaseStatus {
            error: "not checked yet".to_owned(),
            ..DatabaseStatus::default()
        }),
        services: ServiceState::Unknown.into(),
        mode: Mode::Unspecified.into(),
        ..AgentStatus::default()
    };
    let (status_tx, status_rx) = watch::channel(initial);

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
        "agent started"
    );

    let db = db::LocalDb::new(config.db.clone());
    let probe = tokio::spawn(probe::run(
        db,
        db::modules_of(config.role),
        status_tx,
        metrics,
    ));

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AgentServer<grpc::AgentService>>()
        .await;
    // The overall entry follows database readiness, like /readyz.
    let mut readiness = status_rx.clone();
    tokio::spawn(async move {
        loop {
            let ready = readiness
                .borrow_and_update()
                .database
                .as_ref()
                .is_some_and(|d| d.ready);
            let status = if ready {
                tonic_health::ServingStatus::Serving
            } else {
                tonic_health::ServingStatus::NotServing
            };
            health_reporter.set_service_status("", status).await;
            if readiness.changed().await.is_err() {
                break;
            }
        }
    });

    let ready_rx = status_rx.clone();
    let ready = Arc::new(move || match ready_rx.borrow().database.as_ref() {
        Some(db) if db.ready => Ok(()),
        Some(db) => Err(db.error.clone()),
        None => Err("not checked yet".to_owned()),
    });
    let http = tokio::spawn(serve_http(
        http_listener,
        ready,
        Arc::new(registry),
        shutdown_signal(),
    ));

    let grpc = qserv_proto::transport::server()
        .add_service(health_service)
        .add_service(AgentServer::new(grpc::AgentService::new(status_rx)))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(grpc_listener),
            shutdown_signal(),
        );
    grpc.await.context("gRPC server failed")?;
    probe.abort();
    http.abort();
    tracing::info!("agent stopped");
    Ok(())
}
