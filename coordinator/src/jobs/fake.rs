//! An in-memory stand-in for a fleet of agents, for the engine's unit tests. It keeps per node
//! what a real agent's database would hold (databases, version, worker id, registry, accounts)
//! and makes the checks a real agent makes (node, role, instance, epoch, mode) so that tests
//! exercise the coordinator's side of them. A test can freeze the fleet at its n-th call, before
//! or after the call's effect, to stand for a coordinator killed at that point.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use qserv_migrations::{ManifestEntry, Module, ScriptName};
use tokio::sync::Notify;

use crate::agents::api::{
    AgentApi, AgentError, AgentResult, AppliedScript, Authority, ConfigWrite, Forgotten, Holdings,
    MigrateCall, Migrated, Prepared, Purged, RepairCall, Reply, Restart, Scope,
};
use crate::domain::{Node, Observation, RegistryRow, Role, SchemaObservation, Services};
use crate::instance::{Epoch, Mode};
use qserv_model::{Release, ServiceName, ServiceState, ServiceStatus};

#[derive(Debug, Clone)]
pub struct FakeNode {
    pub name: String,
    pub role: Role,
    pub boot: String,
    pub seq: u64,
    pub reachable: bool,
    pub db_ready: bool,
    pub databases: BTreeSet<String>,
    pub version: Option<i64>,
    pub dirty: bool,
    pub worker_id: Option<String>,
    pub registry: BTreeSet<String>,
    /// repl: replica rows per registered worker id (what the cascade would take).
    pub replicas: BTreeMap<String, u64>,
    /// repl: (is_enabled, is_read_only) per worker id whose state was set.
    pub flags: BTreeMap<String, (bool, bool)>,
    pub accounts: bool,
    /// `None` until a command sets one, as on an agent that was never installed.
    pub mode: Option<Mode>,
    /// 0 for none, as on the wire: tests set them to any value.
    pub epoch: u64,
    pub seen: u64,
    pub instance: String,
    pub services: Services,
    /// Scripts actually applied, in order.
    pub applied: Vec<String>,
    /// Migrations of this node fail with this error.
    pub fail_migrate: Option<String>,
    /// Times the services were restarted.
    pub restarts: u32,
    /// Services stopped for a restart do not start again, with this error.
    pub fail_restart: Option<String>,
    /// The services the node defines (none: the single summary `services` stands alone).
    pub defined: Vec<ServiceName>,
    pub release: Release,
    /// This service exits as soon as it is started.
    pub fail_service: Option<ServiceName>,
    /// The defined services that run.
    pub running: BTreeSet<ServiceName>,
    /// Every start (true) and stop (false) of a defined service, with a sequence number that
    /// orders them across the fleet.
    pub service_events: Vec<(usize, ServiceName, bool)>,
    /// Configuration files by service (rendering puts the node's name for `{{ node }}`).
    pub configs: BTreeMap<ServiceName, FakeConfig>,
    /// Rendering any template fails with this error.
    pub fail_render: Option<String>,
    /// Writing any configuration file fails with this error.
    pub fail_write: Option<String>,
}

/// A service's configuration file on a fake node; a file's "hash" is its text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FakeConfig {
    pub text: Option<String>,
    pub staged: Option<String>,
    pub previous: Option<String>,
    pub version: u32,
}

/// Orders service starts and stops across nodes.
static SERVICE_SEQ: AtomicUsize = AtomicUsize::new(0);

impl FakeNode {
    fn new(name: &str, role: Role) -> FakeNode {
        FakeNode {
            name: name.to_owned(),
            role,
            boot: format!("boot-{name}"),
            seq: 0,
            reachable: true,
            db_ready: true,
            databases: BTreeSet::new(),
            version: None,
            dirty: false,
            worker_id: None,
            registry: BTreeSet::new(),
            replicas: BTreeMap::new(),
            flags: BTreeMap::new(),
            accounts: false,
            mode: None,
            epoch: 0,
            seen: 0,
            instance: String::new(),
            services: Services::Stopped,
            applied: Vec::new(),
            fail_migrate: None,
            restarts: 0,
            fail_restart: None,
            defined: Vec::new(),
            release: Release::All,
            fail_service: None,
            running: BTreeSet::new(),
            service_events: Vec::new(),
            configs: BTreeMap::new(),
            fail_render: None,
            fail_write: None,
        }
    }

    /// Starts and stops the defined services as the mode and the release want, at once.
    fn settle_services(&mut self) {
        let wanted: BTreeSet<ServiceName> = self
            .defined
            .iter()
            .filter(|s| self.mode == Some(Mode::Normal) && self.release.allows(s))
            .filter(|s| self.fail_service.as_ref() != Some(*s))
            .cloned()
            .collect();
        for stopped in self.running.difference(&wanted) {
            let seq = SERVICE_SEQ.fetch_add(1, Ordering::SeqCst);
            self.service_events.push((seq, stopped.clone(), false));
        }
        for started in wanted.difference(&self.running) {
            let seq = SERVICE_SEQ.fetch_add(1, Ordering::SeqCst);
            self.service_events.push((seq, started.clone(), true));
        }
        self.running = wanted;
        if !self.defined.is_empty() {
            self.services = Services::summarize(&self.service_states());
        }
    }

    fn service_states(&self) -> Vec<ServiceStatus> {
        self.defined
            .iter()
            .map(|name| {
                let wanted = self.mode == Some(Mode::Normal) && self.release.allows(name);
                let status = if self.running.contains(name) {
                    ServiceStatus::new(name.clone(), ServiceState::Ready, 1)
                } else if wanted && self.fail_service.as_ref() == Some(name) {
                    ServiceStatus {
                        exit_code: Some(1),
                        detail: "it exited (exit status: 1)".to_owned(),
                        ..ServiceStatus::new(name.clone(), ServiceState::Failed, 1)
                    }
                } else {
                    ServiceStatus::new(name.clone(), ServiceState::Stopped, 1)
                };
                ServiceStatus {
                    config_version: self.configs.get(name).map(|c| c.version).filter(|v| *v > 0),
                    ..status
                }
            })
            .collect()
    }

    fn observe(&mut self) -> Observation {
        self.seq += 1;
        let module = self.role.module();
        let exists = self.databases.contains(module.database());
        Observation {
            name: self.name.clone(),
            role: Some(self.role),
            agent_version: "test".to_owned(),
            protocol_version: qserv_proto::PROTOCOL_VERSION,
            boot_id: self.boot.clone(),
            seq: self.seq,
            instance: self.instance.clone(),
            mode: self.mode,
            epoch: Epoch::from_wire(self.epoch),
            seen_epoch: Epoch::from_wire(self.seen),
            seen_token: None,
            db_ready: self.db_ready,
            db_error: if self.db_ready {
                String::new()
            } else {
                "cannot connect: connection refused".to_owned()
            },
            db_server_version: "11.8.3-MariaDB".to_owned(),
            db_failed_attempts: 0,
            observed_at_ms: 0,
            worker_id: self.worker_id.clone(),
            schemas: vec![SchemaObservation {
                module,
                version: if exists { self.version } else { None },
                dirty: self.dirty,
                dirty_reason: if self.dirty {
                    "failed in a script".to_owned()
                } else {
                    String::new()
                },
            }],
            services: self.services,
            services_error: String::new(),
            service_states: self.service_states(),
            released: self.release.clone(),
            certificate_expires_at_ms: 0,
            activity: Default::default(),
            registry: self
                .registry
                .iter()
                .map(|name| RegistryRow {
                    name: name.clone(),
                    is_enabled: true,
                    is_read_only: false,
                })
                .collect(),
        }
    }

    /// What a real agent checks before any command.
    fn admit(&mut self, node: &Node, auth: &Authority, changes: bool) -> AgentResult<()> {
        if node.name != self.name || node.role != self.role {
            return Err(AgentError::Refused(format!(
                "this agent is {} ({}); the command was meant for {} ({})",
                self.name, self.role, node.name, node.role
            )));
        }
        if !self.instance.is_empty() && self.instance != auth.instance {
            return Err(AgentError::Refused(format!(
                "this agent belongs to instance '{}', not '{}'",
                self.instance, auth.instance
            )));
        }
        let epoch = Epoch::to_wire(auth.epoch);
        if epoch < self.seen {
            return Err(AgentError::Refused(format!(
                "stale epoch {epoch}: this agent has seen epoch {}",
                self.seen
            )));
        }
        if changes && (self.mode == Some(Mode::Normal) || self.services.any_up()) {
            return Err(AgentError::Refused(
                "this agent holds mode normal with its services running".to_owned(),
            ));
        }
        self.seen = self.seen.max(epoch);
        Ok(())
    }

    fn need_db(&self) -> AgentResult<()> {
        if self.db_ready {
            Ok(())
        } else {
            Err(AgentError::Failed(
                "local database: cannot connect".to_owned(),
            ))
        }
    }
}

/// Where a frozen call stops: before its effect, or after it with the reply lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freeze {
    Before,
    After,
}

type Event = Box<dyn FnOnce(&mut BTreeMap<String, FakeNode>) + Send>;

pub struct FakeFleet {
    /// By agent address.
    pub nodes: Mutex<BTreeMap<String, FakeNode>>,
    calls: AtomicUsize,
    freeze: Mutex<Option<(usize, Freeze)>>,
    /// Changes to the fleet made just before the call of the given index runs.
    events: Mutex<Vec<(usize, Event)>>,
    pub frozen: Notify,
    /// The call of this index waits until the notify is woken, as an agent frozen and then
    /// thawed.
    hold: Mutex<Option<(usize, Arc<Notify>)>>,
}

impl FakeFleet {
    /// czar-0, repl-0 and `workers` workers; agent addresses `fake://NAME`.
    pub fn standard(workers: usize) -> FakeFleet {
        let mut nodes = vec![
            FakeNode::new("czar-0", Role::Czar),
            FakeNode::new("repl-0", Role::Repl),
        ];
        nodes.extend((1..=workers).map(|i| FakeNode::new(&format!("worker-{i}"), Role::Worker)));
        FakeFleet {
            nodes: Mutex::new(
                nodes
                    .into_iter()
                    .map(|n| (format!("fake://{}", n.name), n))
                    .collect(),
            ),
            calls: AtomicUsize::new(0),
            freeze: Mutex::new(None),
            events: Mutex::new(Vec::new()),
            frozen: Notify::new(),
            hold: Mutex::new(None),
        }
    }

    /// Holds the call numbered `call` (counted from now) before its effect, telling
    /// [`FakeFleet::frozen`], until the returned notify is woken.
    pub fn hold_at(&self, call: usize) -> Arc<Notify> {
        let base = self.calls.load(Ordering::SeqCst);
        let release = Arc::new(Notify::new());
        if let Ok(mut hold) = self.hold.lock() {
            *hold = Some((base + call, Arc::clone(&release)));
        }
        release
    }

    /// Freezes the fleet at the call numbered `call` counted from now; `None` thaws it.
    pub fn freeze_at(&self, call: Option<(usize, Freeze)>) {
        let base = self.calls.load(Ordering::SeqCst);
        if let Ok(mut freeze) = self.freeze.lock() {
            *freeze = call.map(|(at, how)| (base + at, how));
        }
    }

    /// Runs `change` on the fleet just before the call numbered `call` (counted from now).
    pub fn at_call(
        &self,
        call: usize,
        change: impl FnOnce(&mut BTreeMap<String, FakeNode>) + Send + 'static,
    ) {
        let base = self.calls.load(Ordering::SeqCst);
        if let Ok(mut events) = self.events.lock() {
            events.push((base + call, Box::new(change)));
        }
    }

    pub fn with<T>(&self, name: &str, change: impl FnOnce(&mut FakeNode) -> T) -> T {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        let node = nodes
            .values_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no fake node {name}"));
        change(node)
    }

    pub fn add(&self, name: &str, role: Role) {
        let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
        nodes.insert(format!("fake://{name}"), FakeNode::new(name, role));
    }

    /// Counts the call and, when it is the frozen one, never returns (before or after `act`).
    async fn call<T>(
        &self,
        node: &Node,
        act: impl FnOnce(&mut FakeNode) -> AgentResult<T>,
    ) -> AgentResult<T> {
        let index = self.calls.fetch_add(1, Ordering::SeqCst);
        let due: Vec<Event> = match self.events.lock() {
            Ok(mut events) => {
                let (due, later) = std::mem::take(&mut *events)
                    .into_iter()
                    .partition(|(at, _)| *at <= index);
                *events = later;
                due.into_iter().map(|(_, event)| event).collect()
            }
            Err(_) => Vec::new(),
        };
        if !due.is_empty() {
            let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
            for event in due {
                event(&mut nodes);
            }
        }
        let freeze = self
            .freeze
            .lock()
            .ok()
            .and_then(|f| *f)
            .filter(|(at, _)| *at == index)
            .map(|(_, how)| how);
        if freeze == Some(Freeze::Before) {
            self.frozen.notify_one();
            std::future::pending::<()>().await;
        }
        let held = self
            .hold
            .lock()
            .ok()
            .and_then(|mut h| h.take_if(|(at, _)| *at == index))
            .map(|(_, release)| release);
        if let Some(release) = held {
            self.frozen.notify_one();
            release.notified().await;
        }
        let result = {
            let mut nodes = self.nodes.lock().unwrap_or_else(|e| e.into_inner());
            match nodes.get_mut(&node.agent) {
                Some(fake) if fake.reachable => act(fake),
                _ => Err(AgentError::Unreachable(format!(
                    "{}: connection refused",
                    node.agent
                ))),
            }
        };
        if freeze == Some(Freeze::After) {
            self.frozen.notify_one();
            std::future::pending::<()>().await;
        }
        // Lets other tasks run between calls, as a network round trip would.
        tokio::task::yield_now().await;
        result
    }
}

fn target_of(manifest: &[ManifestEntry]) -> Option<i64> {
    manifest
        .iter()
        .filter_map(|e| ScriptName::parse(&e.file_name).map(|n| n.to))
        .max()
}

#[tonic::async_trait]
impl AgentApi for FakeFleet {
    async fn probe(&self, node: &Node, _: Scope) -> AgentResult<Observation> {
        self.call(node, |n| Ok(n.observe())).await
    }

    async fn set_mode(
        &self,
        node: &Node,
        auth: &Authority,
        mode: Mode,
        release: &Release,
    ) -> AgentResult<Observation> {
        self.call(node, |n| {
            n.admit(node, auth, false)?;
            let epoch = Epoch::to_wire(auth.epoch);
            if epoch > n.epoch {
                n.mode = Some(mode);
                n.epoch = epoch;
                n.release = release.clone();
                if mode != Mode::Uninstalled && n.instance.is_empty() {
                    n.instance = auth.instance.clone();
                }
                n.services = if mode == Mode::Normal {
                    Services::Running
                } else {
                    Services::Stopped
                };
                n.settle_services();
            } else if n.mode != Some(mode) {
                return Err(AgentError::Refused(format!(
                    "epoch {epoch} already holds mode {:?}",
                    n.mode
                )));
            }
            Ok(n.observe())
        })
        .await
    }

    async fn set_services(
        &self,
        node: &Node,
        auth: &Authority,
        release: &Release,
    ) -> AgentResult<Observation> {
        self.call(node, |n| {
            n.admit(node, auth, false)?;
            n.release = release.clone();
            n.settle_services();
            Ok(n.observe())
        })
        .await
    }

    async fn inspect(&self, node: &Node, auth: &Authority) -> AgentResult<Vec<String>> {
        self.call(node, |n| {
            n.admit(node, auth, false)?;
            n.need_db()?;
            Ok(n.databases.iter().cloned().collect())
        })
        .await
    }

    async fn ensure_accounts(
        &self,
        node: &Node,
        auth: &Authority,
    ) -> AgentResult<Reply<Vec<String>>> {
        self.call(node, |n| {
            n.admit(node, auth, true)?;
            n.need_db()?;
            n.accounts = true;
            Ok(Reply {
                value: vec!["qsmaster".to_owned()],
                observed: n.observe(),
            })
        })
        .await
    }

    async fn migrate(
        &self,
        node: &Node,
        auth: &Authority,
        call: MigrateCall,
    ) -> AgentResult<Reply<Migrated>> {
        self.call(node, |n| {
            n.admit(node, auth, true)?;
            n.need_db()?;
            let module = call.shipment.module;
            if module != n.role.module() {
                return Err(AgentError::Refused(format!(
                    "this agent serves no {module} database"
                )));
            }
            if n.dirty {
                return Err(AgentError::Refused("the database is dirty".to_owned()));
            }
            if let Some(error) = n.fail_migrate.clone() {
                n.dirty = true;
                return Err(AgentError::Failed(error));
            }
            let from = n.version;
            // Like the agent: the texts sent must cover the plan from the version found now.
            let received = call
                .shipment
                .clone()
                .receive()
                .map_err(|e| AgentError::Refused(e.to_string()))?;
            if let Err(err) = received.plan(from) {
                return Err(AgentError::Stale(err.to_string()));
            }
            let target = target_of(&call.shipment.manifest);
            let mut applied = Vec::new();
            if from != target {
                let script = format!(
                    "migrate-{}-to-{}",
                    from.map_or("None".to_owned(), |v| v.to_string()),
                    target.unwrap_or(0)
                );
                n.applied.push(script.clone());
                applied.push(AppliedScript {
                    file_name: script,
                    duration_ms: 1,
                });
                n.databases.insert(module.database().to_owned());
                n.version = target;
                if module == Module::Worker && n.worker_id.is_none() {
                    n.worker_id = Some(format!("id-{}", n.name));
                }
            }
            Ok(Reply {
                value: Migrated {
                    from,
                    to: n.version,
                    applied,
                },
                observed: n.observe(),
            })
        })
        .await
    }

    async fn register_workers(
        &self,
        node: &Node,
        auth: &Authority,
        ids: Vec<String>,
    ) -> AgentResult<Reply<Vec<String>>> {
        self.call(node, |n| {
            n.admit(node, auth, true)?;
            let inserted = ids
                .into_iter()
                .filter(|id| n.registry.insert(id.clone()))
                .collect();
            Ok(Reply {
                value: inserted,
                observed: n.observe(),
            })
        })
        .await
    }

    async fn unregister_workers(
        &self,
        node: &Node,
        auth: &Authority,
        ids: Vec<String>,
    ) -> AgentResult<Reply<Vec<String>>> {
        self.call(node, |n| {
            n.admit(node, auth, true)?;
            if let Some(id) = ids
                .iter()
                .find(|id| n.replicas.get(*id).is_some_and(|r| *r > 0))
            {
                return Err(AgentError::Refused(format!(
                    "worker {id} still holds replica rows; nothing was deleted"
                )));
            }
            let removed = ids.into_iter().filter(|id| n.registry.remove(id)).collect();
            Ok(Reply {
                value: removed,
                observed: n.observe(),
            })
        })
        .await
    }

    async fn validate(&self, node: &Node, auth: &Authority) -> AgentResult<Vec<String>> {
        self.call(node, |n| {
            n.admit(node, auth, false)?;
            Ok(if n.accounts {
                Vec::new()
            } else {
                vec!["qsmaster cannot log in".to_owned()]
            })
        })
        .await
    }

    async fn purge(&self, node: &Node, auth: &Authority) -> AgentResult<Reply<Purged>> {
        self.call(node, |n| {
            n.admit(node, auth, true)?;
            let purged = Purged {
                databases: std::mem::take(&mut n.databases).into_iter().collect(),
                accounts: if std::mem::take(&mut n.accounts) {
                    vec!["qsmaster".to_owned()]
                } else {
                    Vec::new()
                },
            };
            n.version = None;
            n.worker_id = None;
            n.registry.clear();
            n.mode = Some(Mode::Uninstalled);
            n.instance.clear();
            Ok(Reply {
                value: purged,
                observed: n.observe(),
            })
        })
        .await
    }

    async fn prepare_config(
        &self,
        node: &Node,
        auth: &Authority,
        service: &ServiceName,
        template: &str,
        stage: bool,
    ) -> AgentResult<Prepared> {
        self.call(node, |n| {
            n.admit(node, auth, false)?;
            if let Some(error) = n.fail_render.clone() {
                return Err(AgentError::Refused(error));
            }
            let rendered = template.replace("{{ node }}", &n.name);
            let file = n.configs.entry(service.clone()).or_default();
            if stage {
                file.staged = Some(rendered.clone());
            }
            let current = file.text.clone().unwrap_or_default();
            Ok(Prepared {
                path: format!("/etc/qserv/{service}.cnf"),
                diff: if current == rendered {
                    String::new()
                } else {
                    format!("-{current}\n+{rendered}\n")
                },
                rendered_sha256: rendered,
            })
        })
        .await
    }

    async fn commit_config(
        &self,
        node: &Node,
        auth: &Authority,
        service: &ServiceName,
        write: &ConfigWrite,
        rolling: bool,
    ) -> AgentResult<Reply<String>> {
        self.call(node, |n| {
            n.admit(node, auth, false)?;
            if n.mode == Some(Mode::Normal) && !rolling {
                return Err(AgentError::Refused(
                    "configuration changes in normal mode only in a rolling apply".to_owned(),
                ));
            }
            if let Some(error) = n.fail_write.clone() {
                return Err(AgentError::Failed(error));
            }
            let file = n.configs.entry(service.clone()).or_default();
            match write {
                ConfigWrite::Install {
                    version,
                    rendered_sha256,
                } => {
                    if file.text.as_ref() != Some(rendered_sha256) {
                        if file.staged.as_ref() != Some(rendered_sha256) {
                            return Err(AgentError::Refused(
                                "the staged file is not the one prepared".to_owned(),
                            ));
                        }
                        file.previous = file.text.take();
                        file.text = file.staged.take();
                    }
                    file.version = *version;
                }
                ConfigWrite::Restore { version } => {
                    file.text = file.previous.clone();
                    file.version = *version;
                }
            }
            let text = file.text.clone().unwrap_or_default();
            Ok(Reply {
                value: text,
                observed: n.observe(),
            })
        })
        .await
    }

    async fn restart_services(
        &self,
        node: &Node,
        auth: &Authority,
        services: &[ServiceName],
    ) -> AgentResult<Reply<Restart>> {
        self.call(node, |n| {
            n.admit(node, auth, false)?;
            if n.mode != Some(Mode::Normal) {
                return Ok(Reply {
                    value: Restart {
                        restarted: false,
                        detail: "services are stopped".to_owned(),
                    },
                    observed: n.observe(),
                });
            }
            if let Some(error) = n.fail_restart.clone() {
                n.services = Services::Stopped;
                return Err(AgentError::Failed(error));
            }
            n.restarts += 1;
            n.services = Services::Running;
            let restarted: Vec<ServiceName> = n
                .defined
                .iter()
                .filter(|s| n.running.contains(*s))
                .filter(|s| services.is_empty() || services.contains(s))
                .cloned()
                .collect();
            for (started, list) in [
                (false, restarted.iter().rev().collect::<Vec<_>>()),
                (true, restarted.iter().collect()),
            ] {
                for name in list {
                    let seq = SERVICE_SEQ.fetch_add(1, Ordering::SeqCst);
                    n.service_events.push((seq, name.clone(), started));
                }
            }
            Ok(Reply {
                value: Restart {
                    restarted: true,
                    detail: "services stopped and started again".to_owned(),
                },
                observed: n.observe(),
            })
        })
        .await
    }

    async fn worker_holdings(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
    ) -> AgentResult<Holdings> {
        self.call(node, |n| {
            n.admit(node, auth, false)?;
            let rows = n.replicas.get(worker_id).copied().unwrap_or(0);
            Ok(Holdings {
                databases: Vec::new(),
                cascaded: if rows > 0 {
                    vec![("replica".to_owned(), rows)]
                } else {
                    Vec::new()
                },
            })
        })
        .await
    }

    async fn forget_worker(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
        job_id: &str,
    ) -> AgentResult<Reply<Forgotten>> {
        self.call(node, |n| {
            n.admit(node, auth, true)?;
            let removed = n.registry.remove(worker_id);
            let rows = n.replicas.remove(worker_id).unwrap_or(0);
            Ok(Reply {
                value: Forgotten {
                    removed,
                    saved_path: format!("/saved/{job_id}-{worker_id}.sql"),
                    saved_rows: rows + 1,
                },
                observed: n.observe(),
            })
        })
        .await
    }

    async fn set_worker_state(
        &self,
        node: &Node,
        auth: &Authority,
        worker_id: &str,
        flags: (bool, bool),
    ) -> AgentResult<Reply<Option<bool>>> {
        self.call(node, |n| {
            n.admit(node, auth, true)?;
            let found = n.registry.contains(worker_id);
            let changed = found && n.flags.insert(worker_id.to_owned(), flags) != Some(flags);
            Ok(Reply {
                value: found.then_some(changed),
                observed: n.observe(),
            })
        })
        .await
    }

    async fn repair(
        &self,
        node: &Node,
        auth: &Authority,
        call: RepairCall,
    ) -> AgentResult<Reply<String>> {
        self.call(node, |n| {
            n.admit(node, auth, true)?;
            let was = if n.dirty { "failed in a script" } else { "" }.to_owned();
            n.dirty = false;
            n.version = Some(call.version);
            Ok(Reply {
                value: was,
                observed: n.observe(),
            })
        })
        .await
    }
}
