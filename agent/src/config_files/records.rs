//! Which template version this agent last wrote to each service's config file, and the hash of
//! what it wrote: `STATE_DIR/configs.toml`. A file whose hash differs has drifted (a hand
//! edit). Written atomically, like the mode.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qserv_model::ServiceName;
use serde::{Deserialize, Serialize};

use super::file::{FileError, read, write_whole};

/// What was last written to one service's config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub version: u32,
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path} is damaged ({message}); move it aside and apply the configuration again")]
    Damaged { path: PathBuf, message: String },
}

/// Every service's record, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Records {
    path: PathBuf,
    written: BTreeMap<String, Written>,
}

impl Records {
    pub fn load(state_dir: &Path) -> Result<Records, RecordsError> {
        let path = state_dir.join("configs.toml");
        let written = match read(&path)? {
            None => BTreeMap::new(),
            Some(bytes) => {
                let damaged = |message: String| RecordsError::Damaged {
                    path: path.clone(),
                    message,
                };
                let text = String::from_utf8(bytes).map_err(|e| damaged(e.to_string()))?;
                toml::from_str(&text).map_err(|e| damaged(e.message().to_owned()))?
            }
        };
        Ok(Records { path, written })
    }

    pub fn get(&self, service: &ServiceName) -> Option<&Written> {
        self.written.get(service.as_str())
    }

    /// Records `written` for `service` and saves every record.
    pub fn set(&mut self, service: &ServiceName, written: Written) -> Result<(), RecordsError> {
        let mut next = self.written.clone();
        next.insert(service.to_string(), written);
        let text = toml::to_string(&next).map_err(|e| RecordsError::Damaged {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        write_whole(&self.path, text.as_bytes())?;
        self.written = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_a_reload_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let czar = ServiceName::parse("czar-http").unwrap_or_else(|e| panic!("{e}"));
        let mut records = Records::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(records.get(&czar), None);
        let written = Written {
            version: 3,
            sha256: "ab".to_owned(),
        };
        records
            .set(&czar, written.clone())
            .unwrap_or_else(|e| panic!("{e}"));
        let again = Records::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.get(&czar), Some(&written));

        std::fs::write(dir.path().join("configs.toml"), "[x\n").unwrap_or_else(|e| panic!("{e}"));
        let err = Records::load(dir.path()).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("configs.toml is damaged")));
    }
}
