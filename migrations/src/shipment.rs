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
    /// The version this shipment takes the database to, when it carries only the first part
    /// of a chain too large for one message; `None`: the target.
    pub stop_at: Option<i64>,
}

/// What a shipment costs on the wire beyond its scripts' texts, per script of the set (name,
/// checksum, framing): generous, so that a piece never exceeds its budget.
const MANIFEST_ENTRY_BYTES: usize = 64 + 16;

impl Shipment {
    /// Bytes of the message that carries this shipment, about (texts, names, manifest).
    pub fn wire_bytes(&self) -> usize {
        let manifest: usize = self
            .manifest
            .iter()
            .map(|e| e.file_name.len() + MANIFEST_ENTRY_BYTES)
            .sum();
        let scripts: usize = self
            .scripts
            .iter()
            .map(|(name, text)| script_bytes(name, text))
            .sum();
        manifest + scripts + 64 + 256
    }
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
                checksum: s.checksum.clone(),
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
            stop_at: None,
        })
    }

    /// The shipments that take a node whose `module` reads `current` to target, each at most
    /// `budget` bytes on the wire: one when the chain fits, else consecutive parts of it, each
    /// stopping at the version its last script reaches. A script is never split (one is at
    /// most [`crate::MAX_SCRIPT_BYTES`]); a budget smaller than one script still ships it alone.
    pub fn pieces(
        &self,
        module: Module,
        current: SchemaVersion,
        budget: usize,
    ) -> Result<Vec<Shipment>, MigrationError> {
        let mut whole = self.shipment(module, current)?;
        let parts = self.parts(module, current, budget)?;
        if parts.len() <= 1 {
            return Ok(vec![whole]);
        }
        let mut scripts = std::mem::take(&mut whole.scripts).into_iter();
        let last = parts.len() - 1;
        Ok(parts
            .iter()
            .enumerate()
            .map(|(index, part)| Shipment {
                scripts: scripts.by_ref().take(part.len()).collect(),
                stop_at: (index != last)
                    .then(|| part.last().map(|s| s.name.to))
                    .flatten(),
                ..whole.clone()
            })
            .collect())
    }

    /// How the plan from `current` falls into requests of at most `budget` bytes (see
    /// [`MigrationSet::pieces`]), without copying a script.
    pub fn parts(
        &self,
        module: Module,
        current: SchemaVersion,
        budget: usize,
    ) -> Result<Vec<Vec<&crate::Script>>, MigrationError> {
        let manifest: usize = self
            .scripts(module)
            .iter()
            .map(|s| s.file_name.len() + MANIFEST_ENTRY_BYTES)
            .sum::<usize>()
            + 64
            + 256;
        let plan = self.plan(module, plan_start(self, module, current))?;
        let mut parts: Vec<Vec<&crate::Script>> = vec![Vec::new()];
        let mut size = manifest;
        for script in plan {
            let cost = script_bytes(&script.file_name, &script.content);
            if let Some(part) = parts.last_mut()
                && !part.is_empty()
                && size + cost > budget
            {
                parts.push(Vec::new());
                size = manifest;
            }
            size += cost;
            if let Some(part) = parts.last_mut() {
                part.push(script);
            }
        }
        Ok(parts)
    }
}

/// What one script costs in a request.
fn script_bytes(file_name: &str, content: &str) -> usize {
    file_name.len() + content.len() + 16
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
    /// Where this shipment stops short of the target (see [`Shipment::stop_at`]).
    stop_at: Option<i64>,
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
            stop_at: self.stop_at,
        })
    }
}

impl Received {
    /// The version the database must read once this shipment is applied.
    pub fn target(&self) -> Option<i64> {
        self.stop_at.or_else(|| self.set.target(self.module))
    }

    /// The scripts that take the database from `current` to target (or to where the shipment
    /// stops), with their texts.
    pub fn plan(&self, current: SchemaVersion) -> Result<Vec<PlannedScript>, ShipmentError> {
        let start = plan_start(&self.set, self.module, current);
        let mut chain = self.set.plan(self.module, start)?;
        if let Some(stop) = self.stop_at {
            let Some(end) = chain.iter().position(|s| s.name.to == stop) else {
                return Err(ShipmentError::Plan(format!(
                    "the shipment stops at version {stop}, which is not on this node's path from {}; run the command again",
                    start.map_or_else(|| "None".to_owned(), |v| v.to_string())
                )));
            };
            chain.truncate(end + 1);
        }
        chain
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
    fn a_chain_too_large_for_one_message_ships_in_parts_that_apply_in_turn() {
        let big = "x".repeat(1000);
        let set = MigrationSet::for_module(
            Module::Worker,
            (0..5).map(|v| (format!("migrate-{v}-to-{}.sql", v + 1), big.clone())),
        )
        .unwrap_or_default();
        let whole = set
            .shipment(Module::Worker, Some(0))
            .unwrap_or_else(|e| panic!("{e}"));
        let pieces = set
            .pieces(Module::Worker, Some(0), 2_900)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(pieces.len() > 1, "{}", pieces.len());
        assert!(pieces.iter().all(|p| p.wire_bytes() <= 2_900));
        let shipped: Vec<&str> = pieces
            .iter()
            .flat_map(|p| p.scripts.iter().map(|(n, _)| n.as_str()))
            .collect();
        let planned: Vec<&str> = whole.scripts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(shipped, planned, "every script once, in order");
        assert_eq!(pieces.last().map(|p| p.stop_at), Some(None));
        // Each part applies from where the one before stopped.
        let mut at = Some(0);
        for piece in pieces {
            let received = piece.receive().unwrap_or_else(|e| panic!("{e}"));
            let plan = received.plan(at).unwrap_or_else(|e| panic!("{e}"));
            assert!(!plan.is_empty());
            at = plan.last().map(|s| s.name.to);
            assert_eq!(received.target(), at);
        }
        assert_eq!(at, Some(5));
        assert_eq!(
            set.pieces(Module::Worker, Some(0), 1 << 20)
                .map(|p| p.len())
                .ok(),
            Some(1)
        );
    }

    #[test]
    fn a_part_that_stops_off_the_nodes_path_is_refused() {
        let mut piece = set()
            .shipment(Module::Worker, Some(1))
            .unwrap_or_else(|e| panic!("{e}"));
        piece.stop_at = Some(7);
        let received = piece.receive().unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            received.plan(Some(1)),
            Err(ShipmentError::Plan(_))
        ));
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
