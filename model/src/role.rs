//! What a node's database serves.

use qserv_migrations::Module;
use serde::{Deserialize, Serialize};

use crate::UnknownName;

/// Each role owns one module's database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Czar,
    Worker,
    Repl,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Czar, Role::Worker, Role::Repl];

    /// Czars run queries and the repl node ingests: the roles whose services carry work that
    /// stopping them would break.
    pub fn carries_work(self) -> bool {
        matches!(self, Role::Czar | Role::Repl)
    }

    pub fn module(self) -> Module {
        match self {
            Role::Czar => Module::Czar,
            Role::Worker => Module::Worker,
            Role::Repl => Module::Repl,
        }
    }

    /// The word of specs, flags, tables and JSON (the module's name).
    pub fn name(self) -> &'static str {
        self.module().name()
    }

    /// The word for a role that may be absent: one this build does not know.
    pub fn name_or_unknown(role: Option<Role>) -> &'static str {
        role.map_or("unknown", Role::name)
    }

    pub fn parse(value: &str) -> Result<Role, UnknownName> {
        Role::ALL
            .into_iter()
            .find(|r| r.name() == value)
            .ok_or_else(|| UnknownName {
                kind: "role",
                value: value.to_owned(),
                expected: "czar, worker, repl",
            })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()).ok(), Some(role));
            assert_eq!(role.to_string(), role.name());
        }
        assert!(Role::parse("master").is_err());
        assert!(Role::parse("").is_err());
    }
}
