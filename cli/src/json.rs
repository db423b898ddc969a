//! JSON output: every document is a typed value serialized here, so a field can neither be
//! misspelt nor silently dropped.

use serde::Serialize;

use crate::exit::{CliError, Exit};

pub fn to_json(value: &impl Serialize) -> Result<String, CliError> {
    serde_json::to_string(value)
        .map_err(|e| CliError::new(Exit::Other, format!("cannot print JSON: {e}")))
}

/// Prints `value` as one line of JSON.
pub fn print(value: &impl Serialize) -> Result<(), CliError> {
    println!("{}", to_json(value)?);
    Ok(())
}

/// An empty wire string is "none" in JSON.
pub fn non_empty(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

/// What `-o json` prints for a command that failed before it printed its own document.
#[derive(Debug, Serialize)]
pub struct ErrorJson<'a> {
    pub error: ErrorBody<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub code: u8,
    pub message: &'a str,
}

/// `qserv version -o json`.
#[derive(Debug, Serialize)]
pub struct VersionJson<'a> {
    pub client: PeerVersion<'a>,
    pub coordinator: PeerVersion<'a>,
}

#[derive(Debug, Serialize)]
pub struct PeerVersion<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a str>,
}
