//! Versions of the services' configuration templates (DESIGN §17), as the store keeps them.

use qserv_model::ServiceName;

/// One stored version of a service's template, without its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigVersion {
    pub service: ServiceName,
    /// From 1, per service.
    pub version: u32,
    /// Of the template's text, lower-case hex.
    pub sha256: String,
    /// Who stored it.
    pub by: String,
    pub at_ms: i64,
    pub message: String,
}

/// A version about to be stored; the store gives it its number.
#[derive(Debug, Clone, Copy)]
pub struct NewConfigVersion<'a> {
    pub service: &'a ServiceName,
    pub content: &'a str,
    pub sha256: &'a str,
    pub by: &'a str,
    pub at_ms: i64,
    pub message: &'a str,
}
