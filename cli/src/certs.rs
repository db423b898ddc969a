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

use crate::exit::{CliError, Exit};

fn fail(message: impl Into<String>) -> CliError {
    CliError::new(Exit::Other, message)
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::new(Exit::Usage, message)
}

const ROLES: [&str; 4] = ["coordinator", "agent", "operator", "viewer"];

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

fn leaf(
    issuer: &Issuer<'_, KeyPair>,
    identity: &str,
    role: &str,
    sans: Vec<String>,
    server: bool,
) -> Result<(String, String), CliError> {
    let mut params = CertificateParams::new(sans)
        .map_err(|e| usage(format!("invalid host name for {identity}: {e}")))?;
    params.distinguished_name.push(DnType::CommonName, identity);
    params
        .distinguished_name
        .push(DnType::OrganizationName, role);
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
    Ok((cert.pem(), key.serialize_pem()))
}

pub fn init(
    dir: &Path,
    coordinator: &str,
    agents: &[String],
    clients: &[String],
) -> Result<(), CliError> {
    let mut parsed_agents = Vec::new();
    for spec in agents {
        let Some((name, list)) = spec.split_once('=') else {
            return Err(usage(format!("--agent '{spec}' must be NAME=HOST[,HOST…]")));
        };
        qserv_proto::names::validate_name("agent", name).map_err(|e| usage(e.to_string()))?;
        parsed_agents.push((name.to_owned(), hosts(list)));
    }
    let mut parsed_clients = Vec::new();
    let defaults = ["operator:operator".to_owned(), "viewer:viewer".to_owned()];
    for spec in if clients.is_empty() {
        &defaults[..]
    } else {
        clients
    } {
        let Some((name, role)) = spec.split_once(':') else {
            return Err(usage(format!("--client '{spec}' must be NAME:ROLE")));
        };
        qserv_proto::names::validate_name("client", name).map_err(|e| usage(e.to_string()))?;
        if !ROLES.contains(&role) {
            return Err(usage(format!(
                "--client '{spec}': role must be one of {}",
                ROLES.join(", ")
            )));
        }
        parsed_clients.push((name.to_owned(), role.to_owned()));
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

    let ca_key = KeyPair::generate().map_err(|e| fail(format!("cannot generate a key: {e}")))?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "qserv control plane CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca
        .self_signed(&ca_key)
        .map_err(|e| fail(format!("cannot create the CA: {e}")))?;
    write(dir, "ca.pem", &ca_cert.pem(), false)?;
    write(dir, "ca.key", &ca_key.serialize_pem(), true)?;
    let issuer = Issuer::new(ca, ca_key);

    let (cert, key) = leaf(
        &issuer,
        "coordinator",
        "coordinator",
        hosts(coordinator),
        true,
    )?;
    write(dir, "coordinator.pem", &cert, false)?;
    write(dir, "coordinator.key", &key, true)?;
    for (name, sans) in parsed_agents {
        let (cert, key) = leaf(&issuer, &name, "agent", sans, true)?;
        write(dir, &format!("agent-{name}.pem"), &cert, false)?;
        write(dir, &format!("agent-{name}.key"), &key, true)?;
    }
    for (name, role) in parsed_clients {
        let (cert, key) = leaf(&issuer, &name, &role, Vec::new(), false)?;
        write(dir, &format!("{name}.pem"), &cert, false)?;
        write(dir, &format!("{name}.key"), &key, true)?;
    }
    println!("certificates written to {}", dir.display());
    Ok(())
}
