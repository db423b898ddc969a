//! What the coordinator sends an agent to migrate one module: the whole set by name and
//! checksum (so the agent can still tell a changed script it applied long ago), a digest of that
//! list, and the text of only the scripts the node's plan needs.

use std::collections::BTreeMap;

use crate::set::{MigrationError, MigrationSet, ScriptName, checksum};
use crate::{Module, SchemaVersion};

/// One script of the set, as listed in a shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub file_name: String,
    pub checksum: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shipment {
    pub module: Module,
    pub manifest: Vec<ManifestEntry>,
    pub digest: String,
    /// (file name, content) of the scripts the plan needs, in order.
    pub scripts: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShipmentError {
    #[error(
        "the list of {module} scripts does not match its digest (sent {sent}, computed {computed}); the request was damaged or built by an incompatible coordinator"
    )]
    Digest {
        module: Module,
        sent: String,
        computed: String,
    },
    #[error("script {file_name} was sent but is not in the list of {module} scripts")]
    Unlisted { module: Module, file_name: String },
    #[error("script {file_name} does not match its checksum in the list; the request was damaged")]
    Checksum { file_name: String },
    #[error(
        "this node needs {file_name}, which the coordinator did not send: it planned from an older view of the database; run the command again"
    )]
    Missing { file_name: String },
    #[error("{0}")]
    Plan(String),
}

impl From<MigrationError> for ShipmentError {
    fn from(err: MigrationError) -> ShipmentError {
        ShipmentError::Plan(err.to_string())
    }
}

/// SHA-256 over the sorted `name\tchecksum` lines, in hex.
pub fn manifest_digest(manifest: &[ManifestEntry]) -> String {
    let mut lines: Vec<String> = manifest
        .iter()
        .map(|e| format!("{}\t{}\n", e.file_name, e.checksum))
        .collect();
    lines.sort();
    checksum(&lines.concat())
}

/// The version smig plans from: an uninitialized repl database gets its database and account
/// first (smig's pre-step), after which it reads as version 0; a set without a `None` script
/// starts from there.
pub fn plan_start(set: &MigrationSet, module: Module, current: SchemaVersion) -> SchemaVersion {
    let has_none_script = set.scripts(module).iter().any(|s| s.name.from.is_none());
    if module == Module::Repl && current.is_none() && !has_none_script {
        Some(0)
    } else {
        current
    }
}

impl MigrationSet {
    /// What to send a node whose `module` database reads `current`.
    pub fn shipment(
        &self,
        module: Module,
        current: SchemaVersion,
    ) -> Result<Shipment, MigrationError> {
        let manifest: Vec<ManifestEntry> = self
            .scripts(module)
            .iter()
            .map(|s| ManifestEntry {
                file_name: s.file_name.clone(),
                checksum: checksum(&s.content),
            })
            .collect();
        let scripts = self
            .plan(module, plan_start(self, module, current))?
            .into_iter()
            .map(|s| (s.file_name.clone(), s.content.clone()))
            .collect();
        Ok(Shipment {
            module,
            digest: manifest_digest(&manifest),
            manifest,
            scripts,
        })
    }
}

/// A shipment checked on arrival: the set by name (to plan and to compare applied checksums)
/// and the texts that came with it.
#[derive(Debug, Clone)]
pub struct Received {
    pub module: Module,
    /// The set with names only: plans come from here.
    pub set: MigrationSet,
    pub checksums: BTreeMap<String, String>,
    texts: BTreeMap<String, String>,
}

/// One step of a received plan: the script's name, checksum and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedScript {
    pub file_name: String,
    pub name: ScriptName,
    pub checksum: String,
    pub content: String,
}

impl Shipment {
    /// Checks the digest and every sent script against the list.
    pub fn receive(self) -> Result<Received, ShipmentError> {
        let computed = manifest_digest(&self.manifest);
        if computed != self.digest {
            return Err(ShipmentError::Digest {
                module: self.module,
                sent: self.digest,
                computed,
            });
        }
        let checksums: BTreeMap<String, String> = self
            .manifest
            .iter()
            .map(|e| (e.file_name.clone(), e.checksum.clone()))
            .collect();
        let mut texts = BTreeMap::new();
        for (file_name, content) in self.scripts {
            let Some(listed) = checksums.get(&file_name) else {
                return Err(ShipmentError::Unlisted {
                    module: self.module,
                    file_name,
                });
            };
            if *listed != checksum(&content) {
                return Err(ShipmentError::Checksum { file_name });
            }
            texts.insert(file_name, content);
        }
        let set = MigrationSet::for_module(
            self.module,
            self.manifest
                .into_iter()
                .map(|e| (e.file_name, String::new())),
        )?;
        Ok(Received {
            module: self.module,
            set,
            checksums,
            texts,
        })
    }
}

impl Received {
    pub fn target(&self) -> Option<i64> {
        self.set.target(self.module)
    }

    /// The scripts that take the database from `current` to target, with their texts.
    pub fn plan(&self, current: SchemaVersion) -> Result<Vec<PlannedScript>, ShipmentError> {
        let start = plan_start(&self.set, self.module, current);
        self.set
            .plan(self.module, start)?
            .into_iter()
            .map(|s| {
                let content = self.texts.get(&s.file_name).cloned().ok_or_else(|| {
                    ShipmentError::Missing {
                        file_name: s.file_name.clone(),
                    }
                })?;
                Ok(PlannedScript {
                    file_name: s.file_name.clone(),
                    name: s.name,
                    checksum: self
                        .checksums
                        .get(&s.file_name)
                        .cloned()
                        .unwrap_or_default(),
                    content,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> MigrationSet {
        MigrationSet::for_module(
            Module::Worker,
            [
                ("migrate-None-to-1.sql", "CREATE DATABASE x;"),
                ("migrate-1-to-2.sql", "ALTER TABLE a ADD b INT;"),
                ("migrate-2-to-3.sql", "ALTER TABLE a ADD c INT;"),
            ]
            .map(|(n, c)| (n.to_owned(), c.to_owned())),
        )
        .unwrap_or_default()
    }

    #[test]
    fn ships_only_what_the_plan_needs() {
        let shipment = set()
            .shipment(Module::Worker, Some(1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(shipment.manifest.len(), 3);
        let names: Vec<&str> = shipment.scripts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["migrate-1-to-2.sql", "migrate-2-to-3.sql"]);
        let at_target = set()
            .shipment(Module::Worker, Some(3))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(at_target.scripts.is_empty());
        let received = shipment.receive().unwrap_or_else(|e| panic!("{e}"));
        let plan = received.plan(Some(1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].content, "ALTER TABLE a ADD b INT;");
        assert_eq!(received.target(), Some(3));
    }

    #[test]
    fn a_plan_from_a_stale_view_is_refused() {
        let shipment = set()
            .shipment(Module::Worker, Some(2))
            .unwrap_or_else(|e| panic!("{e}"));
        let received = shipment.receive().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            received.plan(Some(1)).err(),
            Some(ShipmentError::Missing {
                file_name: "migrate-1-to-2.sql".to_owned()
            })
        );
    }

    #[test]
    fn tampering_is_detected() {
        let mut bad_digest = set()
            .shipment(Module::Worker, None)
            .unwrap_or_else(|e| panic!("{e}"));
        bad_digest.manifest.pop();
        assert!(matches!(
            bad_digest.receive(),
            Err(ShipmentError::Digest { .. })
        ));
        let mut bad_text = set()
            .shipment(Module::Worker, None)
            .unwrap_or_else(|e| panic!("{e}"));
        bad_text.scripts[0].1.push_str(" DROP DATABASE mysql;");
        assert!(matches!(
            bad_text.receive(),
            Err(ShipmentError::Checksum { .. })
        ));
        let mut unlisted = set()
            .shipment(Module::Worker, None)
            .unwrap_or_else(|e| panic!("{e}"));
        unlisted
            .scripts
            .push(("migrate-3-to-4.sql".to_owned(), String::new()));
        assert!(matches!(
            unlisted.receive(),
            Err(ShipmentError::Unlisted { .. })
        ));
    }

    #[test]
    fn repl_without_a_none_script_starts_at_zero() {
        let repl = MigrationSet::for_module(
            Module::Repl,
            [("migrate-0-to-1.sql".to_owned(), "SELECT 1;".to_owned())],
        )
        .unwrap_or_default();
        assert_eq!(plan_start(&repl, Module::Repl, None), Some(0));
        assert_eq!(plan_start(&set(), Module::Worker, None), None);
    }
}
