//! The agent's gRPC service. Status reads come from the published view, `Probe` checks the
//! database at once. Commands are admitted first (meant for this node, role and instance, not
//! stale, and for changes, out of `normal` with services stopped), then act, then check the
//! database again and reply with that status.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use qserv_migrations::{Module, Shipment};
use qserv_model::{AgentState, Mode, Role, ServiceName};
use qserv_proto::certs::CertRole;
use qserv_proto::failure::Failure;
use qserv_proto::v1::agent_server::Agent;
use qserv_proto::v1::{
    AgentStatus, AgentStatusRequest, AppliedScript, CommandTarget, CommitConfigRequest,
    CommitConfigResponse, EnsureAccountsRequest, EnsureAccountsResponse, ForgetWorkerRequest,
    ForgetWorkerResponse, InspectRequest, InspectResponse, MigrateRequest, MigrateResponse,
    PrepareConfigRequest, PrepareConfigResponse, ProbeRequest, ProbeScope, PurgeRequest,
    PurgeResponse, RegisterWorkersRequest, RegisterWorkersResponse, RepairRequest, RepairResponse,
    RestartServicesRequest, RestartServicesResponse, SetModeRequest, SetModeResponse,
    SetServicesRequest, SetServicesResponse, SetWorkerStateRequest, SetWorkerStateResponse,
    UnregisterWorkersRequest, UnregisterWorkersResponse, ValidateRequest, ValidateResponse,
    WorkerHoldingsRequest, WorkerHoldingsResponse,
};
use sqlx::mysql::MySqlConnectOptions;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::WatchStream;
use tonic::{Request, Response, Status};

use crate::controllers::probe::{Prober, publish};
use crate::controllers::services::{RestartRequest, Restarted};
use crate::database::admin::{self, AdminError};
use crate::database::migrate::{MigrateError, Migrator};
use crate::node::admit::{Command, Identity, Refusal, admit};
use crate::node::secrets::Secrets;
use crate::node::state::{ModeState, StateDir};

pub struct AgentService {
    pub status: watch::Receiver<AgentState>,
    pub status_tx: watch::Sender<AgentState>,
    pub desired: watch::Sender<ModeState>,
    pub state_dir: Arc<Mutex<StateDir>>,
    pub options: MySqlConnectOptions,
    pub secrets: Arc<Secrets>,
    pub role: Role,
    pub migrator: Arc<Migrator>,
    pub tls_on: bool,
    /// Plaintext changes accepted (`--insecure`).
    pub insecure: bool,
    pub identity: Identity,
    pub prober: Arc<Prober>,
    /// Restart requests to the service controller.
    pub restarts: mpsc::Sender<RestartRequest>,
    /// repl: where the rows of a forgotten worker are saved.
    pub saved_dir: std::path::PathBuf,
    /// The services' configuration files.
    pub configs: Arc<crate::controllers::configs::ConfigKeeper>,
}

/// The state lock, held from a command's admission to its reply: concurrent commands cannot
/// interleave their checks and their effects.
type Admission<'a> = tokio::sync::MutexGuard<'a, StateDir>;

fn refusal_status(refusal: Refusal) -> Status {
    match refusal {
        Refusal::NoTarget => Status::invalid_argument(refusal.to_string()),
        other => Status::failed_precondition(other.to_string()),
    }
}

impl AgentService {
    fn command<T>(
        &self,
        request: &Request<T>,
        operation: &str,
        access: Access,
    ) -> Result<(), Status> {
        authorize(request, self.tls_on, self.insecure, operation, access)
    }
}

/// Who may send this command: over TLS only the coordinator's certificate; in plaintext
/// anyone for reads, and for changes only when the agent was started with `--insecure`.
pub fn authorize<T>(
    request: &Request<T>,
    tls_on: bool,
    insecure: bool,
    operation: &str,
    access: Access,
) -> Result<(), Status> {
    if !tls_on {
        if access == Access::Change && !insecure {
            return Err(Status::permission_denied(format!(
                "this agent takes changes only over TLS and refuses to {operation} in plaintext: start it with --tls-cert, --tls-key and --tls-ca (made by 'qserv certs init'), or with --insecure on a host where every local user is trusted"
            )));
        }
        return Ok(());
    }
    match qserv_proto::tls::peer(request) {
        Some(Ok(peer)) if peer.role == CertRole::Coordinator => Ok(()),
        Some(Ok(peer)) => Err(Status::permission_denied(format!(
            "permission denied: {} ({}) may not {operation}",
            peer.identity, peer.role
        ))),
        Some(Err(problem)) => Err(Status::unauthenticated(format!(
            "the client certificate {problem}"
        ))),
        None => Err(Status::unauthenticated(
            "a client certificate signed by the instance's CA is required",
        )),
    }
}

/// Whether a command reads or changes the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Change,
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<AgentStatus, Status>> + Send>>;

impl AgentService {
    /// Admits a command meant by `target`; a newer epoch it carries is persisted before the
    /// command acts. The returned lock is held until the reply.
    async fn admit(
        &self,
        target: Option<&CommandTarget>,
        command: Command,
    ) -> Result<(Admission<'_>, ModeState, bool), Status> {
        let target = target.map(qserv_proto::model::target);
        let state_dir = self.state_dir.lock().await;
        let held = self.desired.borrow().clone();
        let services = self.status.borrow().services;
        let admitted =
            admit(&held, services, &self.identity, target.as_ref(), command).map_err(|r| {
                tracing::warn!(refusal = %r, "refused a command");
                refusal_status(r)
            })?;
        if admitted.next != held {
            self.hold(&state_dir, admitted.next.clone()).await?;
        }
        Ok((state_dir, admitted.next, admitted.applies))
    }

    /// Persists and publishes the state the agent holds.
    async fn hold(&self, state_dir: &StateDir, next: ModeState) -> Result<(), Status> {
        state_dir
            .save_blocking(&next)
            .await
            .map_err(|e| Status::internal(format!("cannot persist the agent's state: {e}")))?;
        publish(&self.status_tx, false, |s| {
            crate::node::state::show(&next, s)
        });
        self.desired.send_if_modified(|d| {
            let changed = *d != next;
            *d = next;
            changed
        });
        Ok(())
    }

    /// Checks the database now; the reply carries what was found.
    pub(crate) async fn checked(&self) -> AgentStatus {
        AgentStatus::from(&self.prober.check_now().await)
    }

    pub(crate) fn admin_status(&self, err: AdminError) -> Status {
        let clean = |text: String| self.secrets.redact(&text);
        match err {
            AdminError::Refused(message) => Status::failed_precondition(clean(message)),
            AdminError::Secrets(e) => Status::failed_precondition(clean(e.to_string())),
            AdminError::Db(crate::database::connection::DbError::Session(why)) => {
                Status::failed_precondition(clean(why))
            }
            AdminError::Db(e) => Failure::LocalDatabase
                .mark(Status::unavailable(clean(format!("local database: {e}")))),
        }
    }

    fn migrate_status(&self, err: MigrateError) -> Status {
        let clean = |text: String| self.secrets.redact(&text);
        match err {
            MigrateError::Db(crate::database::connection::DbError::Session(why)) => {
                Status::failed_precondition(clean(why))
            }
            MigrateError::Db(e) => Failure::LocalDatabase
                .mark(Status::unavailable(clean(format!("local database: {e}")))),
            MigrateError::Failed { .. } => Status::aborted(clean(err.to_string())),
            // The coordinator planned from an older view: it probes and asks again.
            MigrateError::Shipment(qserv_migrations::ShipmentError::Missing { .. }) => {
                Status::out_of_range(clean(err.to_string()))
            }
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
        Ok(Response::new(AgentStatus::from(&*self.status.borrow())))
    }

    type WatchStatusStream = StatusStream;

    async fn watch_status(
        &self,
        _request: Request<AgentStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let stream = WatchStream::new(self.status.clone()).map(|s| Ok(AgentStatus::from(&s)));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn probe(&self, request: Request<ProbeRequest>) -> Result<Response<AgentStatus>, Status> {
        Ok(Response::new(match request.into_inner().scope() {
            ProbeScope::All => self.checked().await,
            // The supervisors keep the services' states current themselves.
            ProbeScope::Services => AgentStatus::from(&*self.status.borrow()),
        }))
    }

    async fn set_mode(
        &self,
        request: Request<SetModeRequest>,
    ) -> Result<Response<SetModeResponse>, Status> {
        self.command(&request, "set the mode", Access::Change)?;
        let request = request.into_inner();
        let mode = qserv_proto::model::mode(request.mode)
            .ok_or_else(|| Status::invalid_argument("set-mode needs a mode"))?;
        let release = qserv_proto::model::release(request.release.as_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (_held, state, applied) = self
            .admit(request.target.as_ref(), Command::SetMode(mode, release))
            .await?;
        if applied {
            tracing::info!(
                mode = Mode::name_or_unknown(state.mode),
                epoch = qserv_model::Epoch::to_wire(state.epoch),
                instance = %state.instance,
                "mode changed"
            );
        }
        // The mode leaves the database alone: what its last check found still holds.
        let status = AgentStatus::from(&*self.status.borrow());
        Ok(Response::new(SetModeResponse {
            mode: qserv_proto::model::mode_to_wire(state.mode),
            epoch: qserv_model::Epoch::to_wire(state.epoch),
            services: status.services,
            applied,
            status: Some(status),
        }))
    }

    async fn set_services(
        &self,
        request: Request<SetServicesRequest>,
    ) -> Result<Response<SetServicesResponse>, Status> {
        self.command(&request, "release services", Access::Change)?;
        let request = request.into_inner();
        let release = qserv_proto::model::release(request.release.as_ref())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let (_held, state, _) = self
            .admit(request.target.as_ref(), Command::Release(release))
            .await?;
        tracing::info!(released = ?state.release, "services released");
        Ok(Response::new(SetServicesResponse {
            status: Some(AgentStatus::from(&*self.status.borrow())),
        }))
    }

    async fn restart_services(
        &self,
        request: Request<RestartServicesRequest>,
    ) -> Result<Response<RestartServicesResponse>, Status> {
        self.command(&request, "restart the services", Access::Change)?;
        let request = request.into_inner();
        let services = request
            .services
            .iter()
            .map(|n| ServiceName::parse(n))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        // The state lock is held throughout: no mode change lands in the middle of a restart.
        let (_held, _, _) = self
            .admit(request.target.as_ref(), Command::Restart)
            .await?;
        let gone = || Status::unavailable("the agent's service controller has stopped");
        let (reply, answer) = oneshot::channel();
        self.restarts
            .send(RestartRequest { services, reply })
            .await
            .map_err(|_| gone())?;
        let outcome = answer.await.map_err(|_| gone())?;
        let status = self.checked().await;
        let (restarted, detail) = match outcome {
            Restarted::Done => {
                tracing::info!("services restarted");
                (true, "services stopped and started again".to_owned())
            }
            Restarted::Nothing(why) => (false, why),
            Restarted::Failed(error) => {
                tracing::warn!(error = %error, "services stopped for a restart did not start again");
                return Err(Status::aborted(format!(
                    "the services were stopped and did not start again: {error}"
                )));
            }
        };
        Ok(Response::new(RestartServicesResponse {
            restarted,
            detail,
            status: Some(status),
        }))
    }

    async fn inspect(
        &self,
        request: Request<InspectRequest>,
    ) -> Result<Response<InspectResponse>, Status> {
        self.command(&request, "inspect the databases", Access::Read)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Read).await?;
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
        self.command(&request, "create accounts", Access::Change)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Change).await?;
        let accounts = admin::ensure_accounts(&self.options, &self.secrets, self.role)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(EnsureAccountsResponse {
            accounts,
            status: Some(self.checked().await),
        }))
    }

    async fn migrate(
        &self,
        request: Request<MigrateRequest>,
    ) -> Result<Response<MigrateResponse>, Status> {
        self.command(&request, "migrate", Access::Change)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Change).await?;
        let module =
            Module::parse(&request.module).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let shipment = Shipment {
            module,
            manifest: request
                .manifest
                .into_iter()
                .map(|e| qserv_migrations::ManifestEntry {
                    file_name: e.file_name,
                    checksum: e.checksum,
                })
                .collect(),
            digest: request.manifest_digest,
            scripts: request
                .scripts
                .into_iter()
                .map(|s| (s.file_name, s.content))
                .collect(),
            stop_at: request.stop_at,
        };
        let outcome = self
            .migrator
            .migrate(crate::database::migrate::Request {
                shipment,
                origin: crate::database::migrate::Origin {
                    job_id: request.job_id,
                    requested_by: request.requested_by,
                },
            })
            .await;
        // A failed migration changed the database too (it is dirty now): check either way.
        let status = self.checked().await;
        let outcome = outcome.map_err(|e| self.migrate_status(e))?;
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
            status: Some(status),
        }))
    }

    async fn register_workers(
        &self,
        request: Request<RegisterWorkersRequest>,
    ) -> Result<Response<RegisterWorkersResponse>, Status> {
        self.command(&request, "register workers", Access::Change)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Change).await?;
        let inserted = admin::register_workers(&self.options, self.role, &request.worker_ids)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(RegisterWorkersResponse {
            inserted,
            status: Some(self.checked().await),
        }))
    }

    async fn unregister_workers(
        &self,
        request: Request<UnregisterWorkersRequest>,
    ) -> Result<Response<UnregisterWorkersResponse>, Status> {
        self.command(&request, "unregister workers", Access::Change)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Change).await?;
        let removed =
            crate::database::forget::unregister(&self.options, self.role, &request.worker_ids)
                .await
                .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(UnregisterWorkersResponse {
            removed,
            status: Some(self.checked().await),
        }))
    }

    async fn validate(
        &self,
        request: Request<ValidateRequest>,
    ) -> Result<Response<ValidateResponse>, Status> {
        self.command(&request, "validate accounts", Access::Read)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Read).await?;
        let problems = admin::validate(&self.options, &self.secrets, self.role)
            .await
            .map_err(|e| self.admin_status(e))?;
        Ok(Response::new(ValidateResponse { problems }))
    }

    async fn repair(
        &self,
        request: Request<RepairRequest>,
    ) -> Result<Response<RepairResponse>, Status> {
        self.command(&request, "repair", Access::Change)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Change).await?;
        let module =
            Module::parse(&request.module).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let previous_error = self
            .migrator
            .repair(crate::database::migrate::RepairRequest {
                module,
                version: request.version,
                max_version: request.max_version,
                force: request.force,
                reason: request.reason,
                job_id: request.job_id,
                requested_by: request.requested_by,
            })
            .await
            .map_err(|e| self.migrate_status(e))?;
        Ok(Response::new(RepairResponse {
            previous_error,
            status: Some(self.checked().await),
        }))
    }

    async fn worker_holdings(
        &self,
        request: Request<WorkerHoldingsRequest>,
    ) -> Result<Response<WorkerHoldingsResponse>, Status> {
        self.command(&request, "read a worker's holdings", Access::Read)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Read).await?;
        self.holdings_reply(&request.worker_id)
            .await
            .map(Response::new)
    }

    async fn prepare_config(
        &self,
        request: Request<PrepareConfigRequest>,
    ) -> Result<Response<PrepareConfigResponse>, Status> {
        // Staging writes a file beside the service's: a change, though not yet of its file.
        let access = if request.get_ref().stage {
            Access::Change
        } else {
            Access::Read
        };
        self.command(&request, "render a configuration file", access)?;
        let request = request.into_inner();
        let (_held, state, _) = self.admit(request.target.as_ref(), Command::Read).await?;
        let instance = request
            .target
            .as_ref()
            .map_or(state.instance.clone(), |t| t.instance.clone());
        let mut reply = self
            .prepare_reply(
                &request.service,
                &request.template,
                &instance,
                request.stage,
            )
            .await?;
        reply.status = Some(AgentStatus::from(&*self.status.borrow()));
        Ok(Response::new(reply))
    }

    async fn commit_config(
        &self,
        request: Request<CommitConfigRequest>,
    ) -> Result<Response<CommitConfigResponse>, Status> {
        self.command(&request, "write a configuration file", Access::Change)?;
        let request = request.into_inner();
        let _held = self
            .admit(
                request.target.as_ref(),
                Command::Configure {
                    rolling: request.rolling,
                },
            )
            .await?;
        let mut reply = self
            .commit_reply(
                &request.service,
                request.version,
                &request.rendered_sha256,
                request.restore,
            )
            .await?;
        reply.status = Some(AgentStatus::from(&*self.status.borrow()));
        Ok(Response::new(reply))
    }

    async fn forget_worker(
        &self,
        request: Request<ForgetWorkerRequest>,
    ) -> Result<Response<ForgetWorkerResponse>, Status> {
        self.command(&request, "forget a worker", Access::Change)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Change).await?;
        self.forget_reply(&request.worker_id, &request.job_id)
            .await
            .map(Response::new)
    }

    async fn set_worker_state(
        &self,
        request: Request<SetWorkerStateRequest>,
    ) -> Result<Response<SetWorkerStateResponse>, Status> {
        self.command(&request, "set a worker's state", Access::Change)?;
        let request = request.into_inner();
        let _held = self.admit(request.target.as_ref(), Command::Change).await?;
        self.state_reply(&request).await.map(Response::new)
    }

    async fn purge(
        &self,
        request: Request<PurgeRequest>,
    ) -> Result<Response<PurgeResponse>, Status> {
        self.command(&request, "purge", Access::Change)?;
        let request = request.into_inner();
        let (held, state, _) = self.admit(request.target.as_ref(), Command::Change).await?;
        let (dropped_databases, dropped_accounts) =
            admin::purge(&self.options, &self.secrets, self.role)
                .await
                .map_err(|e| self.admin_status(e))?;
        // The purge dropped the agent's bookkeeping too.
        self.migrator.forget_bookkeeping();
        tracing::warn!(databases = ?dropped_databases, accounts = ?dropped_accounts, "purged Qserv databases and accounts");
        // The instance is gone: the agent is free for the next one, but keeps its epochs so
        // that no command older than the purge is ever taken again.
        let released = ModeState {
            mode: Some(Mode::Uninstalled),
            instance: String::new(),
            ..state
        };
        self.hold(&held, released).await?;
        Ok(Response::new(PurgeResponse {
            dropped_databases,
            dropped_accounts,
            status: Some(self.checked().await),
        }))
    }
}
