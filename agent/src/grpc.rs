//! The agent's gRPC service. Status reads come from the published view; commands act on the
//! local database or the service controller.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use qserv_migrations::Module;
use qserv_proto::v1::agent_server::Agent;
use qserv_proto::v1::*;
use sqlx::mysql::MySqlConnectOptions;
use tokio::sync::{Mutex, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use crate::admin::{self, AdminError};
use crate::migrate::{MigrateError, Migrator};
use crate::secrets::Secrets;
use crate::state::{ModeState, StateDir};

pub struct AgentService {
    pub status: watch::Receiver<AgentStatus>,
    pub status_tx: watch::Sender<AgentStatus>,
    pub desired: watch::Sender<ModeState>,
    pub state_dir: Arc<Mutex<StateDir>>,
    pub options: MySqlConnectOptions,
    pub secrets: Arc<Secrets>,
    pub role: Role,
    pub migrator: Arc<Migrator>,
    pub tls_on: bool,
}

impl AgentService {
    /// Commands come only from the coordinator; with TLS its certificate must say so.
    fn command<T>(&self, request: &Request<T>, operation: &str) -> Result<(), Status> {
        if !self.tls_on {
            return Ok(());
        }
        match qserv_proto::tls::peer(request) {
            Some(peer) if peer.role == "coordinator" => Ok(()),
            Some(peer) => Err(Status::permission_denied(format!(
                "permission denied: {} ({}) may not {operation}",
                peer.identity, peer.role
            ))),
            None => Err(Status::unauthenticated(
                "a client certificate signed by the instance's CA is required",
            )),
        }
    }
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<AgentStatus, Status>> + Send>>;

impl AgentService {
    fn admin_status(&self, err: AdminError) -> Status {
        let clean = |text: String| self.secrets.redact(&text);
        match err {
            AdminError::Refused(message) => Status::failed_precondition(clean(message)),
            AdminError::Secrets(e) => Status::failed_precondition(clean(e.to_string())),
            AdminError::Db(e) => Status::unavailable(clean(format!("local database: {e}"))),
        }
    }

    fn migrate_status(&self, err: MigrateError) -> Status {
        let clean = |text: String| self.secrets.redact(&text);
        match err {
            MigrateError::Db(e) => Status::unavailable(clean(format!("local database: {e}"))),
            MigrateError::Failed { .. } => Status::aborted(clean(err.to_string())),
            other => Status::failed_precondition(clean(other.to_string())),
        }
    }
}

#[tonic::async_trait]
impl Agent for AgentService {
    async fn get_status(
        &self,
        _request: Request<AgentStatusRequest>,
    ) -> Result<Response<AgentStatus>, Status> {
        Ok(Response::new(self.status.borrow().clone()))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _request: Request<AgentStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let stream = WatchStream::new(self.status.clone()).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn set_mode(
        &self,
        request: Request<SetModeRequest>,
    ) -> Result<Response<SetModeResponse>, Status> {
        self.command(&request, "set the mode")?;
        let request = request.into_inner();
        let mode = Mode::try_from(request.mode).unwrap_or(Mode::Unspecified);
        if mode == Mode::Unspecified {
            return Err(Status::invalid_argument("set-mode needs a mode"));
        }
        // Serialised so two coordinators' pushes cannot interleave their disk writes.
        let state_dir = self.state_dir.lock().await;
        let current = *self.desired.borrow();
        let applied = request.epoch > current.epoch;
        if applied {
            let next = ModeState {
                mode,
                epoch: request.epoch,
            };
            state_dir
                .save(next)
                .map_err(|e| Status::internal(format!("cannot persist the mode: {e}")))?;
            tracing::info!(
                mode = qserv_proto::names::mode_name(mode),
                epoch = request.epoch,
                "mode changed"
            );
            self.desired.send_replace(next);
            self.status_tx.send_if_modified(|s| {
                s.mode = mode.into();
                s.epoch = request.epoch;
                true
            });
        } else {
            tracing::debug!(
                epoch = request.epoch,
                held = current.epoch,
                "ignored a stale mode"
            );
        }
        let held = *self.desired.borrow();
        Ok(Response::new(SetModeResponse {
            mode: held.mode.into(),
            epoch: held.epoch,
            services: self.status.borrow().services,
            applied,
        }))
    }

    async fn inspect(
        &self,
        request: Request<InspectRequest>,
    ) -> Result<Response<InspectResponse>, Status> {
        self.command(&request, "inspect the databases")?;
        let (databases, accounts) = admin::inspect(&self.options, &self.secrets, self.role)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(InspectResponse {
            databases,
            accounts,
        }))
    }

    async fn ensure_accounts(
        &self,
        request: Request<EnsureAccountsRequest>,
    ) -> Result<Response<EnsureAccountsResponse>, Status> {
        self.command(&request, "create accounts")?;
        let accounts = admin::ensure_accounts(&self.options, &self.secrets, self.role)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(EnsureAccountsResponse { accounts }))
    }

    async fn migrate(
        &self,
        request: Request<MigrateRequest>,
    ) -> Result<Response<MigrateResponse>, Status> {
        self.command(&request, "migrate")?;
        let request = request.into_inner();
        let module =
            Module::parse(&request.module).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let outcome = self
            .migrator
            .migrate(crate::migrate::Request {
                module,
                scripts: request
                    .scripts
                    .into_iter()
                    .map(|s| (s.file_name, s.content))
                    .collect(),
                job_id: request.job_id,
                requested_by: request.requested_by,
            })
            .await
            .map_err(|e| self.migrate_status(e))?;
        Ok(Response::new(MigrateResponse {
            from_version: outcome.from,
            to_version: outcome.to,
            applied: outcome
                .applied
                .into_iter()
                .map(|a| AppliedScript {
                    file_name: a.file_name,
                    checksum: a.checksum,
                    duration_ms: a.duration_ms,
                })
                .collect(),
        }))
    }

    async fn register_workers(
        &self,
        request: Request<RegisterWorkersRequest>,
    ) -> Result<Response<RegisterWorkersResponse>, Status> {
        self.command(&request, "register workers")?;
        let ids = request.into_inner().worker_ids;
        let inserted = admin::register_workers(&self.options, self.role, &ids)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(RegisterWorkersResponse { inserted }))
    }

    async fn unregister_workers(
        &self,
        request: Request<UnregisterWorkersRequest>,
    ) -> Result<Response<UnregisterWorkersResponse>, Status> {
        self.command(&request, "unregister workers")?;
        let ids = request.into_inner().worker_ids;
        let removed = admin::unregister_workers(&self.options, self.role, &ids)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(UnregisterWorkersResponse { removed }))
    }

    async fn validate(
        &self,
        request: Request<ValidateRequest>,
    ) -> Result<Response<ValidateResponse>, Status> {
        self.command(&request, "validate accounts")?;
        let problems = admin::validate(&self.options, &self.secrets, self.role)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(ValidateResponse { problems }))
    }

    async fn repair(
        &self,
        request: Request<RepairRequest>,
    ) -> Result<Response<RepairResponse>, Status> {
        self.command(&request, "repair")?;
        let request = request.into_inner();
        let module =
            Module::parse(&request.module).map_err(|e| Status::invalid_argument(e.to_string()))?;
        if !crate::db::modules_of(self.role).contains(&module) {
            return Err(Status::failed_precondition(format!(
                "this agent serves no {module} database"
            )));
        }
        let previous_error = crate::migrate::repair(
            &self.options,
            module,
            request.version,
            &request.job_id,
            &request.requested_by,
        )
        .await
        .map_err(|e| self.migrate_status(e))?;
        Ok(Response::new(RepairResponse { previous_error }))
    }

    async fn purge(
        &self,
        request: Request<PurgeRequest>,
    ) -> Result<Response<PurgeResponse>, Status> {
        self.command(&request, "purge")?;
        let (dropped_databases, dropped_accounts) =
            admin::purge(&self.options, &self.secrets, self.role)
                .await
                .map_err(|e| self.admin_status(e))?;
        tracing::warn!(databases = ?dropped_databases, accounts = ?dropped_accounts, "purged Qserv databases and accounts");
        // The instance is gone; whatever installs the next one starts its epochs afresh.
        let reset = ModeState {
            mode: Mode::Uninstalled,
            epoch: 0,
        };
        self.state_dir
            .lock()
            .await
            .save(reset)
            .map_err(|e| Status::internal(format!("cannot persist the mode: {e}")))?;
        self.desired.send_replace(reset);
        self.status_tx.send_if_modified(|s| {
            s.mode = Mode::Uninstalled.into();
            s.epoch = 0;
            true
        });
        Ok(Response::new(PurgeResponse {
            dropped_databases,
            dropped_accounts,
        }))
    }
}
