//! What a certificate of the control plane must be: X.509 v3, exactly one non-empty CN (the
//! identity) and exactly one non-empty O (the role), within its validity. The checks are pure
//! functions of the certificate, used where a peer presents one and where a binary loads its
//! own, so a wrong certificate is named as such instead of surfacing as a broken pipe, an
//! "invalid address" or an empty identity.

use std::path::Path;

use x509_parser::prelude::{FromDer, X509Certificate, X509Version};

/// What a certificate's O lets its holder do: the coordinator and agents talk to each other,
/// operators change the instance, viewers read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRole {
    Coordinator,
    Agent,
    Operator,
    Viewer,
}

impl CertRole {
    pub const ALL: [CertRole; 4] = [
        CertRole::Coordinator,
        CertRole::Agent,
        CertRole::Operator,
        CertRole::Viewer,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CertRole::Coordinator => "coordinator",
            CertRole::Agent => "agent",
            CertRole::Operator => "operator",
            CertRole::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<CertRole> {
        CertRole::ALL.into_iter().find(|r| r.name() == text)
    }

    /// A service of the control plane rather than a person.
    pub fn is_service(self) -> bool {
        matches!(self, CertRole::Coordinator | CertRole::Agent)
    }
}

impl std::fmt::Display for CertRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How many days before its end a certificate is reported as expiring.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertProblem {
    #[error("is not an X.509 certificate ({0})")]
    Unparsable(String),
    #[error(
        "is an X.509 v1 certificate; TLS here needs v3 (with extensions): issue a new one, as 'qserv certs init' does"
    )]
    NotV3,
    #[error("has no CN: the CN is the identity, so a certificate needs exactly one")]
    NoCommonName,
    #[error("has {0} CNs: the CN is the identity, so a certificate needs exactly one")]
    SeveralCommonNames(usize),
    #[error("has no O: the O is the role (operator, viewer, agent, coordinator)")]
    NoOrganization,
    #[error("has {0} O attributes: the O is the role, so a certificate needs exactly one")]
    SeveralOrganizations(usize),
    #[error(
        "has the role (O) '{0}', which is none of operator, viewer, agent, coordinator: issue one with 'qserv certs init --client NAME:ROLE'"
    )]
    UnknownRole(String),
    #[error("expired at {0}: issue a new one")]
    Expired(String),
    #[error("is valid only from {0}: check this host's clock")]
    NotYetValid(String),
}

/// What a certificate says of its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    pub identity: String,
    pub role: CertRole,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
}

impl CertFacts {
    /// Whether the certificate is valid at `now_ms`.
    pub fn check_time(&self, now_ms: i64) -> Result<(), CertProblem> {
        if now_ms > self.not_after_ms {
            return Err(CertProblem::Expired(rfc3339(self.not_after_ms)));
        }
        if now_ms < self.not_before_ms {
            return Err(CertProblem::NotYetValid(rfc3339(self.not_before_ms)));
        }
        Ok(())
    }
}

/// `ms` since the epoch as an RFC 3339 time.
pub fn rfc3339(ms: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}

/// The identity, role and validity of the DER certificate `der`, or what is wrong with it.
pub fn facts(der: &[u8]) -> Result<CertFacts, CertProblem> {
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| CertProblem::Unparsable(e.to_string()))?;
    if cert.version() != X509Version::V3 {
        return Err(CertProblem::NotV3);
    }
    let subject = cert.subject();
    let texts = |attrs: Vec<&x509_parser::x509::AttributeTypeAndValue<'_>>| -> Vec<String> {
        attrs
            .into_iter()
            .map(|a| a.as_str().unwrap_or("").trim().to_owned())
            .collect()
    };
    let names = texts(subject.iter_common_name().collect());
    let roles = texts(subject.iter_organization().collect());
    let identity = match names.as_slice() {
        [name] if !name.is_empty() => name.clone(),
        [] | [_] => return Err(CertProblem::NoCommonName),
        many => return Err(CertProblem::SeveralCommonNames(many.len())),
    };
    let role = match roles.as_slice() {
        [role] if !role.is_empty() => {
            CertRole::parse(role).ok_or_else(|| CertProblem::UnknownRole(role.clone()))?
        }
        [] | [_] => return Err(CertProblem::NoOrganization),
        many => return Err(CertProblem::SeveralOrganizations(many.len())),
    };
    let validity = cert.validity();
    Ok(CertFacts {
        identity,
        role,
        not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
        not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
    })
}

/// The first certificate of the PEM file at `path`, checked as [`facts`] does.
pub fn file_facts(path: &Path) -> Result<CertFacts, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let shown = path.display();
    let text = std::fs::read(path).map_err(|e| format!("cannot read certificate {shown}: {e}"))?;
    let first = CertificateDer::pem_slice_iter(&text)
        .next()
        .ok_or_else(|| format!("certificate {shown} holds no PEM certificate"))?
        .map_err(|e| format!("certificate {shown} cannot be read: {e}"))?;
    facts(first.as_ref()).map_err(|problem| format!("certificate {shown} {problem}"))
}

/// The end of the certificate at `path`, read again only when the file changes (for status:
/// a rotated certificate is seen at its next check).
#[derive(Debug, Default)]
pub struct ExpiryCache {
    seen: std::sync::Mutex<Option<(Option<std::time::SystemTime>, Option<i64>)>>,
}

impl ExpiryCache {
    pub fn not_after_ms(&self, path: &Path) -> Option<i64> {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut seen = self.seen.lock().ok()?;
        if let Some((at, end)) = *seen
            && at == modified
        {
            return end;
        }
        let end = file_facts(path).ok().map(|f| f.not_after_ms);
        *seen = Some((modified, end));
        end
    }
}

/// A warning when a certificate ending at `not_after_ms` ends within
/// [`EXPIRY_WARNING_DAYS`] of `now_ms` (or has ended); `whose` names it.
pub fn expiry_warning(whose: &str, not_after_ms: i64, now_ms: i64) -> Option<String> {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let left = not_after_ms - now_ms;
    if left > EXPIRY_WARNING_DAYS * DAY_MS {
        return None;
    }
    Some(if left <= 0 {
        format!(
            "the certificate of {whose} expired at {}: renew it now",
            rfc3339(not_after_ms)
        )
    } else {
        format!(
            "the certificate of {whose} expires in {} days, at {}: renew it",
            left / DAY_MS,
            rfc3339(not_after_ms)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert(dn: &[(DnType, &str)]) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (kind, value) in dn {
            params.distinguished_name.push(kind.clone(), *value);
        }
        let key = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        cert.der().to_vec()
    }

    #[test]
    fn a_certificate_needs_one_cn_and_one_o() {
        let good = facts(&cert(&[
            (DnType::CommonName, "alice"),
            (DnType::OrganizationName, "operator"),
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (good.identity.as_str(), good.role),
            ("alice", CertRole::Operator)
        );
        assert_eq!(
            facts(&cert(&[
                (DnType::CommonName, "alice"),
                (DnType::OrganizationName, "admin"),
            ])),
            Err(CertProblem::UnknownRole("admin".to_owned()))
        );
        assert_eq!(
            facts(&cert(&[(DnType::OrganizationName, "operator")])),
            Err(CertProblem::NoCommonName)
        );
        assert_eq!(
            facts(&cert(&[(DnType::CommonName, "alice")])),
            Err(CertProblem::NoOrganization)
        );
        assert_eq!(
            facts(&cert(&[
                (DnType::CommonName, "alice"),
                (DnType::OrganizationName, "viewer"),
                (DnType::CustomDnType(vec![2, 5, 4, 10]), "operator"),
            ])),
            Err(CertProblem::SeveralOrganizations(2))
        );
        assert!(matches!(
            facts(b"not a certificate"),
            Err(CertProblem::Unparsable(_))
        ));
    }

    #[test]
    fn roles_read_back_as_written() {
        for role in CertRole::ALL {
            assert_eq!(CertRole::parse(role.name()), Some(role));
        }
        assert_eq!(CertRole::parse("Operator"), None);
    }

    #[test]
    fn validity_and_expiry_warnings() {
        let day = 24 * 3600 * 1000;
        let facts = CertFacts {
            identity: "a".to_owned(),
            role: CertRole::Agent,
            not_before_ms: 10 * day,
            not_after_ms: 100 * day,
        };
        assert!(facts.check_time(50 * day).is_ok());
        assert!(matches!(
            facts.check_time(101 * day),
            Err(CertProblem::Expired(_))
        ));
        assert!(matches!(
            facts.check_time(day),
            Err(CertProblem::NotYetValid(_))
        ));
        assert_eq!(expiry_warning("agent w", 100 * day, 50 * day), None);
        let soon = expiry_warning("agent w", 100 * day, 88 * day).unwrap_or_default();
        assert!(soon.contains("expires in 12 days"), "{soon}");
        let past = expiry_warning("agent w", 100 * day, 101 * day).unwrap_or_default();
        assert!(past.contains("expired"), "{past}");
    }
}
