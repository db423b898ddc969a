//! The coordinator's gRPC service for the CLI. Reads come from the snapshot or the store, never
//! from a job's locks; mutating commands become jobs.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use qserv_proto::v1::coordinator_server::Coordinator;
use qserv_proto::v1::*;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, WatchStream};
use tonic::{Request, Response, Status};

use crate::domain::activity::ActivityPolicy;
use crate::domain::audit::{AuditRecord, Outcome};
use crate::domain::job::{
    DeleteParams, DownParams, JobRecord, JobSpec, UpParams, UpgradeParams, WorkersRemoveParams,
    WorkersStateParams,
};
use crate::edge::auth::{Access, Caller, Transport, authorize};
use crate::edge::denials::DenialAudit;
use crate::edge::forward::{Forwarder, Route};
use crate::edge::requests;
use crate::edge::streams::StreamSlots;
use crate::instance::InstanceState;
use crate::instance::admission;
use crate::jobs::{Engine, SubmitError, Submitted};
use crate::runtime::core::Core;
use crate::runtime::metrics::StreamTask;
use crate::runtime::term::Term;

/// The caller of a change this coordinator runs; a follower returns the leader's reply to the
/// change instead, forwarded through the client method named.
macro_rules! route {
    ($service:ident, $request:ident, $operation:literal, $method:ident) => {
        match $service.mutate(&$request, $operation)? {
            Route::Here(who) => who,
            Route::Leader { caller, address } => {
                let meant = meant_instance(&$request).map(str::to_owned);
                let message = $request.into_inner();
                return $service
                    .forwarder
                    .send(
                        &caller,
                        &address,
                        meant.as_deref(),
                        message,
                        |mut client, r| async move { client.$method(r).await },
                    )
                    .await;
            }
        }
    };
}

pub struct CoordinatorService {
    pub(super) engine: Arc<Engine>,
    /// The spec given at start, whose drift from the installed workers `status` shows.
    spec: Option<Arc<crate::domain::spec::InstanceSpec>>,
    /// This coordinator's own certificate, whose end `status` warns of.
    certificate: Option<Arc<(std::path::PathBuf, qserv_proto::certs::ExpiryCache)>>,
    transport: Transport,
    denials: DenialAudit,
    streams: StreamSlots,
    forwarder: Forwarder,
}

impl CoordinatorService {
    pub fn new(
        engine: Arc<Engine>,
        transport: Transport,
        max_streams_per_client: usize,
        forwarder: Forwarder,
    ) -> CoordinatorService {
        let denials = DenialAudit::start(engine.core().store.clone());
        CoordinatorService {
            engine,
            spec: None,
            certificate: None,
            transport,
            denials,
            streams: StreamSlots::new(max_streams_per_client),
            forwarder,
        }
    }

    /// Warns in `status` of the certificate at `path` (this coordinator's) as it nears its end.
    pub fn with_certificate(mut self, path: Option<std::path::PathBuf>) -> CoordinatorService {
        self.certificate = path.map(|p| Arc::new((p, qserv_proto::certs::ExpiryCache::default())));
        self
    }

    /// Shows in `status` how `spec` (given at start) differs from the installed workers.
    pub fn with_spec(
        mut self,
        spec: Option<crate::domain::spec::InstanceSpec>,
    ) -> CoordinatorService {
        self.spec = spec.map(Arc::new);
        self
    }

    /// The status as a reader gets it: with warnings and the spec's drift.
    fn status_now(&self, state: &InstanceState) -> InstanceStatus {
        shown(state, self.certificate.as_deref(), self.spec.as_deref())
    }

    async fn load_job(&self, id: &str) -> Result<JobRecord, Status> {
        match self.core().store.job(id).await {
            Ok(Some(job)) => Ok(job),
            Ok(None) => Err(Status::not_found(format!(
                "no job {id}; 'qserv jobs list' shows the jobs"
            ))),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    pub(super) fn read<T>(&self, request: &Request<T>, operation: &str) -> Result<Caller, Status> {
        authorize(request, self.transport, operation, Access::Read)
    }

    fn mutate<T>(&self, request: &Request<T>, operation: &str) -> Result<Route, Status> {
        let here = self.core().snapshot.borrow().instance_name().to_owned();
        let result =
            authorize(request, self.transport, operation, Access::Mutate).and_then(|caller| {
                admission::check_instance(meant_instance(request), &here)
                    .map_err(Status::failed_precondition)?;
                Ok(caller)
            });
        if let Err(status) = &result
            && matches!(
                status.code(),
                tonic::Code::PermissionDenied | tonic::Code::FailedPrecondition
            )
        {
            // Refusals are part of the trail too.
            let peer = qserv_proto::tls::peer(request).and_then(Result::ok);
            let entry = AuditRecord {
                at_ms: crate::clock::now_ms(),
                identity: peer
                    .as_ref()
                    .map(|p| p.identity.clone())
                    .unwrap_or_default(),
                role: peer.map(|p| p.role.to_string()).unwrap_or_default(),
                operation: operation.to_owned(),
                params: "{}".to_owned(),
                outcome: if status.code() == tonic::Code::PermissionDenied {
                    Outcome::Denied(status.message().to_owned())
                } else {
                    Outcome::Refused(status.message().to_owned())
                },
                job_id: None,
            };
            self.denials.record(entry);
        }
        let caller = result?;
        match &*self.core().term.borrow() {
            Term::Leader { .. } => Ok(Route::Here(caller)),
            // A request a follower forwarded is not forwarded again: terms moved meanwhile.
            Term::Follower {
                leader, address, ..
            } if request
                .metadata()
                .contains_key(crate::edge::auth::FORWARDED_BY) =>
            {
                Err(qserv_proto::transport::between_leaders(format!(
                    "the leadership moved while the request was forwarded; {leader} at {address} leads now: run the command again"
                )))
            }
            Term::Follower { address, .. } => Ok(Route::Leader {
                caller,
                address: address.clone(),
            }),
            // Not between leaders when nobody can lead: the store refuses writes.
            Term::Unknown => match self.core().store.unwritable() {
                Some(problem) => Err(Status::internal(problem)),
                None => Err(qserv_proto::transport::between_leaders(
                    "no coordinator holds the leader lease right now; a follower takes over within the lease TTL: run the command again in a few seconds",
                )),
            },
        }
    }

    pub(super) fn core(&self) -> &Arc<Core> {
        self.engine.core()
    }

    /// Admits and queues the job `spec` describes (or refuses the request it came from), and
    /// records the outcome in the audit trail.
    pub(super) async fn submit(
        &self,
        operation: &str,
        spec: Result<JobSpec, String>,
        who: &Caller,
        options: Option<&MutationOptions>,
    ) -> Result<Response<JobRef>, Status> {
        let wait = options.is_some_and(|o| o.wait);
        let document = match spec.as_ref().map(JobSpec::encode) {
            Ok(Ok(text)) => text,
            Ok(Err(err)) => return Err(Status::internal(err.to_string())),
            // A request refused before it became a job has no parameters to record.
            Err(_) => "{}".to_owned(),
        };
        let result = match spec {
            Ok(spec) => self.engine.submit(spec, &who.describe(), wait).await,
            Err(why) => Err(SubmitError::Refused(why)),
        };
        let (outcome, job_id) = match &result {
            Ok(Submitted::Job(id, None)) => (Outcome::Accepted, Some(id.clone())),
            Ok(Submitted::Job(id, Some(overrode))) => {
                (Outcome::AcceptedForced(overrode.clone()), Some(id.clone()))
            }
            Ok(Submitted::NoOp(message)) => (Outcome::NoOp(message.clone()), None),
            Err(SubmitError::Refused(message)) => (Outcome::Refused(message.clone()), None),
            Err(SubmitError::Internal(message) | SubmitError::Deposed(message)) => {
                (Outcome::Error(message.clone()), None)
            }
        };
        let entry = AuditRecord {
            at_ms: crate::clock::now_ms(),
            identity: who.identity.clone(),
            role: who.role_name().to_owned(),
            operation: operation.to_owned(),
            params: document,
            outcome,
            job_id,
        };
        if let Err(err) = self.core().store.record_audit(&entry).await {
            tracing::error!(error = %err, "cannot record an audit entry");
        }
        Ok(job_ref(result.map_err(submit_status)?, self.forwarder.me()))
    }
}

/// Sends a job's log lines to `tx`, in pages, and with `follow` those that come until the job
/// ends; returns once the client has gone, too.
async fn feed_logs(
    core: &Core,
    request: &JobLogsRequest,
    reader: crate::edge::auth::Reader,
    tx: &tokio::sync::mpsc::Sender<Result<LogLine, Status>>,
) -> Result<(), crate::store::StoreError> {
    let mut after = if request.limit == 0 {
        0
    } else {
        core.store
            .last_log_seq(&request.id)
            .await?
            .saturating_sub(u64::from(request.limit))
    };
    loop {
        let finished = core
            .store
            .job_state(&request.id)
            .await?
            .is_some_and(|s| s.is_finished());
        // In pages, so a job with many lines never sits in memory whole.
        loop {
            let lines = core.store.logs(&request.id, after, LOG_PAGE).await?;
            let full = lines.len() == LOG_PAGE as usize;
            for line in lines {
                after = line.seq;
                if tx.send(Ok(reader.log(LogLine::from(&line)))).await.is_err() {
                    return Ok(());
                }
            }
            if !full {
                break;
            }
        }
        if !request.follow || finished {
            return Ok(());
        }
        tokio::select! {
            () = tx.closed() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}

/// Log lines read from the store at a time.
const LOG_PAGE: u32 = 500;
/// The fastest pace of `WatchStatus` messages to one watcher.
const STATUS_EVERY: Duration = Duration::from_millis(100);

/// How long a followed job may be unreadable from the store before its stream ends.
const STORE_OUT_OF_REACH: Duration = Duration::from_secs(15);

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn submit_status(err: SubmitError) -> Status {
    match err {
        SubmitError::Refused(message) => Status::failed_precondition(message),
        SubmitError::Internal(message) => Status::internal(message),
        SubmitError::Deposed(message) => qserv_proto::transport::between_leaders(message),
    }
}

fn job_ref(submitted: Submitted, ran_by: &str) -> Response<JobRef> {
    let ran_by = ran_by.to_owned();
    Response::new(match submitted {
        Submitted::Job(id, _) => JobRef {
            message: format!("job {id} created"),
            id,
            ran_by,
        },
        Submitted::NoOp(message) => JobRef {
            id: String::new(),
            message,
            ran_by,
        },
    })
}

/// The coordinator's gRPC router: health, reflection (a read: it answers whom any read would
/// answer), and the service itself.
pub async fn router(
    service: CoordinatorService,
    transport: Transport,
) -> Result<tonic::transport::server::Router, qserv_proto::reflection::Error> {
    use qserv_proto::v1::coordinator_server::{CoordinatorServer, SERVICE_NAME};
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CoordinatorServer<CoordinatorService>>()
        .await;
    let explore = move |request: Request<()>| {
        authorize(&request, transport, "explore the API", Access::Read)?;
        Ok(request)
    };
    let (reflection_v1, reflection_v1alpha) = qserv_proto::reflection::guarded(
        &[qserv_proto::reflection::HEALTH_SERVICE, SERVICE_NAME],
        explore,
    )?;
    Ok(qserv_proto::transport::server()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            CoordinatorServer::new(service)
                .max_decoding_message_size(qserv_proto::transport::MAX_MESSAGE_BYTES),
        ))
}

/// The wire status of `state`, with what an operator should act on soon (certificates near
/// their end) and how the spec given at start lags behind the installed workers.
fn shown(
    state: &InstanceState,
    certificate: Option<&(std::path::PathBuf, qserv_proto::certs::ExpiryCache)>,
    spec: Option<&crate::domain::spec::InstanceSpec>,
) -> InstanceStatus {
    let own = certificate.and_then(|(path, cache)| cache.not_after_ms(path));
    let mut status = crate::edge::wire::status(state);
    status.warnings = crate::instance::certificate_warnings(state, own, crate::clock::now_ms());
    status
        .warnings
        .extend(crate::instance::peers::warnings(&state.coordinators));
    status.spec_drift = spec
        .and_then(|spec| crate::instance::drift::status_drift(spec, state))
        .map(crate::edge::wire::spec_drift);
    status
}

/// The instance a request says it is meant for, if it says.
fn meant_instance<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get(qserv_proto::transport::INSTANCE_METADATA)
        .and_then(|value| value.to_str().ok())
}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn get_status(
        &self,
        request: Request<InstanceStatusRequest>,
    ) -> Result<Response<InstanceStatus>, Status> {
        let caller = self.read(&request, "read the status")?;
        // Converted under the borrow: the state is not copied, only its wire form made.
        let status = self.status_now(&self.core().snapshot.borrow());
        Ok(Response::new(caller.reader.status(status)))
    }

    type WatchStatusStream = Streamed<InstanceStatus>;

    async fn watch_status(
        &self,
        request: Request<InstanceStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let caller = self.read(&request, "read the status")?;
        let slot = self.streams.take(&caller.identity)?;
        let reader = caller.reader;
        let certificate = self.certificate.clone();
        let spec = self.spec.clone();
        // A watcher gets the newest status at most every STATUS_EVERY: each message is the
        // whole instance, and an upgrade over a thousand nodes changes it thousands of times.
        let stream = WatchStream::new(self.core().snapshot.subscribe())
            .throttle(STATUS_EVERY)
            .map(move |state| {
                // The slot lives as long as the stream.
                let _held = &slot;
                Ok(reader.status(shown(&state, certificate.as_deref(), spec.as_deref())))
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_version(
        &self,
        request: Request<VersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        self.read(&request, "read the version")?;
        Ok(Response::new(VersionInfo {
            version: qserv_proto::VERSION.to_owned(),
            protocol_version: qserv_proto::PROTOCOL_VERSION,
            leads: self.core().term.borrow().is_leader(),
        }))
    }

    async fn install(&self, request: Request<InstallRequest>) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "install", install);
        let meant = meant_instance(&request).map(str::to_owned);
        let request = request.into_inner();
        let spec = requests::install_spec(&request.spec_toml, request.adopt).and_then(|spec| {
            if let JobSpec::Install(params) | JobSpec::Adopt(params) = &spec
                && let Some(declared) = &params.spec
            {
                admission::check_instance(meant.as_deref(), &declared.name)?;
            }
            Ok(spec)
        });
        let operation = if request.adopt { "adopt" } else { "install" };
        self.submit(operation, spec, &who, request.options.as_ref())
            .await
    }

    async fn up(&self, request: Request<UpRequest>) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "up", up);
        let request = request.into_inner();
        let spec = Ok(JobSpec::Up(UpParams {
            timeout_ms: request.timeout_ms,
            service_timeout_ms: request.service_timeout_ms,
        }));
        self.submit("up", spec, &who, request.options.as_ref())
            .await
    }

    async fn down(&self, request: Request<DownRequest>) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "down", down);
        let request = request.into_inner();
        let spec = JobSpec::Down(DownParams {
            activity: ActivityPolicy::from_wire(request.activity.as_ref()),
        });
        self.submit("down", Ok(spec), &who, request.options.as_ref())
            .await
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "delete", delete);
        let request = request.into_inner();
        let spec = Ok(JobSpec::Delete(DeleteParams {
            confirm: request.confirm,
        }));
        self.submit("delete", spec, &who, request.options.as_ref())
            .await
    }

    async fn upgrade_plan(
        &self,
        request: Request<UpgradePlanRequest>,
    ) -> Result<Response<UpgradePlanReply>, Status> {
        let caller = self.read(&request, "read the upgrade plan")?;
        let (mode, _) = self.core().mode();
        crate::instance::fsm::check(crate::instance::fsm::Op::UpgradePlan, mode)
            .map_err(Status::failed_precondition)?;
        let status = self.core().snapshot.borrow().clone();
        let own = &self.core().migrations_digest;
        if let Some(why) = crate::instance::peers::own_disagreement(&status.coordinators, own) {
            return Err(Status::failed_precondition(why));
        }
        let plan = crate::edge::wire::plan(crate::instance::plan::plan(
            &status,
            &self.core().migrations,
        ));
        Ok(Response::new(caller.reader.plan(plan)))
    }

    async fn upgrade_apply(
        &self,
        request: Request<UpgradeApplyRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "upgrade apply", upgrade_apply);
        let request = request.into_inner();
        let spec = Ok(JobSpec::Upgrade(UpgradeParams {
            parallel: request.parallel,
            nodes: request.nodes,
            fail_fast: request.fail_fast,
        }));
        self.submit("upgrade", spec, &who, request.options.as_ref())
            .await
    }

    async fn restart(&self, request: Request<RestartRequest>) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "restart", restart);
        let request = request.into_inner();
        let spec = requests::restart_spec(&request);
        self.submit("restart", spec, &who, request.options.as_ref())
            .await
    }

    async fn upgrade_repair(
        &self,
        request: Request<UpgradeRepairRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "upgrade repair", upgrade_repair);
        let request = request.into_inner();
        let spec = requests::repair_spec(&request);
        self.submit("repair", spec, &who, request.options.as_ref())
            .await
    }

    async fn workers_add(
        &self,
        request: Request<WorkersAddRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "workers add", workers_add);
        let request = request.into_inner();
        let spec = requests::workers_add_spec(&request.spec_toml);
        self.submit("workers-add", spec, &who, request.options.as_ref())
            .await
    }

    async fn workers_remove(
        &self,
        request: Request<WorkersRemoveRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "workers remove", workers_remove);
        let request = request.into_inner();
        let spec = Ok(JobSpec::WorkersRemove(WorkersRemoveParams {
            name: request.name,
            purge: request.purge,
            forget_replicas: request.forget_replicas,
        }));
        self.submit("workers-remove", spec, &who, request.options.as_ref())
            .await
    }

    async fn workers_state(
        &self,
        request: Request<WorkersStateRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "workers state", workers_state);
        let request = request.into_inner();
        let spec = crate::domain::activity::WorkerState::from_wire(request.state)
            .map(|state| {
                JobSpec::WorkersState(WorkersStateParams {
                    name: request.name.clone(),
                    state,
                })
            })
            .ok_or_else(|| "the state must be enabled, read-only or disabled".to_owned());
        self.submit("workers-state", spec, &who, request.options.as_ref())
            .await
    }

    async fn config_apply(
        &self,
        request: Request<ConfigApplyRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "config apply", config_apply);
        self.config_apply_reply(&who, request.into_inner()).await
    }

    async fn config_rollback(
        &self,
        request: Request<ConfigRollbackRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "config rollback", config_rollback);
        self.config_rollback_reply(&who, request.into_inner()).await
    }

    async fn config_diff(
        &self,
        request: Request<ConfigDiffRequest>,
    ) -> Result<Response<ConfigDiffReply>, Status> {
        self.read(&request, "diff a configuration")?;
        self.config_diff_reply(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn config_history(
        &self,
        request: Request<ConfigHistoryRequest>,
    ) -> Result<Response<ConfigHistoryReply>, Status> {
        self.read(&request, "read configuration history")?;
        self.config_history_reply(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn config_show(
        &self,
        request: Request<ConfigShowRequest>,
    ) -> Result<Response<ConfigShowReply>, Status> {
        self.read(&request, "read a configuration template")?;
        self.config_show_reply(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn workers_replace(
        &self,
        request: Request<WorkersReplaceRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = route!(self, request, "workers replace", workers_replace);
        let request = request.into_inner();
        let spec = requests::workers_replace_spec(&request);
        self.submit("workers-replace", spec, &who, request.options.as_ref())
            .await
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<JobList>, Status> {
        let caller = self.read(&request, "read jobs")?;
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 50,
            n => n.min(1000),
        };
        let jobs = self
            .core()
            .store
            .list_jobs(limit, request.since_ms)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(JobList {
            jobs: jobs
                .iter()
                .map(|job| caller.reader.job(Job::from(job)))
                .collect(),
        }))
    }

    async fn get_job(&self, request: Request<JobRequest>) -> Result<Response<Job>, Status> {
        let caller = self.read(&request, "read jobs")?;
        let id = request.into_inner().id;
        let job = self.load_job(&id).await?;
        Ok(Response::new(caller.reader.job(Job::from(&job))))
    }

    type WatchJobStream = Streamed<Job>;

    async fn watch_job(
        &self,
        request: Request<JobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = self.read(&request, "read jobs")?;
        let slot = self.streams.take(&caller.identity)?;
        let reader = caller.reader;
        let id = request.into_inner().id;
        let first = self.load_job(&id).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let core = Arc::clone(self.core());
        let mut current = self.engine.watch_current();
        tokio::spawn(async move {
            let _counted = StreamTask::start(&core.metrics);
            let _slot = slot;
            let mut last = first;
            let mut unread_since: Option<Instant> = None;
            if tx.send(Ok(reader.job(Job::from(&last)))).await.is_err() {
                return;
            }
            while !last.state.is_finished() {
                // A client that went away ends the task now, not at the next send.
                tokio::select! {
                    () = tx.closed() => return,
                    changed = current.changed() => if changed.is_err() { break },
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                // The engine's view holds while this coordinator leads; one that lost the
                // lease keeps its last view of a job another leader finishes.
                let leads = core.term.borrow().is_leader();
                let live = current
                    .borrow()
                    .clone()
                    .filter(|j| leads && j.id == last.id);
                let next = match live {
                    Some(job) => job,
                    None => match core.store.job(&last.id).await {
                        Ok(Some(job)) => job,
                        Ok(None) => {
                            let gone = format!(
                                "job {} is no longer in the store (forgotten or pruned)",
                                last.id
                            );
                            let _ = tx.send(Err(Status::not_found(gone))).await;
                            return;
                        }
                        // A store moving to another host fails for a moment: the client keeps
                        // following, and the job is read again at the next turn. A store out
                        // of reach for longer (this coordinator cut off) ends the stream, so
                        // that the client follows the job through another coordinator.
                        Err(err) => {
                            let since = *unread_since.get_or_insert_with(Instant::now);
                            if since.elapsed() < STORE_OUT_OF_REACH {
                                tracing::debug!(job = %last.id, error = %err, "cannot read the followed job; reading it again");
                                continue;
                            }
                            let why = format!(
                                "this coordinator has not been able to read job {} from its store for {} s ({err}); follow it through another coordinator: 'qserv jobs wait {}'",
                                last.id,
                                STORE_OUT_OF_REACH.as_secs(),
                                last.id
                            );
                            let _ = tx.send(Err(Status::unavailable(why))).await;
                            return;
                        }
                    },
                };
                unread_since = None;
                if next != last {
                    last = next;
                    // A follower reads what the leader's job did before telling the client it
                    // ended: the client's next status must show it.
                    if last.state.is_finished()
                        && !core.term.borrow().is_leader()
                        && let Err(err) = core.reload().await
                    {
                        tracing::warn!(error = %err, "cannot read the leader's inventory from the store");
                    }
                    if tx.send(Ok(reader.job(Job::from(&last)))).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type JobLogsStream = Streamed<LogLine>;

    async fn job_logs(
        &self,
        request: Request<JobLogsRequest>,
    ) -> Result<Response<Self::JobLogsStream>, Status> {
        let caller = self.read(&request, "read job logs")?;
        let slot = self.streams.take(&caller.identity)?;
        let reader = caller.reader;
        let request = request.into_inner();
        self.load_job(&request.id).await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let core = Arc::clone(self.core());
        tokio::spawn(async move {
            let _counted = StreamTask::start(&core.metrics);
            let _slot = slot;
            // A store that cannot be read ends the stream with an error, never as if the job
            // had said nothing more.
            if let Err(err) = feed_logs(&core, &request, reader, &tx).await {
                let _ = tx
                    .send(Err(Status::unavailable(format!(
                        "cannot read the job's log from the store: {err}; run the command again"
                    ))))
                    .await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn cancel_job(&self, request: Request<JobRequest>) -> Result<Response<Job>, Status> {
        let who = route!(self, request, "cancel jobs", cancel_job);
        let id = request.into_inner().id;
        let entry = AuditRecord {
            at_ms: crate::clock::now_ms(),
            role: who.role_name().to_owned(),
            identity: who.identity,
            operation: "cancel".to_owned(),
            params: serde_json::json!({ "job": id }).to_string(),
            outcome: Outcome::Accepted,
            job_id: Some(id.clone()),
        };
        if let Err(err) = self.core().store.record_audit(&entry).await {
            tracing::error!(error = %err, "cannot record an audit entry");
        }
        match self.engine.cancel(&id).await.map_err(submit_status)? {
            Some(job) => Ok(Response::new(Job::from(&job))),
            None => Err(Status::not_found(format!(
                "no job {id}; 'qserv jobs list' shows the jobs"
            ))),
        }
    }

    async fn list_audit(
        &self,
        request: Request<AuditRequest>,
    ) -> Result<Response<AuditList>, Status> {
        let caller = self.read(&request, "read the audit trail")?;
        let request = request.into_inner();
        let limit = match request.limit {
            0 => 1000,
            n => n.min(10_000),
        };
        let (entries, truncated) = self
            .core()
            .store
            .audit_page(request.since_ms, limit)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(AuditList {
            entries: entries
                .into_iter()
                .map(|e| caller.reader.audit(AuditEntry::from(&e)))
                .collect(),
            truncated,
        }))
    }
}
