//! The agent's settings: flags win over environment (`QSERV_AGENT_…`), environment over the TOML
//! file given with `--config`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use qserv_model::Role;
use qserv_proto::names::validate_name;
use qserv_proto::telemetry::LogFormat;
use qserv_proto::tls::TlsFiles;
use serde::Deserialize;
use sqlx::mysql::MySqlConnectOptions;

use crate::node::secrets::Secrets;
use crate::node::services::{self, ControllerChoice, RawService, ServiceDef, SingleService};

/// Settings as given on the command line, in the environment or in the config file.
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// Node name, as in the instance spec.
    #[arg(long, env = "QSERV_AGENT_NAME")]
    pub name: Option<String>,
    /// Role of the local database: czar, worker or repl.
    #[arg(long, env = "QSERV_AGENT_ROLE")]
    pub role: Option<String>,
    /// gRPC address [default: 127.0.0.1:7080].
    #[arg(long, env = "QSERV_AGENT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Plaintext health and metrics address [default: 0.0.0.0:7081].
    #[arg(long, env = "QSERV_AGENT_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Admin connection to the local database, e.g. mysql://root@127.0.0.1:3306 or
    /// mysql://root@localhost/?socket=/run/mysqld/mysqld.sock.
    #[arg(long, env = "QSERV_AGENT_DB_URL")]
    pub db_url: Option<String>,
    /// File holding the admin password (the password never goes on the command line).
    #[arg(long, env = "QSERV_AGENT_DB_PASSWORD_FILE")]
    pub db_password_file: Option<PathBuf>,
    /// TOML file with service-account passwords and template values.
    #[arg(long, env = "QSERV_AGENT_SECRETS_FILE")]
    pub secrets_file: Option<PathBuf>,
    /// Where the agent keeps its last known mode and epoch [default: /var/lib/qserv-agent].
    #[arg(long, env = "QSERV_AGENT_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Service controller: none, exec or systemd [default: none].
    #[arg(long, env = "QSERV_AGENT_SERVICE_CONTROLLER")]
    pub service_controller: Option<String>,
    /// Command started (through sh -c) in normal mode by the exec controller.
    #[arg(long, env = "QSERV_AGENT_SERVICE_CMD")]
    pub service_cmd: Option<String>,
    /// Unit started in normal mode by the systemd controller.
    #[arg(long, env = "QSERV_AGENT_SERVICE_UNIT")]
    pub service_unit: Option<String>,
    /// How long services get between SIGTERM and SIGKILL [default: 30s].
    #[arg(
        long,
        alias = "service-stop-grace",
        env = "QSERV_AGENT_SERVICE_STOP_TIMEOUT"
    )]
    #[serde(alias = "service-stop-grace")]
    pub service_stop_timeout: Option<String>,
    /// Accept a secrets file readable by group or others.
    #[arg(long, env = "QSERV_AGENT_ALLOW_LOOSE_SECRETS")]
    #[serde(default)]
    pub allow_loose_secrets: bool,
    /// Certificate (PEM) the agent presents; with --tls-key and --tls-ca turns on mutual TLS.
    #[arg(long, env = "QSERV_AGENT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "QSERV_AGENT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// CA (PEM) that signs the coordinator's certificate.
    #[arg(long, env = "QSERV_AGENT_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "QSERV_AGENT_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Allow a non-loopback gRPC address without TLS.
    #[arg(long, env = "QSERV_AGENT_INSECURE")]
    #[serde(default)]
    pub insecure: bool,
    /// The node's services, each with its launch, readiness probe and stop timeout (config
    /// file only: `[[services]]`).
    #[arg(skip)]
    #[serde(default)]
    pub services: Vec<RawService>,
}

impl Settings {
    /// Fills what `self` leaves unset from `lower` (flags and env over the file).
    fn or(self, lower: Settings) -> Settings {
        Settings {
            name: self.name.or(lower.name),
            role: self.role.or(lower.role),
            listen: self.listen.or(lower.listen),
            http_listen: self.http_listen.or(lower.http_listen),
            db_url: self.db_url.or(lower.db_url),
            db_password_file: self.db_password_file.or(lower.db_password_file),
            secrets_file: self.secrets_file.or(lower.secrets_file),
            state_dir: self.state_dir.or(lower.state_dir),
            service_controller: self.service_controller.or(lower.service_controller),
            service_cmd: self.service_cmd.or(lower.service_cmd),
            service_unit: self.service_unit.or(lower.service_unit),
            service_stop_timeout: self.service_stop_timeout.or(lower.service_stop_timeout),
            allow_loose_secrets: self.allow_loose_secrets || lower.allow_loose_secrets,
            tls_cert: self.tls_cert.or(lower.tls_cert),
            tls_key: self.tls_key.or(lower.tls_key),
            tls_ca: self.tls_ca.or(lower.tls_ca),
            log_format: self.log_format.or(lower.log_format),
            insecure: self.insecure || lower.insecure,
            services: if self.services.is_empty() {
                lower.services
            } else {
                self.services
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    ParseFile { path: PathBuf, message: String },
    #[error("{0} is required: pass --{0} or set it in the config file")]
    Missing(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error(
        "refusing to serve gRPC on {0} without TLS: use a loopback address, or pass --insecure on a trusted network"
    )]
    InsecureListen(SocketAddr),
}

/// The validated configuration the agent runs with. Not `Debug`: the connection options hold the
/// admin password.
#[derive(Clone)]
pub struct Config {
    pub name: String,
    pub role: Role,
    pub listen: SocketAddr,
    pub http_listen: SocketAddr,
    pub db: MySqlConnectOptions,
    pub db_display: String,
    pub secrets: Secrets,
    pub state_dir: PathBuf,
    /// The node's services, in the config's order.
    pub services: Vec<ServiceDef>,
    pub log_format: LogFormat,
    pub tls: Option<TlsFiles>,
    pub insecure: bool,
}

pub fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::ParseFile {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

impl Config {
    pub fn resolve(flags: Settings, file: Option<&Path>) -> Result<Config, ConfigError> {
        let from_file = match file {
            Some(path) => read_toml(path)?,
            None => Settings::default(),
        };
        let s = flags.or(from_file);
        let name = s.name.ok_or(ConfigError::Missing("name"))?;
        validate_name("node", &name).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let role = Role::parse(s.role.as_deref().ok_or(ConfigError::Missing("role"))?)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let tls = TlsFiles::from_flags(s.tls_cert, s.tls_key, s.tls_ca)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let listen = s.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 7080)));
        if !listen.ip().is_loopback() && !s.insecure && tls.is_none() {
            return Err(ConfigError::InsecureListen(listen));
        }
        let db_url = s.db_url.ok_or(ConfigError::Missing("db-url"))?;
        let mut db = MySqlConnectOptions::from_str(&db_url).map_err(|e| {
            ConfigError::Invalid(format!(
                "invalid --db-url: {e}; expected mysql://USER@HOST:PORT or mysql://USER@localhost/?socket=PATH"
            ))
        })?;
        // A password in the URL would be on the command line, in `ps` and in unit files.
        if qserv_proto::names::url_password(&db_url).is_some() {
            return Err(ConfigError::Invalid(
                "--db-url holds a password; put it in --db-password-file (mode 0600) or QSERV_AGENT_DB_PASSWORD instead".to_owned(),
            ));
        }
        if let Some(password) = db_password(s.db_password_file.as_deref(), s.allow_loose_secrets)? {
            db = db.password(&password);
        }
        let secrets = match &s.secrets_file {
            Some(path) => Secrets::load(path, s.allow_loose_secrets)
                .map_err(|e| ConfigError::Invalid(e.to_string()))?,
            None => Secrets::default(),
        };
        let stop_grace = match s.service_stop_timeout.as_deref() {
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                ConfigError::Invalid(format!("invalid --service-stop-timeout '{text}': {e}"))
            })?,
            None => Duration::from_secs(30),
        };
        let choice = ControllerChoice::parse(s.service_controller.as_deref().unwrap_or("none"))
            .map_err(|e| ConfigError::Invalid(e.0))?;
        let single = SingleService {
            command: s.service_cmd,
            unit: s.service_unit,
        };
        let services = services::definitions(choice, role, single, s.services, stop_grace)
            .map_err(|e| ConfigError::Invalid(e.0))?;
        let log_format = match s.log_format.as_deref() {
            Some(value) => LogFormat::from_str(value).map_err(ConfigError::Invalid)?,
            None => LogFormat::Text,
        };
        Ok(Config {
            name,
            role,
            listen,
            http_listen: s
                .http_listen
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 7081))),
            db,
            db_display: redact_url(&db_url),
            secrets,
            state_dir: s
                .state_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/qserv-agent")),
            services,
            tls,
            insecure: s.insecure,
            log_format,
        })
    }
}

/// The admin password: from `--db-password-file`, else `QSERV_AGENT_DB_PASSWORD`.
fn db_password(file: Option<&Path>, allow_loose: bool) -> Result<Option<String>, ConfigError> {
    if let Some(path) = file {
        crate::node::secrets::private("--db-password-file", path, allow_loose)
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        return Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()));
    }
    Ok(std::env::var("QSERV_AGENT_DB_PASSWORD").ok())
}

/// The URL without any password it might carry, for logs.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_password_in_url() {
        assert_eq!(
            redact_url("mysql://root:s3cret@db:3306"),
            "mysql://root@db:3306"
        );
        assert_eq!(redact_url("mysql://root@db:3306"), "mysql://root@db:3306");
    }

    #[test]
    fn flags_win_over_file() {
        let flags = Settings {
            name: Some("worker-1".into()),
            ..Settings::default()
        };
        let file = Settings {
            name: Some("ignored".into()),
            role: Some("worker".into()),
            ..Settings::default()
        };
        let merged = flags.or(file);
        assert_eq!(merged.name.as_deref(), Some("worker-1"));
        assert_eq!(merged.role.as_deref(), Some("worker"));
    }

    #[test]
    fn refuses_public_listen_without_insecure() {
        let flags = Settings {
            name: Some("w".into()),
            role: Some("worker".into()),
            listen: Some(SocketAddr::from(([0, 0, 0, 0], 7080))),
            db_url: Some("mysql://root@127.0.0.1:3306".into()),
            ..Settings::default()
        };
        assert!(matches!(
            Config::resolve(flags, None),
            Err(ConfigError::InsecureListen(_))
        ));
    }

    fn worker(db_url: &str, password_file: Option<PathBuf>) -> Settings {
        Settings {
            name: Some("w".into()),
            role: Some("worker".into()),
            db_url: Some(db_url.into()),
            db_password_file: password_file,
            ..Settings::default()
        }
    }

    fn refusal(settings: Settings) -> String {
        match Config::resolve(settings, None) {
            Ok(_) => panic!("accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn refuses_a_password_in_the_db_url_without_echoing_it() {
        let why = refusal(worker("mysql://root:hunter2@127.0.0.1:3306", None));
        assert!(why.contains("--db-url holds a password"), "{why}");
        assert!(!why.contains("hunter2"), "{why}");
    }

    #[test]
    fn refuses_a_password_file_others_may_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("db-password");
        std::fs::write(&path, "hunter2\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let why = refusal(worker("mysql://root@127.0.0.1:3306", Some(path.clone())));
        assert!(
            why.contains("--db-password-file") && why.contains("644"),
            "{why}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Config::resolve(worker("mysql://root@127.0.0.1:3306", Some(path)), None).is_ok());
    }
}
