//! The agent's secrets file: service-account passwords and template values. It is read on the
//! agent only; nothing from it is sent over the wire or written to a log.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use qserv_model::Role;

/// The largest secrets file accepted; real ones are a few hundred bytes.
const MAX_SECRETS_BYTES: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error("cannot read secrets file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{what} {path} is readable by group or others (mode {mode:o}); run 'chmod 600 {path}' or pass --allow-loose-secrets"
    )]
    Loose {
        what: &'static str,
        path: PathBuf,
        mode: u32,
    },
    #[error(
        "secrets file {path} is larger than {MAX_SECRETS_BYTES} bytes; check that it is the right file"
    )]
    TooLarge { path: PathBuf },
    #[error("secrets file {path} is not valid TOML: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{what} is missing: add '{key} = \"…\"' to the secrets file (--secrets-file)")]
    Missing {
        what: &'static str,
        key: &'static str,
    },
    #[error(
        "account name '{0}' in the secrets file is not valid: use 1 to 32 letters, digits, '_', '.' or '-'"
    )]
    BadAccount(String),
}

/// The shortest run of a secret's characters that must never appear in an output.
const FRAGMENT_CHARS: usize = 8;

/// Keys whose values name things rather than authenticate: account names, the worker's name.
fn is_identifier_key(key: &str) -> bool {
    key == "worker_name" || key == "user" || key.ends_with("_user") || key.ends_with("_qserv")
}

/// The metadata of the file at `path` that holds `what`, refused when group or others may read
/// it (unless `allow_loose`): a password in a world-readable file is no secret.
pub fn private(
    what: &'static str,
    path: &Path,
    allow_loose: bool,
) -> Result<std::fs::Metadata, SecretsError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 && !allow_loose {
        return Err(SecretsError::Loose {
            what,
            path: path.to_owned(),
            mode,
        });
    }
    Ok(meta)
}

/// A service account: the name and the password it logs in with.
#[derive(Clone)]
pub struct Account {
    pub user: String,
    pub password: String,
    /// The database its grants cover.
    pub database: &'static str,
}

/// Values from the secrets file. Not `Debug`: it holds passwords.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, toml::Value>,
}

impl Secrets {
    pub fn load(path: &Path, allow_loose: bool) -> Result<Secrets, SecretsError> {
        let read_err = |source| SecretsError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = private("secrets file", path, allow_loose)?;
        if meta.len() > MAX_SECRETS_BYTES {
            return Err(SecretsError::TooLarge {
                path: path.to_owned(),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        // The parser's message may quote the offending line, which may hold a password.
        let values = toml::from_str(&text).map_err(|e: toml::de::Error| SecretsError::Parse {
            path: path.to_owned(),
            message: e.span().map_or_else(
                || "syntax error".to_owned(),
                |s| {
                    format!(
                        "syntax error at line {}",
                        text[..s.start].matches('\n').count() + 1
                    )
                },
            ),
        })?;
        Ok(Secrets { values })
    }

    /// The values templates are rendered with.
    pub fn template_context(&self) -> &BTreeMap<String, toml::Value> {
        &self.values
    }

    fn string(&self, key: &str) -> Option<String> {
        match self.values.get(key)? {
            toml::Value::String(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }

    /// The values that are secret: all but account names and the worker's name, numbers and
    /// booleans included (a template renders them as text too).
    fn secret_values(&self) -> impl Iterator<Item = String> + '_ {
        self.values
            .iter()
            .filter(|(key, _)| !is_identifier_key(key))
            .map(|(_, value)| match value {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
    }

    /// `text` with every secret value, and every run of 8 or more characters of one, blanked
    /// out. A last line of defence: errors of rendered statements carry no server text at all.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in self.secret_values() {
            if secret.chars().count() >= 4 {
                out = out.replace(secret.as_str(), "[redacted]");
            }
            let chars: Vec<char> = secret.chars().collect();
            for window in chars.windows(FRAGMENT_CHARS) {
                let fragment: String = window.iter().collect();
                if out.contains(&fragment) {
                    out = out.replace(&fragment, "[redacted]");
                }
            }
        }
        out
    }

    /// The service account of this role: `qsmaster` (czar, worker) or the replication account.
    pub fn account(&self, role: Role) -> Result<Account, SecretsError> {
        let (user_key, default_user, password_key, database) = match role {
            Role::Repl => ("repl_user", "qsreplica", "repl_password", "qservReplica"),
            Role::Worker => (
                "mysqld_user_qserv",
                "qsmaster",
                "mysqld_user_qserv_password",
                "qservw_worker",
            ),
            Role::Czar => (
                "mysqld_user_qserv",
                "qsmaster",
                "mysqld_user_qserv_password",
                "qservMeta",
            ),
        };
        let user = self
            .string(user_key)
            .unwrap_or_else(|| default_user.to_owned());
        let valid = (1..=32).contains(&user.len())
            && user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !valid {
            return Err(SecretsError::BadAccount(user));
        }
        let password = self.string(password_key).ok_or(SecretsError::Missing {
            what: "the service account's password",
            key: password_key,
        })?;
        Ok(Account {
            user,
            password,
            database,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_fragments_and_non_string_values() {
        let secrets = Secrets {
            values: toml::from_str(
                "p = \"correct-horse-battery\"\nn = 987654321\nrepl_user = \"qsreplica\"\n",
            )
            .unwrap_or_default(),
        };
        let out = secrets.redact("near 'horse-batt' ... 987654321 as qsreplica");
        assert!(!out.contains("horse-ba"), "{out}");
        assert!(!out.contains("987654321"), "{out}");
        assert!(out.contains("qsreplica"), "names are not secrets: {out}");
    }

    #[test]
    fn redacts_every_secret_value() {
        let secrets = Secrets {
            values: toml::from_str("a = \"hunter22\"\nb = \"xy\"\nn = 5\n").unwrap_or_default(),
        };
        assert_eq!(
            secrets.redact("near 'IDENTIFIED BY 'hunter22'' at line 1 (xy)"),
            "near 'IDENTIFIED BY '[redacted]'' at line 1 (xy)"
        );
    }
}
