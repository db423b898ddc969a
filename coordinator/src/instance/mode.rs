//! The instance's mode (DESIGN §2) and the two counters that order commands: the epoch, which
//! an install or adoption raises, and the fencing token of a leader's term. Absence is `None`:
//! the wire's 0 never stands for "none" past the edge.

pub use qserv_model::{Epoch, FencingToken, Mode};
