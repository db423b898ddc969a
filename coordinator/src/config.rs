//! The coordinator's settings: flags win over environment (`QSERV_COORDINATOR_…`), environment
//! over the TOML file given with `--config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use qserv_proto::telemetry::LogFormat;
use qserv_proto::tls::TlsFiles;
use serde::Deserialize;

use crate::store::{MariaTarget, StoreTarget};

#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// gRPC address [default: 127.0.0.1:7070].
    #[arg(long, env = "QSERV_COORDINATOR_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Health and metrics address [default: 127.0.0.1:7071].
    #[arg(long, env = "QSERV_COORDINATOR_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// State directory [default: /var/lib/qserv-coordinator].
    #[arg(long, env = "QSERV_COORDINATOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Store URL [default: sqlite://STATE_DIR/coordinator.db]; `mysql://USER@HOST:PORT/DB` for
    /// MariaDB, repeated (or comma-separated) for the hosts of one Galera cluster.
    #[arg(long, env = "QSERV_COORDINATOR_STORE", value_delimiter = ',')]
    #[serde(default, deserialize_with = "one_or_many")]
    pub store: Vec<String>,
    /// File holding the MariaDB store's password (or set QSERV_COORDINATOR_STORE_PASSWORD).
    #[arg(long, env = "QSERV_COORDINATOR_STORE_PASSWORD_FILE")]
    pub store_password_file: Option<PathBuf>,
    /// smig-layout directory of Qserv schema migrations [default: the bundled set].
    #[arg(long, env = "QSERV_COORDINATOR_MIGRATIONS_DIR")]
    pub migrations_dir: Option<PathBuf>,
    /// Instance spec loaded at start.
    #[arg(long, env = "QSERV_COORDINATOR_SPEC")]
    pub spec: Option<PathBuf>,
    /// Certificate (PEM) presented to clients and agents; with --tls-key and --tls-ca turns on
    /// mutual TLS everywhere.
    #[arg(long, env = "QSERV_COORDINATOR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "QSERV_COORDINATOR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that signs every client and agent certificate.
    #[arg(long, env = "QSERV_COORDINATOR_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "QSERV_COORDINATOR_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Allow a non-loopback gRPC address without TLS.
    #[arg(long, env = "QSERV_COORDINATOR_INSECURE")]
    #[serde(default)]
    pub insecure: bool,
    /// How long finished jobs, their logs and audit entries are kept, e.g. 90d [default: 90d].
    #[arg(long, env = "QSERV_COORDINATOR_RETAIN")]
    pub retain: Option<String>,
    /// This coordinator's name among those sharing the store [default: the host name].
    #[arg(long, env = "QSERV_COORDINATOR_ID")]
    pub id: Option<String>,
    /// The gRPC address other coordinators and the CLI reach this one at [default: from
    /// --listen, with https when TLS is on].
    #[arg(long, env = "QSERV_COORDINATOR_ADVERTISE")]
    pub advertise: Option<String>,
    /// How long the leader lease lasts unless renewed (every third of it) [default: 5s].
    #[arg(long, env = "QSERV_COORDINATOR_LEASE_TTL")]
    pub lease_ttl: Option<String>,
    /// Open status watches, followed jobs and logs one client may hold [default: 16].
    #[arg(long, env = "QSERV_COORDINATOR_MAX_STREAMS_PER_CLIENT")]
    pub max_streams_per_client: Option<usize>,
}

impl Settings {
    fn or(self, lower: Settings) -> Settings {
        Settings {
            listen: self.listen.or(lower.listen),
            http_listen: self.http_listen.or(lower.http_listen),
            state_dir: self.state_dir.or(lower.state_dir),
            store: if self.store.is_empty() {
                lower.store
            } else {
                self.store
            },
            store_password_file: self.store_password_file.or(lower.store_password_file),
            migrations_dir: self.migrations_dir.or(lower.migrations_dir),
            spec: self.spec.or(lower.spec),
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_ca: self.tls_ca.or(lower.tls_ca),
            log_format: self.log_format.or(lower.log_format),
            insecure: self.insecure || lower.insecure,
            retain: self.retain.or(lower.retain),
            max_streams_per_client: self.max_streams_per_client.or(lower.max_streams_per_client),
            id: self.id.or(lower.id),
            advertise: self.advertise.or(lower.advertise),
            lease_ttl: self.lease_ttl.or(lower.lease_ttl),
        }
    }
}

/// How long finished jobs and audit entries are kept by default: a quarter, enough to look back
/// over an observing season's changes.
const DEFAULT_RETAIN: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error(
        "refusing to serve gRPC on {0} without TLS: use a loopback address, or pass --insecure on a trusted network"
    )]
    InsecureListen(SocketAddr),
}

/// The host's name, for a coordinator not given `--id`.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "coordinator".to_owned())
}

/// A `store` key given as one string or a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

fn store_target(
    urls: Vec<String>,
    password_file: Option<&Path>,
    state_dir: &Path,
) -> Result<StoreTarget, ConfigError> {
    let maria = urls.iter().filter(|u| u.starts_with("mysql://")).count();
    if maria == 0 {
        return match urls.as_slice() {
            [] => Ok(StoreTarget::Sqlite(format!(
                "sqlite://{}",
                state_dir.join("coordinator.db").display()
            ))),
            [one] => Ok(StoreTarget::Sqlite(one.clone())),
            _ => Err(ConfigError::Invalid(
                "--store may be repeated only for the mysql:// hosts of one Galera cluster"
                    .to_owned(),
            )),
        };
    }
    if maria != urls.len() {
        return Err(ConfigError::Invalid(
            "--store mixes mysql:// hosts with another kind of store; give only the hosts of one Galera cluster".to_owned(),
        ));
    }
    if urls
        .iter()
        .any(|u| qserv_proto::names::url_password(u).is_some())
    {
        return Err(ConfigError::Invalid(
            "a --store URL holds a password; put it in --store-password-file or QSERV_COORDINATOR_STORE_PASSWORD instead".to_owned(),
        ));
    }
    let password = match password_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    ConfigError::Invalid(format!(
                        "cannot read --store-password-file {}: {e}",
                        path.display()
                    ))
                })?
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
        ),
        None => std::env::var("QSERV_COORDINATOR_STORE_PASSWORD").ok(),
    };
    Ok(StoreTarget::Maria(MariaTarget { urls, password }))
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub state_dir: PathBuf,
    pub store: StoreTarget,
    /// The store lives in the state directory, which is then created if missing.
    pub store_in_state_dir: bool,
    pub migrations_dir: Option<PathBuf>,
    pub spec: Option<PathBuf>,
    pub log_format: LogFormat,
    pub insecure: bool,
    pub tls: Option<TlsFiles>,
    /// Finished jobs and audit entries older than this are pruned.
    pub retain: std::time::Duration,
    pub max_streams_per_client: usize,
    pub me: crate::runtime::term::Identity,
}

impl Config {
    pub fn resolve(flags: Settings, file: Option<&Path>) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                        path: path.to_owned(),
                        source,
                    })?;
                toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?
            }
            None => Settings::default(),
        };
        let s = flags.or(from_file);
        let tls = TlsFiles::from_flags(s.tls_cert, s.tls_key, s.tls_ca)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let retain = match s.retain.as_deref() {
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| ConfigError::Invalid(format!("invalid --retain '{text}': {e}")))?,
            None => DEFAULT_RETAIN,
        };
        let listen = s.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7070)));
        if !listen.ip().is_loopback() && !s.insecure && tls.is_none() {
            return Err(ConfigError::InsecureListen(listen));
        }
        let state_dir = s
            .state_dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/qserv-coordinator"));
        let store_in_state_dir = s.store.is_empty();
        let store = store_target(s.store, s.store_password_file.as_deref(), &state_dir)?;
        let ttl = match s.lease_ttl.as_deref() {
            Some(text) => humantime::parse_duration(text)
                .map_err(|e| ConfigError::Invalid(format!("invalid --lease-ttl '{text}': {e}")))?,
            None => std::time::Duration::from_secs(5),
        };
        if ttl < std::time::Duration::from_millis(300) {
            return Err(ConfigError::Invalid(
                "--lease-ttl must be at least 300ms: a leader renews every third of it".to_owned(),
            ));
        }
        let id = s.id.unwrap_or_else(host_name);
        if id.is_empty() || id.chars().any(char::is_control) {
            return Err(ConfigError::Invalid(
                "--id must be a non-empty name without control characters".to_owned(),
            ));
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        let me = crate::runtime::term::Identity {
            id,
            address: s
                .advertise
                .unwrap_or_else(|| format!("{scheme}://{listen}")),
            ttl,
            incarnation: qserv_proto::incarnation(),
        };
        let log_format = match s.log_format.as_deref() {
            Some(value) => LogFormat::from_str(value).map_err(ConfigError::Invalid)?,
            None => LogFormat::Text,
        };
        Ok(Config {
            listen,
            http_listen: s
                .http_listen
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7071))),
            state_dir,
            store,
            store_in_state_dir,
            migrations_dir: s.migrations_dir,
            spec: s.spec,
            log_format,
            insecure: s.insecure,
            tls,
            retain,
            max_streams_per_client: s.max_streams_per_client.unwrap_or(16).max(1),
            me,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(urls: &[&str]) -> Result<StoreTarget, ConfigError> {
        store_target(
            urls.iter().map(|u| (*u).to_owned()).collect(),
            None,
            Path::new("/state"),
        )
    }

    #[test]
    fn the_store_defaults_to_sqlite_in_the_state_directory() {
        assert!(
            matches!(target(&[]), Ok(StoreTarget::Sqlite(url)) if url == "sqlite:///state/coordinator.db")
        );
    }

    #[test]
    fn galera_hosts_are_all_mysql_and_carry_no_password() {
        let hosts = ["mysql://c@db-1:3306/qserv", "mysql://c@db-2:3306/qserv"];
        assert!(matches!(target(&hosts), Ok(StoreTarget::Maria(t)) if t.urls.len() == 2));
        let mixed = target(&["mysql://c@db-1/qserv", "sqlite:///x.db"]);
        assert!(matches!(mixed, Err(ConfigError::Invalid(m)) if m.contains("mixes")));
        let two_sqlite = target(&["sqlite:///a.db", "sqlite:///b.db"]);
        assert!(matches!(two_sqlite, Err(ConfigError::Invalid(_))));
        let secret = target(&["mysql://c:hunter2@db-1/qserv"]);
        assert!(
            matches!(secret, Err(ConfigError::Invalid(m)) if m.contains("password") && !m.contains("hunter2"))
        );
    }

    #[test]
    fn a_password_is_found_only_in_the_user_part() {
        assert_eq!(
            qserv_proto::names::url_password("mysql://c:p@ss@db:3306/q"),
            Some("p@ss")
        );
        assert_eq!(
            qserv_proto::names::url_password("mysql://c@db:3306/q?x=a:b@c"),
            None
        );
        assert_eq!(qserv_proto::names::url_password("mysql://db:3306/q"), None);
    }
}
