//! Certificates: what `certs init` issues and for how long, certificates the control plane
//! refuses (expired, no CN, several O) named as such, and status warning before one ends.

use std::path::Path;
use std::time::Duration;

use qserv_integration::{Cluster, THREE_NODES, run_cli, wait_for};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};

const LIMIT: Duration = Duration::from_secs(60);

/// The CA `certs init` wrote into `pki`, to sign with.
fn ca(pki: &Path) -> Issuer<'static, KeyPair> {
    let key = std::fs::read_to_string(pki.join("ca.key")).unwrap_or_else(|e| panic!("{e}"));
    let key = KeyPair::from_pem(&key).unwrap_or_else(|e| panic!("{e}"));
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "qserv control plane CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "qserv control plane");
    Issuer::new(params, key)
}

/// A client certificate signed by the CA of `pki`, written as `pki/NAME.pem` and `.key`.
fn client(pki: &Path, name: &str, dn: &[(DnType, &str)], days: i64) {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    for (kind, value) in dn {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(30);
    params.not_after = now + time::Duration::days(days);
    let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let cert = params
        .signed_by(&key, &ca(pki))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(pki.join(format!("{name}.pem")), cert.pem()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(pki.join(format!("{name}.key")), key.serialize_pem())
        .unwrap_or_else(|e| panic!("{e}"));
}

fn as_client(
    cluster: &Cluster,
    pki: &Path,
    name: &str,
    command: &[&str],
) -> qserv_integration::CliOutput {
    let flags = [
        format!("--tls-cert={}", pki.join(format!("{name}.pem")).display()),
        format!("--tls-key={}", pki.join(format!("{name}.key")).display()),
        format!("--tls-ca={}", pki.join("ca.pem").display()),
    ];
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend_from_slice(command);
    qserv_integration::run_cli_within(&cluster.coordinator.url(), &args, LIMIT)
}

#[test]
fn certificates_are_issued_checked_and_warned_of_before_they_end() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pki = dir.path().join("pki");
    let out = run_cli(
        "http://127.0.0.1:1",
        &[
            "-o",
            "json",
            "certs",
            "init",
            &format!("--dir={}", pki.display()),
            "--coordinator=127.0.0.1,localhost",
            "--agent=czar-0=127.0.0.1",
            "--agent=worker-1=127.0.0.1",
            "--agent=repl-0=127.0.0.1",
            "--days=20",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let issued = out.json();
    let ends: Vec<std::time::SystemTime> = issued["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| humantime::parse_rfc3339(c["not_after"].as_str()?).ok())
        .collect();
    assert_eq!(ends.len(), 6, "{issued}");
    for end in &ends {
        let left = end
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        assert!(
            left > Duration::from_secs(19 * 86_400) && left <= Duration::from_secs(20 * 86_400),
            "--days 20: {left:?}"
        );
    }

    let cluster = Cluster::start_secure("dr1", &THREE_NODES, &pki);
    cluster.wait_ready();
    let status = wait_for("warnings for every certificate", LIMIT, || {
        let status = cluster.coordinator.status();
        (status["warnings"].as_array()?.len() == 4).then_some(status)
    });
    let warnings = status["warnings"].to_string();
    for whose in [
        "coordinator",
        "agent czar-0",
        "agent worker-1",
        "agent repl-0",
    ] {
        assert!(warnings.contains(whose), "{whose}: {warnings}");
    }
    let table = cluster.coordinator.cli(&["status"]).stdout;
    assert!(
        table.contains("warning: the certificate of agent worker-1 expires in"),
        "{table}"
    );

    // Certificates the control plane refuses, named as such (exit 3), before anything is sent.
    client(
        &pki,
        "expired",
        &[
            (DnType::CommonName, "alice"),
            (DnType::OrganizationName, "operator"),
        ],
        -1,
    );
    client(
        &pki,
        "nameless",
        &[(DnType::OrganizationName, "operator")],
        30,
    );
    client(
        &pki,
        "two-roles",
        &[
            (DnType::CommonName, "mallory"),
            (DnType::OrganizationName, "viewer"),
            // A second O: rcgen keeps one value per type, so by its OID.
            (DnType::CustomDnType(vec![2, 5, 4, 10]), "operator"),
        ],
        30,
    );
    for (name, says) in [
        ("expired", "expired"),
        ("nameless", "no CN"),
        ("two-roles", "2 O attributes"),
    ] {
        let out = as_client(&cluster, &pki, name, &["status"]);
        assert_eq!(out.code, 3, "{name}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{name}: {}", out.stderr);
    }

    // The coordinator refuses the two-role certificate too, when a client presents it anyway.
    let url = cluster.coordinator.url();
    let refused = std::thread::spawn({
        let pki = pki.clone();
        move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            runtime.block_on(async move {
                let files = qserv_proto::tls::TlsFiles {
                    cert: pki.join("two-roles.pem"),
                    key: pki.join("two-roles.key"),
                    ca: pki.join("ca.pem"),
                };
                let tls = files.client().unwrap_or_else(|e| panic!("{e}"));
                let endpoint = qserv_proto::transport::secure_endpoint(&url, Some(&tls))
                    .unwrap_or_else(|e| panic!("{e}"));
                let channel = endpoint.connect().await.unwrap_or_else(|e| panic!("{e}"));
                match qserv_proto::v1::coordinator_client::CoordinatorClient::new(channel)
                    .down(qserv_proto::v1::DownRequest::default())
                    .await
                {
                    Ok(_) => "accepted".to_owned(),
                    Err(status) => format!("{:?}: {}", status.code(), status.message()),
                }
            })
        }
    })
    .join()
    .unwrap_or_default();
    assert!(
        refused.starts_with("Unauthenticated") && refused.contains("2 O attributes"),
        "{refused}"
    );
}
