//! The configuration requests (DESIGN §17): `config apply` and `rollback` store a version of
//! a service's template and submit the job that writes it; `diff` asks the nodes what it would
//! change; `history` and `show` read the store. A request admission refuses stores nothing.

use qserv_model::{ServiceName, Template};
use qserv_proto::v1 as pb;
use tonic::{Response, Status};

use crate::domain::config::NewConfigVersion;
use crate::domain::job::{ConfigApplyParams, JobSpec};
use crate::edge::auth::Caller;
use crate::edge::grpc::CoordinatorService;
use crate::instance::admission;
use crate::instance::configs::config_targets;

/// Which nodes a request means, or why it cannot mean any.
fn scope(wire: Option<&pb::ConfigScope>) -> Result<(ServiceName, ConfigApplyParams), String> {
    let wire = wire.ok_or("a configuration request names a service: pass --service")?;
    let service = ServiceName::parse(&wire.service).map_err(|e| e.to_string())?;
    let role = match wire.role {
        0 => None,
        value => Some(
            qserv_proto::model::role(value)
                .ok_or_else(|| format!("role {value} is not one this coordinator knows"))?,
        ),
    };
    Ok((
        service.clone(),
        ConfigApplyParams {
            service,
            version: 0,
            role,
            nodes: wire.nodes.clone(),
            rolling: false,
        },
    ))
}

fn wire_version(v: &crate::domain::config::ConfigVersion) -> pb::ConfigVersion {
    pb::ConfigVersion {
        version: v.version,
        sha256: v.sha256.clone(),
        by: v.by.clone(),
        at_ms: v.at_ms,
        message: v.message.clone(),
    }
}

fn store_status(err: crate::store::StoreError) -> Status {
    Status::internal(err.to_string())
}

impl CoordinatorService {
    /// Admits a write of `template` as `params` ask, then stores it as the service's next
    /// version and submits the job that writes it.
    pub(super) async fn submit_config(
        &self,
        operation: &str,
        who: &Caller,
        params: Result<ConfigApplyParams, String>,
        template: &str,
        message: &str,
        options: Option<&pb::MutationOptions>,
    ) -> Result<Response<pb::JobRef>, Status> {
        let checked = params.and_then(|params| {
            let template = Template::parse(template.as_bytes())
                .map_err(|e| format!("{}: {e}", params.service))?;
            Ok((params, template))
        });
        let (mut params, template) = match checked {
            Ok(checked) => checked,
            Err(why) => return self.submit(operation, Err(why), who, options).await,
        };
        let spec = JobSpec::ConfigApply(params.clone());
        let facts = self
            .engine
            .facts(&spec)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        if let Err(why) = admission::admit(&spec, &facts) {
            return self.submit(operation, Err(why), who, options).await;
        }
        let stored = self
            .core()
            .store
            .add_config_version(NewConfigVersion {
                service: &params.service,
                content: template.text(),
                sha256: &template.sha256(),
                by: &who.identity,
                at_ms: crate::clock::now_ms(),
                message,
            })
            .await
            .map_err(store_status)?;
        params.version = stored.version;
        self.submit(operation, Ok(JobSpec::ConfigApply(params)), who, options)
            .await
    }

    pub(super) async fn config_apply_reply(
        &self,
        who: &Caller,
        request: pb::ConfigApplyRequest,
    ) -> Result<Response<pb::JobRef>, Status> {
        let params = scope(request.scope.as_ref()).map(|(_, mut params)| {
            params.rolling = request.rolling;
            params
        });
        self.submit_config(
            "config apply",
            who,
            params,
            &request.template,
            &request.message,
            request.options.as_ref(),
        )
        .await
    }

    pub(super) async fn config_rollback_reply(
        &self,
        who: &Caller,
        request: pb::ConfigRollbackRequest,
    ) -> Result<Response<pb::JobRef>, Status> {
        let (service, mut params) = match scope(request.scope.as_ref()) {
            Ok(scoped) => scoped,
            Err(why) => {
                return self
                    .submit("config rollback", Err(why), who, request.options.as_ref())
                    .await;
            }
        };
        params.rolling = request.rolling;
        let earlier = self
            .core()
            .store
            .config_version(&service, request.to)
            .await
            .map_err(store_status)?;
        let (params, template) = match earlier {
            Some((_, text)) => (Ok(params), text),
            None => (
                Err(format!(
                    "{service} has no version {}; 'qserv config history --service {service}' lists them",
                    request.to
                )),
                String::new(),
            ),
        };
        let message = format!("rollback to version {}", request.to);
        self.submit_config(
            "config rollback",
            who,
            params,
            &template,
            &message,
            request.options.as_ref(),
        )
        .await
    }

    pub(super) async fn config_diff_reply(
        &self,
        request: pb::ConfigDiffRequest,
    ) -> Result<pb::ConfigDiffReply, Status> {
        let (service, params) = scope(request.scope.as_ref()).map_err(Status::invalid_argument)?;
        let template = Template::parse(request.template.as_bytes())
            .map_err(|e| Status::invalid_argument(format!("{service}: {e}")))?;
        let core = self.core();
        let nodes = core.nodes();
        let results = crate::runtime::fresh::probe(core, &nodes).await;
        let view = crate::runtime::fresh::view(core, &results);
        let targets = config_targets(&view, &service, params.role, &params.nodes)
            .map_err(Status::failed_precondition)?;
        let auth = core.authority();
        let asks = nodes
            .iter()
            .filter(|n| targets.contains(&n.name))
            .map(|node| {
                let auth = auth.clone();
                let (service, template) = (&service, template.text());
                async move {
                    let answer = core
                        .agents
                        .prepare_config(node, &auth, service, template, false)
                        .await;
                    match answer {
                        Ok(prepared) => pb::NodeConfigDiff {
                            node: node.name.clone(),
                            path: prepared.path,
                            diff: prepared.diff,
                            error: String::new(),
                        },
                        Err(err) => pb::NodeConfigDiff {
                            node: node.name.clone(),
                            error: err.to_string(),
                            ..pb::NodeConfigDiff::default()
                        },
                    }
                }
            });
        Ok(pb::ConfigDiffReply {
            nodes: futures::future::join_all(asks).await,
        })
    }

    pub(super) async fn config_history_reply(
        &self,
        request: pb::ConfigHistoryRequest,
    ) -> Result<pb::ConfigHistoryReply, Status> {
        let service = ServiceName::parse(&request.service)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let versions = self
            .core()
            .store
            .config_history(&service)
            .await
            .map_err(store_status)?;
        Ok(pb::ConfigHistoryReply {
            versions: versions.iter().map(wire_version).collect(),
        })
    }

    pub(super) async fn config_show_reply(
        &self,
        request: pb::ConfigShowRequest,
    ) -> Result<pb::ConfigShowReply, Status> {
        let service = ServiceName::parse(&request.service)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let store = &self.core().store;
        let version = match request.version {
            0 => store
                .config_history(&service)
                .await
                .map_err(store_status)?
                .last()
                .map(|v| v.version),
            v => Some(v),
        };
        let found = match version {
            Some(v) => store
                .config_version(&service, v)
                .await
                .map_err(store_status)?,
            None => None,
        };
        let Some((version, template)) = found else {
            return Err(Status::not_found(format!(
                "{service} has no such template version; 'qserv config history --service {service}' lists them"
            )));
        };
        Ok(pb::ConfigShowReply {
            version: Some(wire_version(&version)),
            template,
        })
    }
}
