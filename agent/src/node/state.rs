//! The last mode and epoch the agent learned from the coordinator, the instance it is bound to
//! and the highest epoch and fencing token any command carried, kept on disk so a restarted agent without a
//! coordinator keeps doing what it last did and still refuses stale commands.

use std::io::Write;
use std::path::{Path, PathBuf};

use qserv_model::{AgentState, Epoch, FencingToken, Mode, Release, ServiceName};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModeState {
    /// `None` before any coordinator gave one.
    pub mode: Option<Mode>,
    /// The epoch the mode was given under.
    pub epoch: Option<Epoch>,
    /// The instance the first mode bound this agent to; empty when unbound.
    pub instance: String,
    /// The highest epoch any command carried (never below `epoch`).
    pub seen_epoch: Option<Epoch>,
    /// The highest fencing token of a coordinator's lease any command carried.
    pub seen_token: Option<FencingToken>,
    /// Which services may run in `normal` (`up` releases them wave by wave).
    pub release: Release,
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
    /// The released services; absent when all are (and in files of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    released: Option<Vec<String>>,
}

/// Shows the held state in the published one; true when that changed it.
pub fn show(held: &ModeState, published: &mut AgentState) -> bool {
    let shown = ModeState {
        mode: published.mode,
        epoch: published.epoch,
        instance: std::mem::take(&mut published.instance),
        seen_epoch: published.seen_epoch,
        seen_token: published.seen_token,
        release: std::mem::take(&mut published.released),
    };
    let changed = shown != *held;
    published.mode = held.mode;
    published.epoch = held.epoch;
    published.instance.clone_from(&held.instance);
    published.seen_epoch = held.seen_epoch;
    published.seen_token = held.seen_token;
    published.released.clone_from(&held.release);
    changed
}

/// The file keeps the counters as the wire does: 0 is none.
impl From<&ModeState> for OnDisk {
    fn from(state: &ModeState) -> OnDisk {
        OnDisk {
            mode: Mode::name_or_unknown(state.mode).to_owned(),
            epoch: Epoch::to_wire(state.epoch),
            instance: state.instance.clone(),
            seen_epoch: Epoch::to_wire(state.seen_epoch),
            seen_token: FencingToken::to_wire(state.seen_token),
            released: match &state.release {
                Release::All => None,
                Release::Only(names) => Some(names.iter().map(ToString::to_string).collect()),
            },
        }
    }
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
        let mode = match on_disk.mode.as_str() {
            word if word == Mode::name_or_unknown(None) => None,
            word => Some(Mode::parse(word).map_err(|e| damaged(e.to_string()))?),
        };
        Ok(ModeState {
            mode,
            epoch: Epoch::from_wire(on_disk.epoch),
            instance: on_disk.instance,
            seen_epoch: Epoch::from_wire(on_disk.seen_epoch.max(on_disk.epoch)),
            seen_token: FencingToken::from_wire(on_disk.seen_token),
            release: match on_disk.released {
                None => Release::All,
                Some(names) => Release::Only(
                    names
                        .iter()
                        .map(|n| ServiceName::parse(n).map_err(|e| damaged(e.to_string())))
                        .collect::<Result<_, _>>()?,
                ),
            },
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
        let text = toml::to_string(&OnDisk::from(state)).map_err(|e| StateError::Encode {
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

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn a_state_survives_a_save_and_none_is_kept_as_none() -> Outcome {
        let tmp = tempfile::tempdir()?;
        let dir = StateDir::open(tmp.path())?;
        assert_eq!(dir.load()?, ModeState::default(), "no file is no state");
        let held = ModeState {
            mode: Some(Mode::Maintenance),
            epoch: Epoch::from_wire(3),
            instance: "dr1·α".to_owned(),
            seen_epoch: Epoch::from_wire(5),
            seen_token: FencingToken::from_wire(2),
            release: Release::Only(
                ["proxy", "czar-http"]
                    .iter()
                    .filter_map(|n| ServiceName::parse(n).ok())
                    .collect(),
            ),
        };
        dir.save(&held)?;
        assert_eq!(dir.load()?, held);
        let all = ModeState {
            release: Release::All,
            ..held.clone()
        };
        dir.save(&all)?;
        assert_eq!(dir.load()?, all);
        dir.save(&ModeState::default())?;
        assert_eq!(dir.load()?, ModeState::default());
        Ok(())
    }

    #[test]
    fn showing_a_state_says_whether_it_changed_the_published_one() {
        let held = ModeState {
            mode: Some(Mode::Normal),
            epoch: Epoch::from_wire(2),
            instance: "dr1".to_owned(),
            seen_epoch: Epoch::from_wire(2),
            seen_token: FencingToken::from_wire(1),
            release: Release::none(),
        };
        let mut published = AgentState::default();
        assert!(show(&held, &mut published));
        assert_eq!(
            (
                published.mode,
                published.instance.as_str(),
                published.seen_token
            ),
            (held.mode, "dr1", held.seen_token)
        );
        assert!(
            !show(&held, &mut published),
            "the same state again changes nothing"
        );
        let unbound = ModeState {
            instance: String::new(),
            ..held.clone()
        };
        assert!(show(&unbound, &mut published));
        assert_eq!(published.instance, "");
    }

    #[test]
    fn an_older_file_reads_its_epoch_as_seen_and_a_bad_mode_as_damage() -> Outcome {
        let tmp = tempfile::tempdir()?;
        let dir = StateDir::open(tmp.path())?;
        let file = tmp.path().join("mode.toml");
        std::fs::write(&file, "mode = \"normal\"\nepoch = 4\n")?;
        let held = dir.load()?;
        assert_eq!(held.mode, Some(Mode::Normal));
        assert_eq!(held.seen_epoch, Epoch::from_wire(4));
        assert_eq!(held.instance, "");
        assert_eq!(held.release, Release::All);
        std::fs::write(
            &file,
            "mode = \"normal\"\nepoch = 4\nreleased = [\"a b\"]\n",
        )?;
        let err = dir.load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("damaged") && err.contains("'a b'"), "{err}");
        std::fs::write(&file, "mode = \"nomal\"\nepoch = 4\n")?;
        let err = dir.load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("damaged") && err.contains("nomal"), "{err}");
        Ok(())
    }
}
