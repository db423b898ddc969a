//! `qserv certs init`: a small CA and the certificates of a coordinator, its agents and its
//! operators, for small sites, the playground and the docker rig (large sites bring their PKI).
//!
//! Identities follow the Kubernetes convention: subject CN is the identity, O the role.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use qserv_proto::certs::CertRole;
use serde::Serialize;

use crate::Output;
use crate::exit::{CliError, Exit};

fn fail(message: impl Into<String>) -> CliError {
    CliError::new(Exit::Other, message)
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::new(Exit::Usage, message)
}

/// How long what `certs init` issues is valid, unless `--days` says: people's certificates a
/// year, services' five, the CA ten (and always longer than anything it signs).
const CLIENT_DAYS: u32 = 365;
const SERVICE_DAYS: u32 = 5 * 365;
const CA_DAYS: u32 = 10 * 365;

/// What `certs init` is asked to issue.
#[derive(Debug)]
pub struct Issue<'a> {
    pub coordinator: &'a str,
    pub agents: &'a [String],
    pub clients: &'a [String],
    pub days: Option<u32>,
}

/// One written certificate, as reported.
#[derive(Debug, Serialize)]
struct Issued {
    file: String,
    key: String,
    identity: String,
    role: &'static str,
    not_after: String,
}

#[derive(Debug, Serialize)]
struct InitJson {
    dir: String,
    ca: String,
    ca_not_after: String,
    certificates: Vec<Issued>,
}

/// The validity period starting an hour ago (for clocks a little behind) and lasting `days`.
fn validity(params: &mut CertificateParams, days: u32) -> String {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    params
        .not_after
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Writes `text` to `dir/name`; keys are created 0600 from the start, never loosened later.
fn write(dir: &Path, name: &str, text: &str, secret: bool) -> Result<(), CliError> {
    let path = dir.join(name);
    let mut options = std::fs::OpenOptions::new();
    options
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if secret { 0o600 } else { 0o644 });
    let mut file = options
        .open(&path)
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))
}

fn hosts(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A certificate for `identity` in `role`, valid `days`: (certificate PEM, key PEM, end).
fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    identity: &str,
    role: CertRole,
    sans: Vec<String>,
    server: bool,
    days: u32,
) -> Result<(String, String, String), CliError> {
    let mut params = CertificateParams::new(sans)
        .map_err(|e| usage(format!("invalid host name for {identity}: {e}")))?;
    let not_after = validity(&mut params, days);
    params.distinguished_name.push(DnType::CommonName, identity);
    params
        .distinguished_name
        .push(DnType::OrganizationName, role.name());
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = if server {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    let key = KeyPair::generate().map_err(|e| fail(format!("cannot generate a key: {e}")))?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|e| fail(format!("cannot sign the certificate of {identity}: {e}")))?;
    Ok((cert.pem(), key.serialize_pem(), not_after))
}

pub fn init(dir: &Path, issue: &Issue<'_>, output: Output) -> Result<(), CliError> {
    let mut parsed_agents = Vec::new();
    for spec in issue.agents {
        let Some((name, list)) = spec.split_once('=') else {
            return Err(usage(format!("--agent '{spec}' must be NAME=HOST[,HOST…]")));
        };
        qserv_proto::names::validate_name("agent", name).map_err(|e| usage(e.to_string()))?;
        parsed_agents.push((name.to_owned(), hosts(list)));
    }
    let mut parsed_clients = Vec::new();
    let defaults = ["operator:operator".to_owned(), "viewer:viewer".to_owned()];
    for spec in if issue.clients.is_empty() {
        &defaults[..]
    } else {
        issue.clients
    } {
        let Some((name, role)) = spec.split_once(':') else {
            return Err(usage(format!("--client '{spec}' must be NAME:ROLE")));
        };
        qserv_proto::names::validate_name("client", name).map_err(|e| usage(e.to_string()))?;
        let Some(role) = CertRole::parse(role) else {
            let all: Vec<&str> = CertRole::ALL.iter().map(|r| r.name()).collect();
            return Err(usage(format!(
                "--client '{spec}': role must be one of {}",
                all.join(", ")
            )));
        };
        parsed_clients.push((name.to_owned(), role));
    }
    if dir.join("ca.key").exists() {
        return Err(CliError::new(
            Exit::Refused,
            format!(
                "{} already holds a CA (ca.key); use another directory or remove it first",
                dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let client_days = issue.days.unwrap_or(CLIENT_DAYS);
    let service_days = issue.days.unwrap_or(SERVICE_DAYS);

    let ca_key = KeyPair::generate().map_err(|e| fail(format!("cannot generate a key: {e}")))?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "qserv control plane CA");
    ca.distinguished_name
        .push(DnType::OrganizationName, "qserv control plane");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_not_after = validity(&mut ca, CA_DAYS.max(service_days.max(client_days) + 1));
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(|e| fail(format!("cannot create the CA: {e}")))?;
    write(dir, "ca.pem", &ca_cert.pem(), false)?;
    write(dir, "ca.key", &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca, ca_key);

    let mut wanted: Vec<(String, String, CertRole, Vec<String>, bool, u32)> = vec![(
        "coordinator".to_owned(),
        "coordinator".to_owned(),
        CertRole::Coordinator,
        hosts(issue.coordinator),
        true,
        service_days,
    )];
    for (name, sans) in parsed_agents {
        wanted.push((
            format!("agent-{name}"),
            name,
            CertRole::Agent,
            sans,
            true,
            service_days,
        ));
    }
    for (name, role) in parsed_clients {
        let days = if role.is_service() {
            service_days
        } else {
            client_days
        };
        wanted.push((name.clone(), name, role, Vec::new(), false, days));
    }
    let mut issued = Vec::new();
    for (file, identity, role, sans, server, days) in wanted {
        let (cert, key, not_after) = leaf(&issuer, &identity, role, sans, server, days)?;
        write(dir, &format!("{file}.pem"), &cert, false)?;
        write(dir, &format!("{file}.key"), &key, true)?;
        issued.push(Issued {
            file: format!("{file}.pem"),
            key: format!("{file}.key"),
            identity,
            role: role.name(),
            not_after,
        });
    }
    let report = InitJson {
        dir: dir.display().to_string(),
        ca: "ca.pem".to_owned(),
        ca_not_after,
        certificates: issued,
    };
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| fail(e.to_string()))?
        ),
        Output::Table => {
            println!("certificates written to {}", report.dir);
            for cert in &report.certificates {
                println!(
                    "  {} ({}, {}): valid until {}",
                    cert.file, cert.identity, cert.role, cert.not_after
                );
            }
            println!("  ca.pem: valid until {}", report.ca_not_after);
        }
    }
    Ok(())
}
