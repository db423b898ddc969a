//! The CLI's configuration file (DESIGN §14): the instances (data releases) an operator works
//! with, each with its coordinators and TLS files, so that `--instance dr2` names one and
//! `qserv instances` shows them all.
//!
//! ```toml
//! [instances.dr1]
//! coordinator = ["https://ctl-1:7070", "https://ctl-2:7070"]
//! tls-cert = "operator.pem"      # relative paths are relative to this file
//! tls-key = "operator.key"
//! tls-ca = "ca.pem"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use qserv_proto::names::validate_name;
use serde::{Deserialize, Serialize};

/// The instance name `--instance` takes for every configured instance at once.
pub const ALL: &str = "all";

/// The largest configuration file read: a few hundred instances fit in a fraction of it.
const MAX_BYTES: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration {path} is not valid: {reason}; fix it or point --config elsewhere")]
    Invalid { path: PathBuf, reason: String },
    #[error("instance '{name}' is already in {path}; edit or remove its table there first")]
    Taken { path: PathBuf, name: String },
    #[error("cannot write the configuration {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One configured instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEntry {
    /// The addresses of its coordinators, tried in order.
    pub coordinators: Vec<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
}

impl InstanceEntry {
    /// The addresses as `--coordinator` takes them.
    pub fn address_list(&self) -> String {
        self.coordinators.join(",")
    }
}

/// The instances of a configuration file, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub instances: BTreeMap<String, InstanceEntry>,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    instances: BTreeMap<String, RawInstance>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInstance {
    coordinator: Addresses,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_cert: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_key: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_ca: Option<PathBuf>,
}

/// One address, or a list of the coordinators sharing a store.
#[derive(Debug, Deserialize, Serialize)]
#[serde(untagged)]
enum Addresses {
    One(String),
    Many(Vec<String>),
}

/// Why an address cannot be one of an instance's coordinators.
fn address_problem(address: &str) -> Option<&'static str> {
    if address.is_empty() {
        Some("an empty coordinator address")
    } else if address.contains(',') || address.chars().any(char::is_whitespace) {
        Some("a coordinator address with a comma or a space; list several as an array")
    } else {
        None
    }
}

impl Config {
    /// Parses the text of a configuration file; relative TLS paths are taken relative to
    /// `base`, the file's directory.
    pub fn parse(text: &str, base: &Path) -> Result<Config, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        let mut instances = BTreeMap::new();
        for (name, raw) in raw.instances {
            let entry =
                validate(&name, raw, base).map_err(|why| format!("[instances.{name}]: {why}"))?;
            instances.insert(name, entry);
        }
        Ok(Config { instances })
    }

    /// Reads the file at `path`; a missing file is an empty configuration when `optional`.
    pub fn load(path: &Path, optional: bool) -> Result<Config, ConfigError> {
        let text = read(path, optional)?;
        parse_at(path, &text)
    }

    /// The configured instance whose coordinators include one of `addresses` (a comma list).
    pub fn instance_at(&self, addresses: &str) -> Option<&str> {
        let wanted: Vec<&str> = addresses.split(',').map(str::trim).collect();
        self.instances
            .iter()
            .find(|(_, entry)| {
                entry
                    .coordinators
                    .iter()
                    .any(|c| wanted.contains(&c.as_str()))
            })
            .map(|(name, _)| name.as_str())
    }
}

/// The text of the file at `path`; empty when it is missing and `optional`.
fn read(path: &Path, optional: bool) -> Result<String, ConfigError> {
    let read_err = |source| ConfigError::Read {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if optional && err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(String::new());
        }
        Err(err) => return Err(read_err(err)),
    };
    if meta.len() > MAX_BYTES {
        return Err(ConfigError::Invalid {
            path: path.to_owned(),
            reason: format!(
                "it is {} bytes, more than a configuration can be",
                meta.len()
            ),
        });
    }
    std::fs::read_to_string(path).map_err(read_err)
}

/// `text` parsed as the file at `path` (relative TLS paths taken from its directory).
fn parse_at(path: &Path, text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, path.parent().unwrap_or(Path::new("."))).map_err(|reason| {
        ConfigError::Invalid {
            path: path.to_owned(),
            reason,
        }
    })
}

fn validate(name: &str, raw: RawInstance, base: &Path) -> Result<InstanceEntry, String> {
    validate_name("instance", name).map_err(|e| e.to_string())?;
    if name == ALL {
        return Err(format!(
            "'{ALL}' is not an instance name: --instance {ALL} means every instance"
        ));
    }
    let coordinators = match raw.coordinator {
        Addresses::One(one) => vec![one],
        Addresses::Many(many) => many,
    };
    if coordinators.is_empty() {
        return Err("coordinator lists no address".to_owned());
    }
    if let Some(problem) = coordinators.iter().find_map(|a| address_problem(a)) {
        return Err(format!("coordinator holds {problem}"));
    }
    if raw.tls_cert.is_some() != raw.tls_key.is_some() {
        return Err("tls-cert and tls-key go together: give both or neither".to_owned());
    }
    let resolve =
        |path: Option<PathBuf>| path.map(|p| if p.is_relative() { base.join(p) } else { p });
    Ok(InstanceEntry {
        coordinators,
        tls_cert: resolve(raw.tls_cert),
        tls_key: resolve(raw.tls_key),
        tls_ca: resolve(raw.tls_ca),
    })
}

/// Where the configuration lives when `--config` is not given: `$XDG_CONFIG_HOME/qserv/` or
/// `~/.config/qserv/`.
pub fn default_path(xdg_config_home: Option<&str>, home: Option<&str>) -> Option<PathBuf> {
    let base = match (xdg_config_home.filter(|x| Path::new(x).is_absolute()), home) {
        (Some(xdg), _) => PathBuf::from(xdg),
        (None, Some(home)) if !home.is_empty() => Path::new(home).join(".config"),
        _ => return None,
    };
    Some(base.join("qserv").join("config.toml"))
}

/// The table `qserv instances add` appends for `name`: the file is appended to, never rewritten,
/// so that an operator's comments and layout stay.
pub fn entry_text(name: &str, entry: &InstanceEntry) -> Result<String, String> {
    let addresses = if entry.coordinators.len() == 1 {
        Addresses::One(entry.coordinators[0].clone())
    } else {
        Addresses::Many(entry.coordinators.clone())
    };
    let raw = RawConfig {
        instances: BTreeMap::from([(
            name.to_owned(),
            RawInstance {
                coordinator: addresses,
                tls_cert: entry.tls_cert.clone(),
                tls_key: entry.tls_key.clone(),
                tls_ca: entry.tls_ca.clone(),
            },
        )]),
    };
    toml::to_string(&raw).map_err(|e| e.to_string())
}

/// Adds `name` to the file at `path` (created with its directory when missing); refused when
/// the name is taken or the result would not parse.
pub fn add(path: &Path, name: &str, entry: &InstanceEntry) -> Result<(), ConfigError> {
    let mut text = read(path, true)?;
    if parse_at(path, &text)?.instances.contains_key(name) {
        return Err(ConfigError::Taken {
            path: path.to_owned(),
            name: name.to_owned(),
        });
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    if !text.is_empty() {
        text.push('\n');
    }
    let added = entry_text(name, entry).map_err(|reason| ConfigError::Invalid {
        path: path.to_owned(),
        reason,
    })?;
    text.push_str(&added);
    // What is written must read back: an entry the parser would refuse is not written.
    parse_at(path, &text)?;
    write_atomically(path, &text)
}

/// Writes through a temporary file in the same directory and a rename: a crash leaves the old
/// file or the new one, never half of one.
fn write_atomically(path: &Path, text: &str) -> Result<(), ConfigError> {
    let write_err = |source| ConfigError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(write_err)?;
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(write_err)?;
    file.as_file().sync_all().map_err(write_err)?;
    file.persist(path).map_err(|e| write_err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests;
