//! Real MariaDB servers for tests: a data directory copied from a template made once by
//! `mariadb-install-db`, a free port, a short socket path, killed on drop.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::free_port;
use crate::process::ChildGuard;

/// Server options that keep a test server small and quick to start.
const SERVER_OPTIONS: &[&str] = &[
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--performance-schema=OFF",
    "--innodb-buffer-pool-size=16M",
    "--innodb-log-file-size=4M",
    "--innodb-data-file-path=ibdata1:4M:autoextend",
    "--max-connections=200",
    "--skip-log-bin",
];

fn find_program(names: &[&str], extra_dirs: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(extra_dirs.iter().map(PathBuf::from));
    let dirs: Vec<PathBuf> = dirs.collect();
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |d| d.join(name)))
        .find(|p| p.is_file())
}

/// `mariadbd`, or why it cannot be found.
pub fn mariadbd() -> Result<PathBuf, String> {
    find_program(
        &["mariadbd", "mysqld"],
        &["/usr/sbin", "/usr/libexec", "/usr/local/mysql/bin"],
    )
    .ok_or_else(|| {
        "mariadbd not found: install it with 'apt-get install -y mariadb-server'".to_owned()
    })
}

fn install_db() -> PathBuf {
    find_program(
        &["mariadb-install-db", "mysql_install_db"],
        &["/usr/bin", "/usr/scripts"],
    )
    .unwrap_or_else(|| {
        panic!("mariadb-install-db not found: install it with 'apt-get install -y mariadb-server'")
    })
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// The template data directory, made once per machine and server version and shared by every
/// test process (`mariadb-install-db` is the slow part of starting a server).
fn template() -> &'static PathBuf {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let server = mariadbd().unwrap_or_else(|e| panic!("{e}"));
        let version = Command::new(&server)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let tag: String = version
            .split_whitespace()
            .nth(2)
            .unwrap_or("unknown")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
            .collect();
        let base = std::env::temp_dir().join("qserv-test-templates");
        let dir = base.join(format!("mariadb-{tag}"));
        if dir.join("mysql").is_dir() {
            return dir;
        }
        let _ = std::fs::create_dir_all(&base);
        // Built aside and renamed into place, so a concurrent test process never sees half of it.
        let scratch = tempfile::Builder::new()
            .prefix("building-")
            .tempdir_in(&base)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", base.display()));
        let data = scratch.path().join("data");
        // A private temporary directory: bootstraps running side by side in a shared /tmp
        // have lost each other's temporary tables.
        let tmp = scratch.path().join("tmp");
        std::fs::create_dir_all(&tmp)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
        let mut command = Command::new(install_db());
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .args([
                "--innodb-log-file-size=4M",
                "--innodb-data-file-path=ibdata1:4M:autoextend",
            ]);
        if running_as_root() {
            command.arg("--user=root");
        }
        let out = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run mariadb-install-db: {e}"));
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if std::fs::rename(&data, &dir).is_err() && !dir.join("mysql").is_dir() {
            panic!("cannot move the MariaDB template into {}", dir.display());
        }
        dir
    })
}

/// A running (or stopped) MariaDB server owned by a test.
#[derive(Debug)]
pub struct MariaDb {
    dir: TempDir,
    port: u16,
    server: Option<ChildGuard>,
    /// Server options beyond the test defaults (a Galera node's wsrep settings).
    extra: Vec<String>,
    /// Runs as the `mysql` user, which rsync state transfer needs, with the files owned by it.
    as_mysql: bool,
}

impl MariaDb {
    /// Starts a fresh server with an empty data directory (only the `mysql` system schema).
    pub fn start() -> MariaDb {
        let mut db = MariaDb::prepare(false);
        db.restart();
        db
    }

    /// A server with its data directory ready, not started; `as_mysql` hands the files to the
    /// `mysql` user and runs the server as it.
    pub(crate) fn prepare(as_mysql: bool) -> MariaDb {
        // A short directory under /tmp keeps the socket path under the 108-byte limit.
        let dir = tempfile::Builder::new()
            .prefix("qs")
            .tempdir_in("/tmp")
            .unwrap_or_else(|e| panic!("cannot create a server directory: {e}"));
        let status = Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(template())
            .arg(dir.path().join("data"))
            .status()
            .unwrap_or_else(|e| panic!("cannot copy the MariaDB template: {e}"));
        assert!(status.success(), "copying the MariaDB template failed");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", tmp.display()));
        if as_mysql {
            let path = dir.path().display().to_string();
            let ok = Command::new("chown")
                .args(["-R", "mysql:mysql", &path])
                .status()
                .is_ok_and(|s| s.success())
                && Command::new("chmod")
                    .args(["0755", &path])
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(ok, "cannot hand {path} to the mysql user");
        }
        MariaDb {
            dir,
            port: free_port(),
            server: None,
            extra: Vec::new(),
            as_mysql,
        }
    }

    pub(crate) fn set_extra(&mut self, extra: Vec<String>) {
        self.extra = extra;
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    /// The admin URL an agent is given.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.server.as_ref().and_then(ChildGuard::pid)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            server.kill();
        }
    }

    /// Starts the server again on the same data directory and port; returns once it accepts
    /// connections.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready(Duration::from_secs(60));
    }

    /// Starts the server without waiting for it.
    pub(crate) fn spawn(&mut self) {
        let mut command = Command::new(mariadbd().unwrap_or_else(|e| panic!("{e}")));
        command
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data_dir().display()))
            .arg(format!("--port={}", self.port))
            .arg(format!("--socket={}", self.socket().display()))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .arg(format!(
                "--tmpdir={}",
                self.dir.path().join("tmp").display()
            ))
            .args(SERVER_OPTIONS)
            .args(&self.extra);
        if self.as_mysql {
            command.arg("--user=mysql");
        } else if running_as_root() {
            command.arg("--user=root");
        }
        let log = self.dir.path().join("server.log");
        self.server = Some(ChildGuard::spawn("mariadbd", command, &log));
    }

    pub(crate) fn wait_ready(&mut self, limit: Duration) {
        let start = Instant::now();
        loop {
            if greets(self.port) {
                return;
            }
            if let Some(server) = self.server.as_mut()
                && let Some(status) = server.exited()
            {
                panic!(
                    "mariadbd exited with {status} at start:\n{}",
                    server.log_tail(30)
                );
            }
            assert!(
                start.elapsed() < limit,
                "mariadbd did not accept connections within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Runs SQL as root through the `mariadb` client; panics with the server's error on failure.
    pub fn execute(&self, sql: &str) -> String {
        match self.try_execute(sql) {
            Ok(out) => out,
            Err(err) => panic!("SQL failed: {sql}\n{err}"),
        }
    }

    /// Runs SQL as root; tab-separated rows without headers, or the client's error.
    pub fn try_execute(&self, sql: &str) -> Result<String, String> {
        self.execute_as("root", "", sql)
    }

    pub fn execute_as(&self, user: &str, password: &str, sql: &str) -> Result<String, String> {
        self.client(user, password, &[], sql)
    }

    /// Runs SQL as root with extra client options, e.g. the `--default-character-set=utf8mb4`
    /// that Debian's client configuration sets.
    pub fn execute_with(&self, options: &[&str], sql: &str) -> Result<String, String> {
        self.client("root", "", options, sql)
    }

    fn client(
        &self,
        user: &str,
        password: &str,
        options: &[&str],
        sql: &str,
    ) -> Result<String, String> {
        let client = find_program(&["mariadb", "mysql"], &["/usr/bin"]).unwrap_or_else(|| {
            panic!("the mariadb client is missing: apt-get install -y mariadb-client")
        });
        let out = Command::new(client)
            .arg("--no-defaults")
            .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .arg(format!("-u{user}"))
            .env("MYSQL_PWD", password)
            .args(options)
            .args(["-N", "-B", "-e", sql])
            .output()
            .map_err(|e| format!("cannot run the mariadb client: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A dump of the Qserv databases present on this server, for before/after comparisons.
    pub fn dump_qserv(&self) -> String {
        let present = self.execute(
            "SELECT GROUP_CONCAT(SCHEMA_NAME ORDER BY SCHEMA_NAME SEPARATOR ' ') FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME IN ('qservMeta', 'qservw_worker', 'qservReplica')",
        );
        if present.is_empty() || present == "NULL" {
            return String::new();
        }
        let dump =
            find_program(&["mariadb-dump", "mysqldump"], &["/usr/bin"]).unwrap_or_else(|| {
                panic!("mariadb-dump is missing: apt-get install -y mariadb-client")
            });
        let out = Command::new(dump)
            .arg("--no-defaults")
            .args(["--protocol=TCP", "-h", "127.0.0.1", "-P"])
            .arg(self.port.to_string())
            .args([
                "-uroot",
                "--skip-dump-date",
                "--skip-comments",
                "--routines",
                "--databases",
            ])
            .args(present.split(' '))
            .output()
            .unwrap_or_else(|e| panic!("cannot run mariadb-dump: {e}"));
        assert!(
            out.status.success(),
            "mariadb-dump failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// A directory that lives as long as this server, for files that belong to its node.
    pub fn node_dir(&self) -> &Path {
        self.dir.path()
    }
}

/// True once the server sends its handshake: it is then ready for clients.
fn greets(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut header = [0u8; 5];
    stream.read_exact(&mut header).is_ok()
}
