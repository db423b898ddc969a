//! The coordinator's gRPC service for the CLI. Reads come from the snapshot or the store, never
//! from a job's locks; mutating commands become jobs.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use qserv_proto::v1::coordinator_server::Coordinator;
use qserv_proto::v1::*;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::{ReceiverStream, WatchStream};
use tonic::{Request, Response, Status};

use crate::core::Core;
use crate::jobs::{Engine, Kind, SubmitError, Submitted};
use crate::spec::InstanceSpec;
use crate::store::spec_conflicts;

pub struct CoordinatorService {
    engine: Arc<Engine>,
}

impl CoordinatorService {
    pub fn new(engine: Arc<Engine>) -> CoordinatorService {
        CoordinatorService { engine }
    }

    fn core(&self) -> &Arc<Core> {
        self.engine.core()
    }
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

fn is_finished(state: &str) -> bool {
    matches!(state, "succeeded" | "failed" | "cancelled" | "interrupted")
}

/// Who asked: the user name the CLI sends, and the address it came from. (With mutual TLS the
/// certificate's identity replaces the self-declared name.)
fn requester<T>(request: &Request<T>) -> String {
    let user = request
        .metadata()
        .get("x-qserv-user")
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() <= 128)
        .unwrap_or("unknown");
    match request.remote_addr() {
        Some(addr) => format!("{user} from {}", addr.ip()),
        None => user.to_owned(),
    }
}

fn submit_status(err: SubmitError) -> Status {
    match err {
        SubmitError::Refused(message) => Status::failed_precondition(message),
        SubmitError::Internal(message) => Status::internal(message),
    }
}

fn job_ref(submitted: Submitted) -> Response<JobRef> {
    Response::new(match submitted {
        Submitted::Job(id) => JobRef {
            message: format!("job {id} created"),
            id,
        },
        Submitted::NoOp(message) => JobRef {
            id: String::new(),
            message,
        },
    })
}

fn wait_of(options: Option<&MutationOptions>) -> bool {
    options.is_some_and(|o| o.wait)
}

/// An instance needs a czar, a worker and its one repl node before it can be installed.
fn check_roles(spec: &InstanceSpec) -> Result<(), SubmitError> {
    let count = |role| spec.nodes.iter().filter(|n| n.role == role).count();
    let mut missing = Vec::new();
    if count(Role::Czar) == 0 {
        missing.push("a czar");
    }
    if count(Role::Worker) == 0 {
        missing.push("a worker");
    }
    if count(Role::Repl) == 0 {
        missing.push("a repl node");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(SubmitError::Refused(format!(
            "the instance spec has no {}; add the node(s) and run install again",
            missing.join(", no ")
        )))
    }
}

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn get_status(
        &self,
        _request: Request<InstanceStatusRequest>,
    ) -> Result<Response<InstanceStatus>, Status> {
        Ok(Response::new(self.core().snapshot.borrow().clone()))
    }

    type WatchStatusStream = Streamed<InstanceStatus>;

    async fn watch_status(
        &self,
        _request: Request<InstanceStatusRequest>,
    ) -> Result<Response<Self::WatchStatusStream>, Status> {
        let stream = WatchStream::new(self.core().snapshot.subscribe()).map(Ok);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_version(
        &self,
        _request: Request<VersionRequest>,
    ) -> Result<Response<VersionInfo>, Status> {
        Ok(Response::new(VersionInfo {
            version: qserv_proto::VERSION.to_owned(),
            protocol_version: qserv_proto::PROTOCOL_VERSION,
        }))
    }

    async fn install(&self, request: Request<InstallRequest>) -> Result<Response<JobRef>, Status> {
        let who = requester(&request);
        let request = request.into_inner();
        let spec_text = request.spec_toml;
        let params = serde_json::json!({ "spec_given": !spec_text.is_empty() });
        let validate = async move |core: &Arc<Core>| -> Result<Option<String>, SubmitError> {
            let internal = |e: crate::store::StoreError| SubmitError::Internal(e.to_string());
            let (mode, _) = core.mode();
            let Some(spec_text) = Some(spec_text).filter(|t| !t.is_empty()) else {
                let inventory = core
                    .store
                    .load()
                    .await
                    .map_err(internal)?
                    .filter(|i| !i.name.is_empty());
                let Some(inventory) = inventory else {
                    return Err(SubmitError::Refused(
                        "no inventory to install: pass --spec FILE, or start the coordinator with --spec".to_owned(),
                    ));
                };
                check_roles(&inventory.spec())?;
                return Ok(None);
            };
            if spec_text.len() > 1024 * 1024 {
                return Err(SubmitError::Refused(
                    "the spec is larger than 1 MiB; check that it is the right file".to_owned(),
                ));
            }
            let spec = InstanceSpec::parse(&spec_text).map_err(|(line, problem)| {
                SubmitError::Refused(format!("spec, line {line}: {problem}"))
            })?;
            check_roles(&spec)?;
            if mode == Mode::Installing {
                let inventory = core.store.load().await.map_err(internal)?;
                if let Some(inventory) = inventory {
                    let problems = spec_conflicts(&inventory, &spec);
                    if !problems.is_empty() {
                        return Err(SubmitError::Refused(format!(
                            "an install of '{}' is in progress and the spec disagrees with it: {}; \
                             run 'qserv install' without --spec to resume it, or 'qserv delete' it first",
                            inventory.name,
                            problems.join("; ")
                        )));
                    }
                }
                return Ok(None);
            }
            core.store.declare(&spec).await.map_err(internal)?;
            core.reload().await.map_err(internal)?;
            Ok(None)
        };
        let submitted = self
            .engine
            .submit(
                Kind::Install,
                params,
                &who,
                wait_of(request.options.as_ref()),
                validate,
            )
            .await
            .map_err(submit_status)?;
        Ok(job_ref(submitted))
    }

    async fn up(&self, request: Request<UpRequest>) -> Result<Response<JobRef>, Status> {
        let who = requester(&request);
        let request = request.into_inner();
        let params = serde_json::json!({ "timeout_ms": request.timeout_ms });
        let submitted = self
            .engine
            .submit(
                Kind::Up,
                params,
                &who,
                wait_of(request.options.as_ref()),
                async |_: &Arc<Core>| Ok(None),
            )
            .await
            .map_err(submit_status)?;
        Ok(job_ref(submitted))
    }

    async fn down(&self, request: Request<DownRequest>) -> Result<Response<JobRef>, Status> {
        let who = requester(&request);
        let request = request.into_inner();
        let submitted = self
            .engine
            .submit(
                Kind::Down,
                serde_json::json!({}),
                &who,
                wait_of(request.options.as_ref()),
                async |_: &Arc<Core>| Ok(None),
            )
            .await
            .map_err(submit_status)?;
        Ok(job_ref(submitted))
    }

    async fn delete(&self, request: Request<DeleteRequest>) -> Result<Response<JobRef>, Status> {
        let who = requester(&request);
        let request = request.into_inner();
        let confirm = request.confirm.clone();
        let validate = async move |core: &Arc<Core>| -> Result<Option<String>, SubmitError> {
            let name = core.instance_name();
            if confirm != name {
                return Err(SubmitError::Refused(format!(
                    "--confirm '{confirm}' does not match the instance name '{name}'; delete drops every Qserv database of the instance, so repeat its name exactly"
                )));
            }
            Ok(None)
        };
        let params = serde_json::json!({ "confirm": request.confirm });
        let submitted = self
            .engine
            .submit(
                Kind::Delete,
                params,
                &who,
                wait_of(request.options.as_ref()),
                validate,
            )
            .await
            .map_err(submit_status)?;
        Ok(job_ref(submitted))
    }

    async fn upgrade_plan(
        &self,
        _request: Request<UpgradePlanRequest>,
    ) -> Result<Response<UpgradePlan>, Status> {
        let (mode, _) = self.core().mode();
        crate::fsm::check(crate::fsm::Op::UpgradePlan, mode)
            .map_err(Status::failed_precondition)?;
        let status = self.core().snapshot.borrow().clone();
        Ok(Response::new(crate::plan::plan(
            &status,
            &self.core().migrations,
        )))
    }

    async fn upgrade_apply(
        &self,
        request: Request<UpgradeApplyRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = requester(&request);
        let request = request.into_inner();
        let wanted = request.nodes.clone();
        let validate = async move |core: &Arc<Core>| -> Result<Option<String>, SubmitError> {
            let known: Vec<String> = core
                .snapshot
                .borrow()
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .collect();
            let unknown: Vec<&String> = wanted.iter().filter(|n| !known.contains(n)).collect();
            if !unknown.is_empty() {
                return Err(SubmitError::Refused(format!(
                    "--nodes names nodes the instance does not have: {}",
                    unknown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            Ok(None)
        };
        let params = serde_json::json!({
            "parallel": request.parallel,
            "nodes": request.nodes,
            "fail_fast": request.fail_fast,
        });
        let submitted = self
            .engine
            .submit(
                Kind::Upgrade,
                params,
                &who,
                wait_of(request.options.as_ref()),
                validate,
            )
            .await
            .map_err(submit_status)?;
        Ok(job_ref(submitted))
    }

    async fn upgrade_repair(
        &self,
        request: Request<UpgradeRepairRequest>,
    ) -> Result<Response<JobRef>, Status> {
        let who = requester(&request);
        let request = request.into_inner();
        let (node, module) = (request.node.clone(), request.module.clone());
        let validate = async move |core: &Arc<Core>| -> Result<Option<String>, SubmitError> {
            let role = core
                .snapshot
                .borrow()
                .nodes
                .iter()
                .find(|n| n.name == node)
                .map(|n| Role::try_from(n.role).unwrap_or(Role::Unspecified));
            match role {
                None => Err(SubmitError::Refused(format!(
                    "no node {node} in the inventory"
                ))),
                Some(role) if qserv_proto::names::role_name(role) != module => {
                    Err(SubmitError::Refused(format!(
                        "{node} is a {} node; its module is {}, not {module}",
                        qserv_proto::names::role_name(role),
                        qserv_proto::names::role_name(role)
                    )))
                }
                Some(_) => Ok(None),
            }
        };
        let params = serde_json::json!({
            "node": request.node,
            "module": request.module,
            "version": request.version,
        });
        let submitted = self
            .engine
            .submit(
                Kind::Repair,
                params,
                &who,
                wait_of(request.options.as_ref()),
                validate,
            )
            .await
            .map_err(submit_status)?;
        Ok(job_ref(submitted))
    }

    async fn list_jobs(
        &self,
        request: Request<ListJobsRequest>,
    ) -> Result<Response<JobList>, Status> {
        let limit = match request.into_inner().limit {
            0 => 50,
            n => n.min(1000),
        };
        let jobs = self
            .core()
            .store
            .list_jobs(limit)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(JobList { jobs }))
    }

    async fn get_job(&self, request: Request<JobRequest>) -> Result<Response<Job>, Status> {
        let id = request.into_inner().id;
        match self.core().store.job(&id).await {
            Ok(Some(job)) => Ok(Response::new(job)),
            Ok(None) => Err(Status::not_found(format!(
                "no job {id}; 'qserv jobs list' shows the jobs"
            ))),
            Err(e) => Err(Status::internal(e.to_string())),
        }
    }

    type WatchJobStream = Streamed<Job>;

    async fn watch_job(
        &self,
        request: Request<JobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let id = request.into_inner().id;
        let first = self
            .get_job(Request::new(JobRequest { id: id.clone() }))
            .await?
            .into_inner();
        let (tx, rx) = tokio::sync::mpsc::channel(32);
        let core = Arc::clone(self.core());
        let mut current = self.engine.watch_current();
        tokio::spawn(async move {
            let mut last = first;
            if tx.send(Ok(last.clone())).await.is_err() {
                return;
            }
            while !is_finished(&last.state) {
                tokio::select! {
                    changed = current.changed() => if changed.is_err() { break },
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                let live = current.borrow().clone().filter(|j| j.id == last.id);
                let next = match live {
                    Some(job) => job,
                    None => match core.store.job(&last.id).await {
                        Ok(Some(job)) => job,
                        _ => break,
                    },
                };
                if next != last {
                    last = next;
                    if tx.send(Ok(last.clone())).await.is_err() {
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
        let request = request.into_inner();
        self.get_job(Request::new(JobRequest {
            id: request.id.clone(),
        }))
        .await?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let core = Arc::clone(self.core());
        tokio::spawn(async move {
            let mut after = 0;
            loop {
                let finished = matches!(core.store.job(&request.id).await, Ok(Some(j)) if is_finished(&j.state));
                let lines = core
                    .store
                    .logs(&request.id, after)
                    .await
                    .unwrap_or_default();
                for line in lines {
                    after = line.seq;
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
                if !request.follow || finished {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn cancel_job(&self, request: Request<JobRequest>) -> Result<Response<Job>, Status> {
        let id = request.into_inner().id;
        match self.engine.cancel(&id).await.map_err(submit_status)? {
            Some(job) => Ok(Response::new(job)),
            None => Err(Status::not_found(format!(
                "no job {id}; 'qserv jobs list' shows the jobs"
            ))),
        }
    }
}
