//! Each service's configuration file as this agent last wrote it (DESIGN §17): the template
//! version, and whether the file on disk is still what was written. Both are published in the
//! services' states, checked every [`DRIFT_CHECK`] and after every write, so that a hand edit
//! shows in `qserv status` within seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use qserv_model::{AgentState, ServiceName};
use tokio::sync::{Mutex, watch};

use super::probe::publish;
use crate::config_files::file::hash_of;
use crate::config_files::records::{Records, RecordsError, Written};
use crate::node::services::ServiceDef;

/// How often the files are hashed again.
pub const DRIFT_CHECK: Duration = Duration::from_secs(2);

/// Why a service's file cannot be handled here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoFile {
    #[error("this node runs no service '{0}': its agent's config declares {1}")]
    Unknown(ServiceName, String),
    #[error(
        "service '{0}' has no configuration file here: add config = \"/path/to/file\" to its [[services]] entry in the agent's config"
    )]
    NoPath(ServiceName),
}

/// The version and drift a service shows, from its record and the hash of its file now
/// (`None`: no file). A file that was written and is gone has drifted too.
pub fn shown(written: Option<&Written>, on_disk: Option<&str>) -> (Option<u32>, bool) {
    match written {
        None => (None, false),
        Some(w) => (Some(w.version), on_disk != Some(w.sha256.as_str())),
    }
}

pub struct ConfigKeeper {
    /// Every service the agent defines, with its file if it has one.
    files: Vec<(ServiceName, Option<PathBuf>)>,
    records: Mutex<Records>,
    status: watch::Sender<AgentState>,
}

impl ConfigKeeper {
    pub fn new(
        defs: &[ServiceDef],
        records: Records,
        status: watch::Sender<AgentState>,
    ) -> ConfigKeeper {
        ConfigKeeper {
            files: defs
                .iter()
                .map(|d| (d.name.clone(), d.config.clone()))
                .collect(),
            records: Mutex::new(records),
            status,
        }
    }

    /// Where `service`'s configuration file is.
    pub fn path_of(&self, service: &ServiceName) -> Result<&Path, NoFile> {
        match self.files.iter().find(|(name, _)| name == service) {
            Some((_, Some(path))) => Ok(path),
            Some((_, None)) => Err(NoFile::NoPath(service.clone())),
            None => {
                let names: Vec<&str> = self.files.iter().map(|(n, _)| n.as_str()).collect();
                let declared = if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                };
                Err(NoFile::Unknown(service.clone(), declared))
            }
        }
    }

    /// Records what was just written to `service`'s file, then publishes every file's state.
    pub async fn wrote(&self, service: &ServiceName, written: Written) -> Result<(), RecordsError> {
        {
            let mut records = self.records.lock().await;
            let mut next = records.clone();
            let service = service.clone();
            let saved =
                tokio::task::spawn_blocking(move || next.set(&service, written).map(|()| next))
                    .await
                    .map_err(|e| RecordsError::Damaged {
                        path: PathBuf::from("configs.toml"),
                        message: format!("saving was interrupted: {e}"),
                    })??;
            *records = saved;
        }
        self.refresh().await;
        Ok(())
    }

    /// Hashes every file again and publishes what each service shows.
    pub async fn refresh(&self) {
        let records = self.records.lock().await.clone();
        let files = self.files.clone();
        let shown_now = tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .filter_map(|(name, path)| {
                    let path = path?;
                    // A file that cannot be read is not what was written.
                    let on_disk = hash_of(&path).ok().flatten();
                    let (version, drift) = shown(records.get(&name), on_disk.as_deref());
                    Some((name, version, drift))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        publish(&self.status, false, |s| {
            let mut changed = false;
            for (name, version, drift) in &shown_now {
                if let Some(slot) = s.service_states.iter_mut().find(|x| &x.name == name)
                    && (slot.config_version != *version || slot.config_drift != *drift)
                {
                    slot.config_version = *version;
                    slot.config_drift = *drift;
                    changed = true;
                }
            }
            changed
        });
    }

    /// Checks the files for the agent's whole life.
    pub async fn run(self: std::sync::Arc<Self>) {
        loop {
            self.refresh().await;
            tokio::time::sleep(DRIFT_CHECK).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_what_was_written_has_drifted() {
        let written = Written {
            version: 2,
            sha256: "ab".to_owned(),
        };
        assert_eq!(shown(None, Some("cd")), (None, false), "never written here");
        assert_eq!(shown(Some(&written), Some("ab")), (Some(2), false));
        assert_eq!(shown(Some(&written), Some("cd")), (Some(2), true), "edited");
        assert_eq!(shown(Some(&written), None), (Some(2), true), "removed");
    }
}
