//! The last mode and epoch the agent learned from the coordinator, the instance it is bound to
//! and the highest epoch and fencing token any command carried, kept on disk so a restarted agent without a
//! coordinator keeps doing what it last did and still refuses stale commands.

use std::io::Write;
use std::path::{Path, PathBuf};

use qserv_proto::names::{mode_name, parse_mode};
use qserv_proto::v1::Mode;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeState {
    pub mode: Mode,
    /// The epoch the mode was given under.
    pub epoch: u64,
    /// The instance the first mode bound this agent to; empty when unbound.
    pub instance: String,
    /// The highest epoch any command carried (never below `epoch`).
    pub seen_epoch: u64,
    /// The highest fencing token of a coordinator's lease any command carried.
    pub seen_token: u64,
}

impl Default for ModeState {
    fn default() -> Self {
        ModeState {
            mode: Mode::Unspecified,
            epoch: 0,
            instance: String::new(),
            seen_epoch: 0,
            seen_token: 0,
        }
    }
}

/// Files written before the binding and the seen epoch existed read as unbound, with the mode's
/// epoch as the highest seen.
#[derive(Serialize, Deserialize)]
struct OnDisk {
    mode: String,
    epoch: u64,
    #[serde(default)]
    instance: String,
    #[serde(default)]
    seen_epoch: u64,
    #[serde(default)]
    seen_token: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot use state directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("state file {path} is damaged ({message}); remove it to start from 'unknown'")]
    Damaged { path: PathBuf, message: String },
    #[error("cannot write the state to {path}: {message}; nothing was changed")]
    Encode { path: PathBuf, message: String },
    #[error("saving the state was interrupted: {0}")]
    Interrupted(String),
}

#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_owned(),
            source,
        })?;
        Ok(StateDir {
            dir: dir.to_owned(),
        })
    }

    fn file(&self) -> PathBuf {
        self.dir.join("mode.toml")
    }

    pub fn load(&self) -> Result<ModeState, StateError> {
        let path = self.file();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ModeState::default()),
            Err(source) => return Err(StateError::Io { path, source }),
        };
        let damaged = |message: String| StateError::Damaged {
            path: path.clone(),
            message,
        };
        let on_disk: OnDisk = toml::from_str(&text).map_err(|e| damaged(e.message().to_owned()))?;
        let mode = parse_mode(&on_disk.mode).map_err(|e| damaged(e.to_string()))?;
        Ok(ModeState {
            mode,
            epoch: on_disk.epoch,
            instance: on_disk.instance,
            seen_epoch: on_disk.seen_epoch.max(on_disk.epoch),
            seen_token: on_disk.seen_token,
        })
    }

    /// Writes atomically: a crash leaves either the old or the new state, never half of one.
    pub fn save(&self, state: &ModeState) -> Result<(), StateError> {
        let path = self.file();
        let tmp = self.dir.join("mode.toml.tmp");
        let io = |source| StateError::Io {
            path: path.clone(),
            source,
        };
        let text = toml::to_string(&OnDisk {
            mode: mode_name(state.mode).to_owned(),
            epoch: state.epoch,
            instance: state.instance.clone(),
            seen_epoch: state.seen_epoch,
            seen_token: state.seen_token,
        })
        .map_err(|e| StateError::Encode {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        // The rename is durable only once the directory is: a state that a crash could undo
        // is not yet held.
        let dir = std::fs::File::open(&self.dir).map_err(io)?;
        dir.sync_all().map_err(io)?;
        Ok(())
    }

    /// [`StateDir::save`] off the async threads: file writes and fsyncs block.
    pub async fn save_blocking(&self, state: &ModeState) -> Result<(), StateError> {
        let dir = self.clone();
        let state = state.clone();
        tokio::task::spawn_blocking(move || dir.save(&state))
            .await
            .map_err(|e| StateError::Interrupted(e.to_string()))?
    }
}
