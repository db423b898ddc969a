//! `qserv-coordinator`: the instance's inventory, mode and jobs, and the status the CLI reads.
//! This file wires the pieces of the library together; none of the logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use prometheus_client::registry::Registry;
use qserv_migrations::MigrationSet;
use qserv_proto::telemetry::{init_logging, serve_http, shutdown_signal};
use tokio::net::TcpListener;
use tokio::sync::watch;

use qserv_coordinator::agents::client as agents;
use qserv_coordinator::config::{Config, Settings};
use qserv_coordinator::domain::spec::InstanceSpec;
use qserv_coordinator::edge::{auth, forward, grpc};
use qserv_coordinator::instance::drift;
use qserv_coordinator::instance::{InstanceState, Mode};
use qserv_coordinator::jobs;
use qserv_coordinator::runtime::{core, leader, metrics, monitor, retention};
use qserv_coordinator::store::{Inventory, Store};

#[derive(Debug, Parser)]
#[command(
    name = "qserv-coordinator",
    version,
    about = "Control plane of a Qserv instance"
)]
struct Cli {
    /// TOML file with the same keys as the long flags (flags and environment win).
    #[arg(long, env = "QSERV_COORDINATOR_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::resolve(cli.settings, cli.config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("qserv-coordinator: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Printed plainly too: a start-up refusal must be readable without a log viewer.
            eprintln!("qserv-coordinator: {err:#}");
            tracing::error!(error = format!("{err:#}"), "coordinator stopped");
            ExitCode::FAILURE
        }
    }
}

/// The inventory to run with: the store's, reconciled with the spec given at start.
async fn reconcile(
    store: &Store,
    spec: Option<InstanceSpec>,
    spec_path: Option<&PathBuf>,
) -> anyhow::Result<Option<Inventory>> {
    let known = store.load().await?;
    let Some(spec) = spec else {
        return Ok(known);
    };
    match known {
        Some(inventory) if inventory.mode != Mode::Uninstalled => {
            let problems: Vec<String> = drift::start_conflicts(&inventory, &spec)
                .iter()
                .map(ToString::to_string)
                .collect();
            if !problems.is_empty() {
                bail!(
                    "the spec {} disagrees with the installed instance '{}' ({}): {}; \
                     fix the spec, or start without --spec to use the installed inventory",
                    spec_path
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    inventory.name,
                    inventory.mode.name(),
                    problems.join("; ")
                );
            }
            let names: Vec<(String, qserv_coordinator::domain::Role)> = inventory
                .nodes
                .iter()
                .map(|n| (n.spec.name.clone(), n.spec.role))
                .collect();
            let lag = drift::drift(&spec, &names);
            if !lag.is_empty() {
                tracing::warn!(not_in_spec = ?lag.not_in_spec, not_installed = ?lag.not_installed, "the spec lags behind the installed workers (jobs added or removed some since); running with the installed inventory: update the spec");
            }
            if inventory.services != spec.services {
                tracing::info!(
                    services = spec.services.services().len(),
                    "the spec declares another service order than the store held; it takes effect for the next up, down or restart"
                );
                store.set_service_order(&spec).await?;
                return Ok(store.load().await?);
            }
            Ok(Some(inventory))
        }
        _ => Ok(Some(
            store
                .declare(&spec, qserv_coordinator::store::Declared::AtStart)
                .await?,
        )),
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let spec = config.spec.as_deref().map(InstanceSpec::load).transpose()?;
    let migrations = match &config.migrations_dir {
        Some(dir) => MigrationSet::load_dir(dir)?,
        None => MigrationSet::bundled()?,
    };
    if config.store_in_state_dir {
        std::fs::create_dir_all(&config.state_dir).with_context(|| {
            format!(
                "cannot create the state directory {}",
                config.state_dir.display()
            )
        })?;
    }
    let store = Store::open_target(&config.store).await?;
    let inventory = reconcile(&store, spec.clone(), config.spec.as_ref()).await?;

    let mut registry = Registry::default();
    let metrics = metrics::Metrics::register(&mut registry);
    metrics::Metrics::register_store(&mut registry, store.write_counters());
    let limits = qserv_proto::limits::ConnectionLimits::for_this_process();
    limits.counters.register(&mut registry, "qserv_coordinator");
    tracing::debug!(http = limits.http, grpc = limits.grpc, "connection caps");
    let (snapshot, _) = watch::channel(InstanceState::default());
    let grpc_agents = Arc::new(agents::GrpcAgents::new(config.tls.clone())?);
    let core = Arc::new(core::Core::new(
        store.clone(),
        snapshot,
        migrations,
        metrics.clone(),
        grpc_agents.clone(),
        Some(grpc_agents),
        qserv_coordinator::runtime::term::Term::Unknown,
    ));
    let monitors = tokio::spawn(monitor::supervise(Arc::clone(&core)));
    core.reload().await?;

    let grpc_listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen for gRPC on {}", config.listen))?;
    let http_listener = TcpListener::bind(config.http_listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http_listen))?;
    if config.insecure && !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "serving gRPC without TLS on a non-loopback address");
    }
    tracing::info!(
        grpc = %grpc_listener.local_addr()?,
        http = %http_listener.local_addr()?,
        store = ?config.store,
        instance = inventory.as_ref().map(|i| i.name.as_str()).unwrap_or(""),
        mode = inventory.as_ref().map_or(Mode::Uninstalled, |i| i.mode).name(),
        nodes = inventory.as_ref().map_or(0, |i| i.nodes.len()),
        "coordinator started"
    );

    let lease = leader::start(store.clone(), config.me.clone(), &core).await;
    let mirror = tokio::spawn(leader::mirror(core.clone(), config.me.clone()));
    let engine = jobs::Engine::new(core.clone());
    let engine_task = tokio::spawn(engine.clone().run());
    let retention = tokio::spawn(retention::run(store.clone(), config.retain));

    let mut observed = core.snapshot.subscribe();
    let observer_metrics = metrics.clone();
    let observer = tokio::spawn(async move {
        loop {
            observer_metrics.observe(&observed.borrow_and_update());
            if observed.changed().await.is_err() {
                break;
            }
        }
    });

    let ready_store = store.clone();
    let ready = Arc::new(move || {
        if !ready_store.is_open() {
            return Err("the store is closed".to_owned());
        }
        match ready_store.unwritable() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    });
    let http = tokio::spawn(serve_http(
        http_listener,
        ready,
        Arc::new(registry),
        limits.clone(),
        shutdown_signal(),
    ));
    let transport = if config.tls.is_some() {
        auth::Transport::Tls
    } else {
        auth::Transport::Plaintext {
            insecure: config.insecure,
        }
    };
    let service = grpc::CoordinatorService::new(
        engine,
        transport,
        config.max_streams_per_client,
        forward::Forwarder::new(config.tls.clone(), config.me.id.clone()),
    )
    .with_certificate(config.tls.as_ref().map(|t| t.cert.clone()))
    .with_spec(spec);
    let router = grpc::router(service, transport).await?;
    qserv_proto::reload::serve(
        router,
        grpc_listener,
        config.tls.as_ref(),
        &limits,
        shutdown_signal(),
    )
    .await?;
    monitors.abort();
    engine_task.abort();
    lease.abort();
    mirror.abort();
    leader::release(&store, &config.me, &core.term).await;
    retention.abort();
    observer.abort();
    http.abort();
    tracing::info!("coordinator stopped");
    Ok(())
}
