//! A set of smig-layout migration scripts: names, targets and the path from a version to target.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

use crate::{BUNDLED, Module, SchemaVersion};

/// What a script file name says: `migrate-(\d+|None)-to-(\d+)(-.*)?\.sql(\.jinja)?`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptName {
    pub from: SchemaVersion,
    pub to: i64,
    pub jinja: bool,
}

impl ScriptName {
    /// Parses a file name; `None` when it is not a migration script (smig skips such files).
    pub fn parse(file_name: &str) -> Option<ScriptName> {
        let (stem, jinja) = match file_name.strip_suffix(".sql.jinja") {
            Some(stem) => (stem, true),
            None => (file_name.strip_suffix(".sql")?, false),
        };
        let (from, rest) = stem.strip_prefix("migrate-")?.split_once("-to-")?;
        let from = match from {
            "None" => None,
            digits => Some(parse_digits(digits)?),
        };
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (to, description) = rest.split_at(end);
        if !(description.is_empty() || description.starts_with('-')) {
            return None;
        }
        Some(ScriptName {
            from,
            to: parse_digits(to)?,
            jinja,
        })
    }
}

fn parse_digits(value: &str) -> Option<i64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Larger than any real migration script; a bigger file is a mistake (or an attack).
pub const MAX_SCRIPT_BYTES: u64 = 4 * 1024 * 1024;

/// SHA-256 of a script's text as stored (before any template rendering), in hex.
pub fn checksum(content: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(content.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One migration script of a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub module: Module,
    pub file_name: String,
    pub name: ScriptName,
    pub content: String,
    /// [`checksum`] of `content`, computed once.
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MigrationError {
    #[error("cannot read migrations directory {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "migrations directory {0} has no czar, worker or repl folder; point --migrations-dir at Qserv's schema/migrations"
    )]
    Empty(PathBuf),
    #[error(
        "migration script {path} is {size} bytes, more than the {MAX_SCRIPT_BYTES} a script may be; check that it is a migration"
    )]
    TooLarge { path: PathBuf, size: u64 },
    #[error(
        "{path} is {what}: only regular files inside the migrations directory are read; put the file itself there"
    )]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("module {module} has two scripts from {from} to {to}: {first} and {second}; keep one")]
    Ambiguous {
        module: Module,
        from: String,
        to: i64,
        first: String,
        second: String,
    },
    #[error("module {module} has no migration path from {from} to version {to}")]
    NoPath {
        module: Module,
        from: String,
        to: i64,
    },
    #[error(
        "module {module} is at version {current}, above the target {target} of these migrations; use the migrations of a newer release"
    )]
    AheadOfTarget {
        module: Module,
        current: i64,
        target: i64,
    },
}

/// The scripts of every module, indexed by (from, to).
#[derive(Debug, Clone, Default)]
pub struct MigrationSet {
    modules: BTreeMap<Module, Vec<Script>>,
}

fn version_label(version: SchemaVersion) -> String {
    version.map_or_else(|| "None".to_owned(), |v| v.to_string())
}

impl MigrationSet {
    /// The scripts bundled in this build.
    pub fn bundled() -> Result<MigrationSet, MigrationError> {
        MigrationSet::from_files(BUNDLED.iter().filter_map(|(module, file, content)| {
            let module = Module::parse(module).ok()?;
            Some((module, (*file).to_owned(), (*content).to_owned()))
        }))
    }

    /// The scripts of one module as sent over the wire: (file name, content).
    pub fn for_module(
        module: Module,
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<MigrationSet, MigrationError> {
        MigrationSet::from_files(
            files
                .into_iter()
                .map(|(name, content)| (module, name, content)),
        )
    }

    /// A set from (module, file name, content); names that are not migration scripts are
    /// skipped, as smig skips such files.
    pub fn from_files(
        files: impl IntoIterator<Item = (Module, String, String)>,
    ) -> Result<MigrationSet, MigrationError> {
        let mut modules: BTreeMap<Module, Vec<Script>> = BTreeMap::new();
        for (module, file_name, content) in files {
            let Some(name) = ScriptName::parse(&file_name) else {
                continue;
            };
            let scripts = modules.entry(module).or_default();
            if let Some(other) = scripts
                .iter()
                .find(|s| s.name.from == name.from && s.name.to == name.to)
            {
                return Err(MigrationError::Ambiguous {
                    module,
                    from: version_label(name.from),
                    to: name.to,
                    first: other.file_name.clone(),
                    second: file_name,
                });
            }
            scripts.push(Script {
                module,
                file_name,
                name,
                checksum: checksum(&content),
                content,
            });
        }
        for scripts in modules.values_mut() {
            scripts.sort_by(|a, b| a.file_name.cmp(&b.file_name));
        }
        Ok(MigrationSet { modules })
    }

    /// SHA-256 over every script's module, file name and checksum, in hex: two sets with the
    /// same digest plan alike.
    pub fn digest(&self) -> String {
        let lines: String = self
            .modules
            .iter()
            .flat_map(|(module, scripts)| {
                scripts
                    .iter()
                    .map(move |s| format!("{}\t{}\t{}\n", module.name(), s.file_name, s.checksum))
            })
            .collect();
        checksum(&lines)
    }

    pub fn scripts(&self, module: Module) -> &[Script] {
        self.modules.get(&module).map_or(&[], Vec::as_slice)
    }

    /// The highest version any script of the module reaches; `None` without scripts.
    pub fn target(&self, module: Module) -> Option<i64> {
        self.scripts(module).iter().map(|s| s.name.to).max()
    }

    /// The scripts that take `module` from `current` to its target: the exact script when one
    /// exists, else the shortest chain. Empty when already at target.
    pub fn plan(
        &self,
        module: Module,
        current: SchemaVersion,
    ) -> Result<Vec<&Script>, MigrationError> {
        let Some(target) = self.target(module) else {
            return Ok(Vec::new());
        };
        match current {
            Some(v) if v == target => return Ok(Vec::new()),
            Some(v) if v > target => {
                return Err(MigrationError::AheadOfTarget {
                    module,
                    current: v,
                    target,
                });
            }
            _ => {}
        }
        let scripts = self.scripts(module);
        // Breadth-first search over versions finds the shortest chain; the exact script, if
        // present, is a chain of length one and so is found first.
        let mut previous: HashMap<SchemaVersion, &Script> = HashMap::new();
        let mut queue = VecDeque::from([current]);
        while let Some(at) = queue.pop_front() {
            if at == Some(target) {
                let mut path = Vec::new();
                let mut cursor = at;
                while cursor != current {
                    let Some(step) = previous.get(&cursor) else {
                        break;
                    };
                    path.push(*step);
                    cursor = step.name.from;
                }
                path.reverse();
                return Ok(path);
            }
            for script in scripts.iter().filter(|s| s.name.from == at) {
                let next = Some(script.name.to);
                if next != current && !previous.contains_key(&next) {
                    previous.insert(next, script);
                    queue.push_back(next);
                }
            }
        }
        Err(MigrationError::NoPath {
            module,
            from: version_label(current),
            to: target,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_changes_with_any_script_and_only_then() {
        let set = |files: &[(&str, &str)]| {
            MigrationSet::for_module(
                Module::Worker,
                files
                    .iter()
                    .map(|(n, c)| ((*n).to_owned(), (*c).to_owned())),
            )
            .unwrap_or_else(|e| panic!("{e}"))
        };
        let one = set(&[("migrate-None-to-1.sql", "CREATE TABLE t (x INT);")]);
        let same = set(&[("migrate-None-to-1.sql", "CREATE TABLE t (x INT);")]);
        let edited = set(&[("migrate-None-to-1.sql", "CREATE TABLE t (y INT);")]);
        let longer = set(&[
            ("migrate-None-to-1.sql", "CREATE TABLE t (x INT);"),
            ("migrate-1-to-2.sql", "DO 1;"),
        ]);
        assert_eq!(one.digest(), same.digest());
        assert_ne!(one.digest(), edited.digest());
        assert_ne!(one.digest(), longer.digest());
        assert_ne!(one.digest(), MigrationSet::default().digest());
    }

    fn set(names: &[&str]) -> MigrationSet {
        MigrationSet::from_files(
            names
                .iter()
                .map(|n| (Module::Worker, (*n).to_owned(), String::new())),
        )
        .unwrap_or_default()
    }

    fn path(set: &MigrationSet, from: SchemaVersion) -> Vec<String> {
        set.plan(Module::Worker, from)
            .map(|p| p.into_iter().map(|s| s.file_name.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn parses_smig_names() {
        let p = ScriptName::parse;
        assert_eq!(
            p("migrate-None-to-1.sql"),
            Some(ScriptName {
                from: None,
                to: 1,
                jinja: false
            })
        );
        assert_eq!(
            p("migrate-3-to-14-add-chunks.sql.jinja"),
            Some(ScriptName {
                from: Some(3),
                to: 14,
                jinja: true
            })
        );
        assert_eq!(p("migrate-1-to-2.sql.bak"), None);
        assert_eq!(p("migrate-1-to-2x.sql"), None);
        assert_eq!(p("migrate-x-to-2.sql"), None);
        assert_eq!(p("README.md"), None);
        assert_eq!(p("migrate--to-2.sql"), None);
    }

    #[test]
    fn exact_script_beats_chain() {
        let s = set(&[
            "migrate-None-to-1.sql",
            "migrate-1-to-2.sql",
            "migrate-2-to-3.sql",
            "migrate-None-to-3.sql",
        ]);
        assert_eq!(s.target(Module::Worker), Some(3));
        assert_eq!(path(&s, None), ["migrate-None-to-3.sql"]);
        assert_eq!(
            path(&s, Some(1)),
            ["migrate-1-to-2.sql", "migrate-2-to-3.sql"]
        );
        assert!(path(&s, Some(3)).is_empty());
    }

    #[test]
    fn shortest_chain_wins() {
        let s = set(&[
            "migrate-0-to-1.sql",
            "migrate-1-to-2.sql",
            "migrate-2-to-3.sql",
            "migrate-3-to-4.sql",
            "migrate-1-to-3-skip.sql",
        ]);
        assert_eq!(
            path(&s, Some(0)),
            [
                "migrate-0-to-1.sql",
                "migrate-1-to-3-skip.sql",
                "migrate-3-to-4.sql"
            ]
        );
    }

    #[test]
    fn reports_missing_path_and_ahead() {
        let s = set(&["migrate-None-to-1.sql", "migrate-2-to-3.sql"]);
        let err = s.plan(Module::Worker, Some(1)).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("module worker has no migration path from 1 to version 3")
        );
        assert!(matches!(
            s.plan(Module::Worker, Some(9)),
            Err(MigrationError::AheadOfTarget { .. })
        ));
    }

    #[test]
    fn bundled_set_has_every_module() {
        let bundled = MigrationSet::bundled().unwrap_or_default();
        for module in Module::ALL {
            assert!(
                bundled.target(module).is_some(),
                "no bundled scripts for {module}"
            );
        }
    }
}
