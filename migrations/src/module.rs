//! The three Qserv modules that carry a schema, and the database each lives in.

use std::fmt;

/// A Qserv module whose database the control plane migrates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Module {
    Czar,
    Worker,
    Repl,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown module '{0}': expected czar, worker or repl")]
pub struct UnknownModule(pub String);

impl Module {
    pub const ALL: [Module; 3] = [Module::Czar, Module::Worker, Module::Repl];

    /// The folder name in a migrations directory, also the module's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Module::Czar => "czar",
            Module::Worker => "worker",
            Module::Repl => "repl",
        }
    }

    /// The database smig migrates for this module.
    pub fn database(self) -> &'static str {
        match self {
            Module::Czar => "qservMeta",
            Module::Worker => "qservw_worker",
            Module::Repl => "qservReplica",
        }
    }

    pub fn parse(value: &str) -> Result<Module, UnknownModule> {
        Module::ALL
            .into_iter()
            .find(|m| m.name() == value)
            .ok_or_else(|| UnknownModule(value.to_owned()))
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
