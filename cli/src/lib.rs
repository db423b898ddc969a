//! What the `qserv` command line parses from outside the process, as a library so that its
//! parsers can be fuzzed.

pub mod config;
