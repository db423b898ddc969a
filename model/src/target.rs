//! Whom a command is meant for, and under which authority: the node it names, and the epoch
//! and fencing token of the coordinator that sent it. An agent checks this before it acts.

use crate::mode::{Epoch, FencingToken};
use crate::role::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub instance: String,
    pub node: String,
    /// `None` when the sender named a role this build does not know.
    pub role: Option<Role>,
    pub epoch: Option<Epoch>,
    pub token: Option<FencingToken>,
}

impl Target {
    /// A target that names an instance and a node; a sender that leaves either out did not
    /// build it as a coordinator of this protocol does.
    pub fn is_addressed(&self) -> bool {
        !self.instance.is_empty() && !self.node.is_empty()
    }
}
