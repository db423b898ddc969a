//! Simulated agents for benchmarks at a scale no machine runs databases for: each answers the
//! agent protocol from memory, applies a migration by recording the plan's last version, and
//! keeps a worker registry when it plays repl. They check nothing a real agent checks; what they
//! measure is the coordinator.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use qserv_migrations::{Module, ScriptName};
use qserv_proto::v1::agent_server::{Agent, AgentServer};
use qserv_proto::v1::*;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

type Stream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

/// One agent's state; every change is published to its status stream.
#[derive(Clone)]
pub struct SimAgent {
    status: Arc<Mutex<AgentStatus>>,
    updates: watch::Sender<AgentStatus>,
}

impl SimAgent {
    /// A healthy node; `version` is its module's schema version (`None`: not installed).
    pub fn new(index: usize, name: &str, role: Role, version: Option<i64>) -> SimAgent {
        let module = module_of(role);
        let status = AgentStatus {
            name: name.to_owned(),
            role: role.into(),
            agent_version: qserv_proto::VERSION.to_owned(),
            protocol_version: qserv_proto::PROTOCOL_VERSION,
            database: Some(DatabaseStatus {
                ready: true,
                server_version: "simulated".to_owned(),
                ..DatabaseStatus::default()
            }),
            worker_id: (role == Role::Worker).then(|| format!("id-{index}")),
            schemas: vec![ModuleSchema {
                module: module.name().to_owned(),
                database: module.database().to_owned(),
                version,
                ..ModuleSchema::default()
            }],
            services: ServiceState::None.into(),
            boot_id: format!("sim-{index}"),
            seq: 1,
            ..AgentStatus::default()
        };
        let (updates, _) = watch::channel(status.clone());
        SimAgent {
            status: Arc::new(Mutex::new(status)),
            updates,
        }
    }

    /// Registers `ids` in this (repl) agent's registry without a command, as an installed
    /// instance holds them.
    pub fn with_registry(self, ids: impl IntoIterator<Item = String>) -> SimAgent {
        self.change(|s| {
            s.registry.extend(ids.into_iter().map(|name| RegistryEntry {
                name,
                is_enabled: true,
                is_read_only: false,
            }));
        });
        self
    }

    fn now(&self) -> AgentStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies `edit`, bumps the sequence number and publishes the result.
    fn change(&self, edit: impl FnOnce(&mut AgentStatus)) -> AgentStatus {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        edit(&mut status);
        status.seq += 1;
        status.observed_at_ms = now_ms();
        let published = status.clone();
        drop(status);
        self.updates.send_replace(published.clone());
        published
    }

    /// Serves this agent on `listener` until the runtime stops.
    pub async fn serve(self, listener: tokio::net::TcpListener) {
        let _ = qserv_proto::transport::server()
            .add_service(AgentServer::new(self))
            .serve_with_incoming(qserv_proto::transport::incoming(listener))
            .await;
    }
}

pub fn module_of(role: Role) -> Module {
    match role {
        Role::Czar => Module::Czar,
        Role::Repl => Module::Repl,
        _ => Module::Worker,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[tonic::async_trait]
impl Agent for SimAgent {
    async fn get_status(
        &self,
        _: Request<AgentStatusRequest>,
    ) -> Result<Response<AgentStatus>, Status> {
        Ok(Response::new(self.now()))
    }

    async fn probe(&self, _: Request<ProbeRequest>) -> Result<Response<AgentStatus>, Status> {
        Ok(Response::new(self.change(|_| {})))
    }

    type WatchStatusStream = Stream<AgentStatus>;
    async fn watch_status(
        &self,
        _: Request<AgentStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        use tokio_stream::StreamExt;
        let updates = tokio_stream::wrappers::WatchStream::new(self.updates.subscribe());
        Ok(Response::new(Box::pin(updates.map(Ok))))
    }

    async fn set_mode(
        &self,
        request: Request<SetModeRequest>,
    ) -> Result<Response<SetModeResponse>, Status> {
        let request = request.into_inner();
        let epoch = request.target.map(|t| t.epoch).unwrap_or_default();
        let status = self.change(|s| {
            s.mode = request.mode;
            s.epoch = epoch;
            s.seen_epoch = s.seen_epoch.max(epoch);
        });
        Ok(Response::new(SetModeResponse {
            mode: status.mode,
            epoch: status.epoch,
            services: status.services,
            applied: true,
            status: Some(status),
        }))
    }

    async fn inspect(
        &self,
        _: Request<InspectRequest>,
    ) -> Result<Response<InspectResponse>, Status> {
        let databases = self
            .now()
            .schemas
            .iter()
            .filter(|s| s.version.is_some())
            .map(|s| s.database.clone())
            .collect();
        Ok(Response::new(InspectResponse {
            databases,
            accounts: Vec::new(),
        }))
    }

    async fn ensure_accounts(
        &self,
        _: Request<EnsureAccountsRequest>,
    ) -> Result<Response<EnsureAccountsResponse>, Status> {
        Ok(Response::new(EnsureAccountsResponse {
            accounts: vec!["qsmaster".to_owned()],
            status: Some(self.change(|_| {})),
        }))
    }

    async fn migrate(
        &self,
        request: Request<MigrateRequest>,
    ) -> Result<Response<MigrateResponse>, Status> {
        let request = request.into_inner();
        let to = request
            .scripts
            .iter()
            .filter_map(|s| ScriptName::parse(&s.file_name))
            .map(|n| n.to)
            .max();
        let mut from = None;
        let status = self.change(|s| {
            for schema in s.schemas.iter_mut().filter(|m| m.module == request.module) {
                from = schema.version;
                schema.version = to.or(schema.version);
            }
        });
        Ok(Response::new(MigrateResponse {
            from_version: from,
            to_version: to.or(from),
            applied: request
                .scripts
                .iter()
                .map(|s| AppliedScript {
                    file_name: s.file_name.clone(),
                    checksum: String::new(),
                    duration_ms: 0,
                })
                .collect(),
            status: Some(status),
        }))
    }

    async fn register_workers(
        &self,
        request: Request<RegisterWorkersRequest>,
    ) -> Result<Response<RegisterWorkersResponse>, Status> {
        let ids = request.into_inner().worker_ids;
        let mut inserted = Vec::new();
        let status = self.change(|s| {
            for id in ids {
                if !s.registry.iter().any(|r| r.name == id) {
                    inserted.push(id.clone());
                    s.registry.push(RegistryEntry {
                        name: id,
                        is_enabled: true,
                        is_read_only: false,
                    });
                }
            }
        });
        Ok(Response::new(RegisterWorkersResponse {
            inserted,
            status: Some(status),
        }))
    }

    async fn unregister_workers(
        &self,
        request: Request<UnregisterWorkersRequest>,
    ) -> Result<Response<UnregisterWorkersResponse>, Status> {
        let ids = request.into_inner().worker_ids;
        let mut removed = Vec::new();
        let status = self.change(|s| {
            s.registry.retain(|r| {
                let gone = ids.contains(&r.name);
                if gone {
                    removed.push(r.name.clone());
                }
                !gone
            });
        });
        Ok(Response::new(UnregisterWorkersResponse {
            removed,
            status: Some(status),
        }))
    }

    async fn validate(
        &self,
        _: Request<ValidateRequest>,
    ) -> Result<Response<ValidateResponse>, Status> {
        Ok(Response::new(ValidateResponse::default()))
    }

    async fn purge(&self, _: Request<PurgeRequest>) -> Result<Response<PurgeResponse>, Status> {
        Err(Status::unimplemented(
            "a simulated agent keeps its databases",
        ))
    }

    async fn worker_holdings(
        &self,
        _: Request<WorkerHoldingsRequest>,
    ) -> Result<Response<WorkerHoldingsResponse>, Status> {
        // The simulated registry holds no replicas: removing a worker takes nothing with it.
        Ok(Response::new(WorkerHoldingsResponse::default()))
    }

    async fn forget_worker(
        &self,
        _: Request<ForgetWorkerRequest>,
    ) -> Result<Response<ForgetWorkerResponse>, Status> {
        Err(Status::unimplemented(
            "a simulated agent keeps no replica records",
        ))
    }

    async fn set_worker_state(
        &self,
        _: Request<SetWorkerStateRequest>,
    ) -> Result<Response<SetWorkerStateResponse>, Status> {
        Err(Status::unimplemented(
            "a simulated agent keeps no worker flags",
        ))
    }

    async fn prepare_config(
        &self,
        _: Request<PrepareConfigRequest>,
    ) -> Result<Response<PrepareConfigResponse>, Status> {
        Err(Status::unimplemented(
            "a simulated agent has no configuration files",
        ))
    }

    async fn commit_config(
        &self,
        _: Request<CommitConfigRequest>,
    ) -> Result<Response<CommitConfigResponse>, Status> {
        Err(Status::unimplemented(
            "a simulated agent has no configuration files",
        ))
    }

    async fn repair(&self, _: Request<RepairRequest>) -> Result<Response<RepairResponse>, Status> {
        Err(Status::unimplemented("a simulated agent is never dirty"))
    }

    async fn restart_services(
        &self,
        _: Request<RestartServicesRequest>,
    ) -> Result<Response<RestartServicesResponse>, Status> {
        Err(Status::unimplemented("a simulated agent runs no services"))
    }

    async fn set_services(
        &self,
        _: Request<SetServicesRequest>,
    ) -> Result<Response<SetServicesResponse>, Status> {
        Err(Status::unimplemented("a simulated agent runs no services"))
    }
}

/// `count` simulated agents (czar-0, repl-0, then workers) served on `runtime`, and the spec
/// naming them. `version` is every module's schema version; an installed fleet (`Some`) has
/// every worker registered on repl.
pub fn fleet(runtime: &tokio::runtime::Runtime, count: usize, version: Option<i64>) -> String {
    let mut spec = "name = \"sim\"\n".to_owned();
    let worker_ids: Vec<String> = (2..count).map(|i| format!("id-{i}")).collect();
    for index in 0..count {
        let (name, role) = match index {
            0 => ("czar-0".to_owned(), Role::Czar),
            1 => ("repl-0".to_owned(), Role::Repl),
            n => (format!("worker-{n}"), Role::Worker),
        };
        let mut agent = SimAgent::new(index, &name, role, version);
        if role == Role::Repl && version.is_some() {
            agent = agent.with_registry(worker_ids.iter().cloned());
        }
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", 0)))
            .unwrap_or_else(|e| panic!("cannot listen for a simulated agent: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("{e}"))
            .port();
        runtime.spawn(agent.serve(listener));
        let role = qserv_proto::model::role(role.into())
            .map(|r| r.name())
            .unwrap_or_default();
        spec.push_str(&format!(
            "\n[[nodes]]\nname = \"{name}\"\nrole = \"{role}\"\nagent = \"http://127.0.0.1:{port}\"\n"
        ));
    }
    spec
}
