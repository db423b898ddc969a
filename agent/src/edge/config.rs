//! The configuration commands (DESIGN §17): a service's template rendered with this node's
//! values and compared with its file (staged for the second phase when asked), then installed
//! or put back. Admission is done by the caller; every text that leaves here is masked.

use std::path::PathBuf;

use qserv_model::{ServiceName, Template};
use qserv_proto::v1::{CommitConfigResponse, PrepareConfigResponse};
use tonic::Status;

use crate::config_files::file;
use crate::config_files::records::Written;
use crate::config_files::render::{Values, render};
use crate::edge::grpc::AgentService;

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, file::FileError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Status::internal(format!("file work was interrupted: {e}")))?
        .map_err(|e| Status::failed_precondition(e.to_string()))
}

impl AgentService {
    /// The service `name` means and where its configuration file is.
    fn file_of(&self, name: &str) -> Result<(ServiceName, PathBuf), Status> {
        let service =
            ServiceName::parse(name).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let path = self
            .configs
            .path_of(&service)
            .map_err(|e| Status::failed_precondition(e.to_string()))?
            .to_owned();
        Ok((service, path))
    }

    pub(crate) async fn prepare_reply(
        &self,
        service: &str,
        template: &str,
        instance: &str,
        stage: bool,
    ) -> Result<PrepareConfigResponse, Status> {
        let (service, path) = self.file_of(service)?;
        let template = Template::parse(template.as_bytes())
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let values = Values {
            secrets: self.secrets.template_context(),
            node: &self.identity.name,
            role: self.identity.role,
            instance,
        };
        let rendered = render(&template, &values).map_err(|e| {
            Status::failed_precondition(self.secrets.redact(&format!("{service}: {e}")))
        })?;
        let rendered_sha256 = file::sha256_hex(rendered.as_bytes());
        let current = {
            let path = path.clone();
            blocking(move || file::read(&path)).await?
        };
        let current_text = current
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let diff = crate::config_files::diff::unified(
            &path.display().to_string(),
            &current_text,
            &rendered,
        );
        if stage {
            let path = path.clone();
            blocking(move || file::stage(&path, &rendered)).await?;
        }
        Ok(PrepareConfigResponse {
            rendered_sha256,
            current_sha256: current.as_deref().map(file::sha256_hex).unwrap_or_default(),
            diff: self.secrets.redact(&diff),
            path: path.display().to_string(),
            status: None,
        })
    }

    pub(crate) async fn commit_reply(
        &self,
        service: &str,
        version: u32,
        rendered_sha256: &str,
        restore: bool,
    ) -> Result<CommitConfigResponse, Status> {
        let (service, path) = self.file_of(service)?;
        let (staged, current) = {
            let path = path.clone();
            blocking(move || Ok((file::staged_hash(&path)?, file::hash_of(&path)?))).await?
        };
        // A commit asked again (its coordinator resumed the job) finds the file in place.
        let done_before =
            !restore && staged.is_none() && current.as_deref() == Some(rendered_sha256);
        if !restore && !done_before && staged.as_deref() != Some(rendered_sha256) {
            return Err(Status::failed_precondition(format!(
                "the file staged for {service} at {} is not the one prepared (staged: {}); prepare it again",
                path.display(),
                staged.as_deref().unwrap_or("none")
            )));
        }
        let sha256 = if done_before {
            current
        } else {
            let path = path.clone();
            blocking(move || {
                if restore {
                    file::restore_previous(&path)?;
                } else {
                    file::install(&path)?;
                }
                file::hash_of(&path)
            })
            .await?
        };
        // What is there now is what this agent wrote: a file put back is version `version`.
        let written = Written {
            version,
            sha256: sha256.clone().unwrap_or_default(),
        };
        self.configs
            .wrote(&service, written)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        tracing::info!(service = %service, version, restore, path = %path.display(), "configuration file written");
        Ok(CommitConfigResponse {
            sha256: sha256.unwrap_or_default(),
            status: None,
        })
    }
}
