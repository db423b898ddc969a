//! The instance's mode (DESIGN §2) and the two counters that order commands: the epoch, which
//! an install or adoption raises, and the fencing token of a leader's term. Absence is `None`:
//! the wire's 0 never stands for "none" past the edge.

use std::fmt;

use crate::UnknownName;
use serde::{Deserialize, Serialize};

/// Where an instance is in its life; the coordinator's guard table is written over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Uninstalled,
    Installing,
    Maintenance,
    Normal,
}

impl Mode {
    pub const ALL: [Mode; 4] = [
        Mode::Uninstalled,
        Mode::Installing,
        Mode::Maintenance,
        Mode::Normal,
    ];

    /// The word operators read and the store keeps.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Uninstalled => "uninstalled",
            Mode::Installing => "installing",
            Mode::Maintenance => "maintenance",
            Mode::Normal => "normal",
        }
    }

    pub fn parse(value: &str) -> Result<Mode, UnknownName> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == value)
            .ok_or_else(|| UnknownName {
                kind: "mode",
                value: value.to_owned(),
                expected: "uninstalled, installing, maintenance, normal",
            })
    }

    /// The word for a mode that may be absent: what a node that was never given one reports.
    pub fn name_or_unknown(mode: Option<Mode>) -> &'static str {
        mode.map_or("unknown", Mode::name)
    }

    /// An instance exists on its nodes: install has begun and no delete has ended it.
    pub fn is_installed(self) -> bool {
        !matches!(self, Mode::Uninstalled)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

macro_rules! counter {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// The value of a wire or store field, where 0 means there is none.
            pub fn from_wire(value: u64) -> Option<$name> {
                (value > 0).then_some($name(value))
            }

            /// The wire's form of a value that may be absent.
            pub fn to_wire(value: Option<$name>) -> u64 {
                value.map_or(0, |v| v.0)
            }

            pub fn get(self) -> u64 {
                self.0
            }

        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

counter!(
    /// Raised by every install and adoption; an agent refuses commands of a lower one.
    Epoch
);
counter!(
    /// A leader's term; an agent refuses commands under a lower one than it has taken.
    FencingToken
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_on_the_wire_is_no_counter() {
        assert_eq!(Epoch::from_wire(0), None);
        assert_eq!(Epoch::to_wire(None), 0);
        let seven = Epoch::from_wire(7);
        assert_eq!(seven.map(Epoch::get), Some(7));
        assert_eq!(Epoch::to_wire(seven), 7);
        assert_eq!(FencingToken::from_wire(3).map(FencingToken::get), Some(3));
        assert!(Epoch::from_wire(2) < Epoch::from_wire(3));
        assert!(None < Epoch::from_wire(1), "no epoch is below every epoch");
    }
}
