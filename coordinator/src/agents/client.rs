//! The gRPC implementation of [`AgentApi`]: one lazily connected channel per agent address.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use qserv_proto::reload::stamps;
use qserv_proto::tls::{TlsError, TlsFiles};

use qserv_proto::transport::{describe_status, lazy_channel, secure_endpoint};
use qserv_proto::v1 as pb;
use qserv_proto::v1::agent_client::AgentClient;
use tonic::transport::{Channel, ClientTlsConfig};

use crate::agents::api::{
    AgentApi, AgentError, AgentResult, AppliedScript, Authority, ConfigWrite, DatabaseHoldings,
    Forgotten, Holdings, MigrateCall, Migrated, Prepared, Purged, RepairCall, Reply, Scope,
};
use crate::domain::Mode;
use crate::domain::{Node, Observation};
use qserv_model::{Release, ServiceName};

/// Deadline of an ordinary agent command; migrations get their own.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// A fresh check is bounded on the agent by its own check timeout; this adds the round trip.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// A migration may run long; the agent finishes it even if this deadline passes.
const MIGRATE_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// A restart waits for the services to stop (the agent's stop timeout) and start again.
const RESTART_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Saving a worker's replication records: hundreds of thousands of replica rows.
const FORGET_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// How much longer than a request's own deadline the coordinator waits for its answer.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

type Stamped = ([Option<SystemTime>; 3], ClientTlsConfig);

/// An agent's `WatchStatus` stream, each status decoded as it arrives. Errors are the
/// operator's words for what broke.
pub struct StatusStream(tonic::Streaming<pb::AgentStatus>);

impl StatusStream {
    pub async fn open(endpoint: &tonic::transport::Endpoint) -> Result<StatusStream, String> {
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| qserv_proto::transport::describe_error(&e))?;
        AgentClient::new(channel)
            .watch_status(pb::AgentStatusRequest {})
            .await
            .map(|response| StatusStream(response.into_inner()))
            .map_err(|s| describe_status(&s))
    }

    /// The next status; `None` once the agent closed the stream.
    pub async fn next(&mut self) -> Result<Option<Observation>, String> {
        match self.0.message().await {
            Ok(status) => Ok(status.as_ref().map(qserv_proto::model::agent_state)),
            Err(status) => Err(describe_status(&status)),
        }
    }
}

pub struct GrpcAgents {
    channels: Mutex<HashMap<String, Channel>>,
    files: Option<TlsFiles>,
    tls: Mutex<Option<Stamped>>,
}

impl GrpcAgents {
    pub fn new(files: Option<TlsFiles>) -> Result<GrpcAgents, TlsError> {
        let tls = match &files {
            Some(f) => Some((stamps(f), f.client()?)),
            None => None,
        };
        Ok(GrpcAgents {
            channels: Mutex::new(HashMap::new()),
            files,
            tls: Mutex::new(tls),
        })
    }

    /// The TLS configuration agents are reached with (`None` for plaintext), reloaded when the
    /// certificate files change; the cached channels then go, so new connections use it.
    pub fn tls(&self) -> Option<ClientTlsConfig> {
        let files = self.files.as_ref()?;
        let mut current = self.tls.lock().ok()?;
        let now = stamps(files);
        if current.as_ref().is_none_or(|(then, _)| *then != now) {
            match files.client() {
                Ok(config) => {
                    tracing::info!(cert = %files.cert.display(), "reloaded TLS certificates for agents");
                    *current = Some((now, config));
                    if let Ok(mut channels) = self.channels.lock() {
                        channels.clear();
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, "TLS files changed but cannot be loaded; keeping the previous ones")
                }
            }
        }
        current.as_ref().map(|(_, config)| config.clone())
    }

    /// A client for the agent at `url`; connection happens on first use and is re-established
    /// by the channel when it breaks.
    pub fn client(&self, url: &str) -> Result<AgentClient<Channel>, String> {
        let tls = self.tls();
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| "agent channel table poisoned".to_owned())?;
        if let Some(channel) = channels.get(url) {
            return Ok(AgentClient::new(channel.clone()));
        }
        let channel = lazy_channel(secure_endpoint(url, tls.as_ref()).map_err(|e| e.to_string())?);
        channels.insert(url.to_owned(), channel.clone());
        Ok(AgentClient::new(channel))
    }
}

/// A request with a deadline.
pub fn request<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// What a failed call means for the job that made it.
fn agent_error(status: &tonic::Status) -> AgentError {
    let text = describe_status(status);
    match status.code() {
        tonic::Code::FailedPrecondition
        | tonic::Code::InvalidArgument
        | tonic::Code::PermissionDenied
        | tonic::Code::Unauthenticated
        | tonic::Code::Unimplemented => AgentError::Refused(text),
        // The agent answers `unavailable` itself when its database does not: that is an
        // answer, not an unreachable agent.
        tonic::Code::Unavailable
            if qserv_proto::failure::Failure::of(status)
                != Some(qserv_proto::failure::Failure::LocalDatabase) =>
        {
            AgentError::Unreachable(text)
        }
        tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown => {
            AgentError::Unreachable(text)
        }
        tonic::Code::OutOfRange => AgentError::Stale(text),
        _ => AgentError::Failed(text),
    }
}

fn target(node: &Node, auth: &Authority) -> Option<pb::CommandTarget> {
    Some(pb::CommandTarget::from(&qserv_model::Target {
        instance: auth.instance.clone(),
        node: node.name.clone(),
        role: Some(node.role),
        epoch: auth.epoch,
        token: auth.token,
    }))
}

/// The status a mutating command's reply carries; an agent that sent none is not one this
/// coordinator can trust to have checked.
fn observed(status: Option<pb::AgentStatus>) -> AgentResult<Observation> {
    status
        .map(|s| qserv_proto::model::agent_state(&s))
        .ok_or_else(|| {
            AgentError::Failed("the agent's reply carries no status; upgrade the agent".to_owned())
        })
}

impl GrpcAgents {
    /// Sends `message` to the node's agent and waits for the answer within `limit`, measured
    /// here. The deadline the request carries tells the agent when to give up, but a request
    /// still waiting for its connection was never sent: only this bounds that wait.
    async fn call<M, T, F, Fut>(
        &self,
        node: &Node,
        limit: Duration,
        message: M,
        send: F,
    ) -> AgentResult<T>
    where
        F: FnOnce(AgentClient<Channel>, tonic::Request<M>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let client = self.client(&node.agent).map_err(AgentError::Unreachable)?;
        within(limit, send(client, request(message, limit))).await
    }
}

/// The answer of `call`, or unreachable once `limit` has passed without one (a little later
/// than the agent's own deadline, so that its answer, when it gives one, is what is reported).
async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> AgentResult<T> {
    match tokio::time::timeout(limit + DEADLINE_GRACE, call).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => Err(agent_error(&status)),
        Err(_) => Err(AgentError::Unreachable(format!(
            "no answer within {}",
            humantime::format_duration(limit)
        ))),
    }
}

#[tonic::async_trait]
impl AgentApi for GrpcAgents {
    async fn probe(&self, node: &Node, scope: Scope) -> AgentResult<Observation> {
        let reply = self
            .call(
                node,
                PROBE_TIMEOUT,
                pb::ProbeRequest {
                    scope: match scope {
                        Scope::All => pb::ProbeScope::All,
                        Scope::Services => pb::ProbeScope::Services,
                    }
                    .into(),
                },
                |mut c, r| async move { c.probe(r).await },
            )
            .await?;
        Ok(qserv_proto::model::agent_state(&reply))
    }

    async fn set_mode(
        &self,
        node: &Node,
        auth: &Authority,
        mode: Mode,
        release: &Release,
    ) -> AgentResult<Observation> {
        let message = pb::SetModeRequest {
            target: target(node, auth),
            mode: pb::Mode::from(mode).into(),
            release: Some(pb::ServiceRelease::from(release)),
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.set_mode(r).await
            })
            .await?;
        observed(reply.status)
    }

    async fn set_services(
        &self,
        node: &Node,
        auth: &Authority,
        release: &Release,
    ) -> AgentResult<Observation> {
        let message = pb::SetServicesRequest {
            target: target(node, auth),
            release: Some(pb::ServiceRelease::from(release)),
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.set_services(r).await
            })
            .await?;
        observed(reply.status)
    }

    async fn inspect(&self, node: &Node, auth: &Authority) -> AgentResult<Vec<String>> {
        let message = pb::InspectRequest {
            target: target(node, auth),
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.inspect(r).await
            })
            .await?;
        Ok(reply.databases)
    }

    async fn ensure_accounts(
        &self,
        node: &Node,
        auth: &Authority,
    ) -> AgentResult<Reply<Vec<String>>> {
        let message = pb::EnsureAccountsRequest {
            target: target(node, auth),
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.ensure_accounts(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: reply.accounts,
        })
    }

    async fn migrate(
        &self,
        node: &Node,
        auth: &Authority,
        call: MigrateCall,
    ) -> AgentResult<Reply<Migrated>> {
        let message = pb::MigrateRequest {
            target: target(node, auth),
            module: call.shipment.module.name().to_owned(),
            scripts: call
                .shipment
                .scripts
                .into_iter()
                .map(|(file_name, content)| pb::MigrationScript { file_name, content })
                .collect(),
            manifest: call
                .shipment
                .manifest
                .into_iter()
                .map(|e| pb::ManifestEntry {
                    file_name: e.file_name,
                    checksum: e.checksum,
                })
                .collect(),
            manifest_digest: call.shipment.digest,
            stop_at: call.shipment.stop_at,
            job_id: call.job_id,
            requested_by: call.requested_by,
        };
        let reply = self
            .call(node, MIGRATE_TIMEOUT, message, |mut c, r| async move {
                c.migrate(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: Migrated {
                from: reply.from_version,
                to: reply.to_version,
                applied: reply
                    .applied
                    .into_iter()
                    .map(|a| AppliedScript {
                        file_name: a.file_name,
                        duration_ms: a.duration_ms,
                    })
                    .collect(),
            },
        })
    }

    async fn register_workers(
        &self,
        node: &Node,
        auth: &Authority,
        ids: Vec<String>,
    ) -> AgentResult<Reply<Vec<String>>> {
        let message = pb::RegisterWorkersRequest {
            target: target(node, auth),
            worker_ids: ids,
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.register_workers(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: reply.inserted,
        })
    }

    async fn unregister_workers(
        &self,
        node: &Node,
        auth: &Authority,
        ids: Vec<String>,
    ) -> AgentResult<Reply<Vec<String>>> {
        let message = pb::UnregisterWorkersRequest {
            target: target(node, auth),
            worker_ids: ids,
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.unregister_workers(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: reply.removed,
        })
    }

    async fn validate(&self, node: &Node, auth: &Authority) -> AgentResult<Vec<String>> {
        let message = pb::ValidateRequest {
            target: target(node, auth),
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.validate(r).await
            })
            .await?;
        Ok(reply.problems)
    }

    async fn purge(&self, node: &Node, auth: &Authority) -> AgentResult<Reply<Purged>> {
        let message = pb::PurgeRequest {
            target: target(node, auth),
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.purge(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: Purged {
                databases: reply.dropped_databases,
                accounts: reply.dropped_accounts,
            },
        })
    }

    async fn restart_services(
        &self,
        node: &Node,
        auth: &Authority,
        services: &[ServiceName],
    ) -> AgentResult<Reply<crate::agents::api::Restart>> {
        let message = pb::RestartServicesRequest {
            target: target(node, auth),
            services: services.iter().map(ToString::to_string).collect(),
        };
        let reply = self
            .call(node, RESTART_TIMEOUT, message, |mut c, r| async move {
                c.restart_services(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: crate::agents::api::Restart {
                restarted: reply.restarted,
                detail: reply.detail,
            },
        })
    }

    async fn prepare_config(
        &self,
        node: &Node,
        auth: &Authority,
        service: &ServiceName,
        template: &str,
        stage: bool,
    ) -> AgentResult<Prepared> {
        let message = pb::PrepareConfigRequest {
            target: target(node, auth),
            service: service.to_string(),
            template: template.to_owned(),
            stage,
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.prepare_config(r).await
            })
            .await?;
        Ok(Prepared {
            path: reply.path,
            rendered_sha256: reply.rendered_sha256,
            diff: reply.diff,
        })
    }

    async fn commit_config(
        &self,
        node: &Node,
        auth: &Authority,
        service: &ServiceName,
        write: &ConfigWrite,
        rolling: bool,
    ) -> AgentResult<Reply<String>> {
        let (version, rendered_sha256, restore) = match write {
            ConfigWrite::Install {
                version,
                rendered_sha256,
            } => (*version, rendered_sha256.clone(), false),
            ConfigWrite::Restore { version } => (*version, String::new(), true),
        };
        let message = pb::CommitConfigRequest {
            target: target(node, auth),
            service: service.to_string(),
            version,
            rendered_sha256,
            restore,
            rolling,
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.commit_config(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: reply.sha256,
        })
    }

    async fn worker_holdings(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
    ) -> AgentResult<Holdings> {
        let message = pb::WorkerHoldingsRequest {
            target: target(node, auth),
            worker_id: worker_id.to_owned(),
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.worker_holdings(r).await
            })
            .await?;
        Ok(Holdings {
            databases: reply
                .databases
                .into_iter()
                .map(|d| DatabaseHoldings {
                    database: d.database,
                    replicas: d.replicas,
                    sole_copies: d.sole_copies,
                    sole_chunks: d.sole_chunks,
                    contributions: d.contributions,
                })
                .collect(),
            cascaded: reply
                .cascaded
                .into_iter()
                .map(|c| (c.table, c.rows))
                .collect(),
        })
    }

    async fn forget_worker(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
        job_id: &str,
    ) -> AgentResult<Reply<Forgotten>> {
        let message = pb::ForgetWorkerRequest {
            target: target(node, auth),
            worker_id: worker_id.to_owned(),
            job_id: job_id.to_owned(),
        };
        let reply = self
            .call(node, FORGET_TIMEOUT, message, |mut c, r| async move {
                c.forget_worker(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: Forgotten {
                removed: reply.removed,
                saved_path: reply.saved_path,
                saved_rows: reply.saved_rows,
            },
        })
    }

    async fn set_worker_state(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
        (is_enabled, is_read_only): (bool, bool),
    ) -> AgentResult<Reply<Option<bool>>> {
        let message = pb::SetWorkerStateRequest {
            target: target(node, auth),
            worker_id: worker_id.to_owned(),
            is_enabled,
            is_read_only,
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.set_worker_state(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: reply.found.then_some(reply.changed),
        })
    }

    async fn repair(
        &self,
        node: &Node,
        auth: &Authority,
        call: RepairCall,
    ) -> AgentResult<Reply<String>> {
        let message = pb::RepairRequest {
            target: target(node, auth),
            module: call.module.name().to_owned(),
            version: call.version,
            max_version: call.max_version,
            force: call.force,
            reason: call.reason,
            job_id: call.job_id,
            requested_by: call.requested_by,
        };
        let reply = self
            .call(node, COMMAND_TIMEOUT, message, |mut c, r| async move {
                c.repair(r).await
            })
            .await?;
        Ok(Reply {
            observed: observed(reply.status)?,
            value: reply.previous_error,
        })
    }
}
