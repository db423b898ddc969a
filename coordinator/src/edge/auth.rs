//! Who is asking, and whether their role allows it (DESIGN §4, issue on security): with mutual
//! TLS the certificate's CN is the identity and its O the role; without TLS the CLI's
//! self-declared user is recorded, reads are served, and changes only when the coordinator was
//! started with `--insecure` (any local user could otherwise send them).

use qserv_proto::certs::CertRole;
use qserv_proto::tls::peer;

pub use crate::edge::withhold::Reader;
use tonic::{Request, Status};

#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: String,
    /// The role its certificate names; `None` in plaintext, where nobody is authenticated.
    pub role: Option<CertRole>,
    /// What the caller is shown of a database server's own words.
    pub reader: Reader,
}

impl Caller {
    pub fn role_name(&self) -> &'static str {
        self.role.map_or(UNAUTHENTICATED, CertRole::name)
    }

    pub fn describe(&self) -> String {
        format!("{} ({})", self.identity, self.role_name())
    }
}

/// Metadata naming the caller a follower vouches for, and the follower: written by the
/// follower's forward, believed here from a coordinator's certificate only.
pub const FORWARDED_IDENTITY: &str = "x-qserv-forwarded-identity";
pub const FORWARDED_ROLE: &str = "x-qserv-forwarded-role";
pub const FORWARDED_BY: &str = "x-qserv-forwarded-by";

/// The role recorded for a plaintext caller.
const UNAUTHENTICATED: &str = "unauthenticated";

/// What a request does: read state, or change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Mutate,
}

/// How the coordinator serves gRPC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Mutual TLS: roles come from certificates.
    Tls,
    /// Plaintext: changes accepted only when `insecure` (`--insecure`).
    Plaintext { insecure: bool },
}

/// The caller, role and coordinator a forwarded request names.
fn forwarded<T>(request: &Request<T>) -> Option<(String, String, String)> {
    let get = |key: &str| {
        request
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .map(str::to_owned)
    };
    Some((
        get(FORWARDED_IDENTITY)?,
        get(FORWARDED_ROLE)?,
        get(FORWARDED_BY)?,
    ))
}

fn reader_of(role: Option<CertRole>) -> Reader {
    if role == Some(CertRole::Operator) {
        Reader::Operator
    } else {
        Reader::Viewer
    }
}

/// The caller of `request`, checked against what `operation` needs.
pub fn authorize<T>(
    request: &Request<T>,
    transport: Transport,
    operation: &str,
    access: Access,
) -> Result<Caller, Status> {
    if let Transport::Plaintext { insecure } = transport {
        if access == Access::Mutate && !insecure {
            return Err(Status::permission_denied(format!(
                "this coordinator takes changes only over TLS and refuses to {operation} in plaintext: start it with --tls-cert, --tls-key and --tls-ca (made by 'qserv certs init'), or with --insecure on a host where every local user is trusted"
            )));
        }
        let user = request
            .metadata()
            .get("x-qserv-user")
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() <= 128)
            .unwrap_or("unknown");
        let identity = match request.remote_addr() {
            Some(addr) => format!("{user} from {}", addr.ip()),
            None => user.to_owned(),
        };
        // A follower's forward names the caller it took the request from.
        let identity =
            forwarded(request).map_or(identity, |(who, _, by)| format!("{who} via {by}"));
        // In plaintext only a coordinator that takes changes from anyone (--insecure) treats
        // everyone as an operator.
        return Ok(Caller {
            identity,
            role: None,
            reader: if insecure {
                Reader::Operator
            } else {
                Reader::Viewer
            },
        });
    }
    // The TLS handshake already required a certificate signed by the CA.
    let peer = match peer(request) {
        Some(Ok(peer)) => peer,
        Some(Err(problem)) => {
            return Err(Status::unauthenticated(format!(
                "the client certificate {problem}"
            )));
        }
        None => {
            return Err(Status::unauthenticated(
                "a client certificate signed by the instance's CA is required",
            ));
        }
    };
    let caller = match forwarded(request) {
        // Only another coordinator of this instance vouches for a caller.
        Some((who, role, by)) if peer.role == CertRole::Coordinator => {
            let role = CertRole::parse(&role);
            Caller {
                identity: format!("{who} via {by}"),
                reader: reader_of(role),
                role,
            }
        }
        _ => Caller {
            identity: peer.identity,
            reader: reader_of(Some(peer.role)),
            role: Some(peer.role),
        },
    };
    let allowed = match caller.role {
        Some(CertRole::Operator) => true,
        Some(CertRole::Viewer) => access == Access::Read,
        Some(CertRole::Coordinator | CertRole::Agent) | None => false,
    };
    if allowed {
        Ok(caller)
    } else {
        Err(Status::permission_denied(format!(
            "permission denied: {} may not {operation}",
            caller.describe()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(pairs: &[(&'static str, &str)]) -> Request<()> {
        let mut request = Request::new(());
        for (key, value) in pairs {
            if let Ok(value) = value.parse() {
                request.metadata_mut().insert(*key, value);
            }
        }
        request
    }

    #[test]
    fn a_forwarded_change_names_the_caller_and_the_follower() {
        let forwarded = request(&[
            (FORWARDED_IDENTITY, "alice from 10.0.0.7"),
            (FORWARDED_ROLE, "unauthenticated"),
            (FORWARDED_BY, "ctl-2"),
        ]);
        let plaintext = Transport::Plaintext { insecure: true };
        let caller = authorize(&forwarded, plaintext, "up", Access::Mutate)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(caller.identity, "alice from 10.0.0.7 via ctl-2");
        // Without all three keys it is the caller's own request.
        let partial = request(&[("x-qserv-user", "bob"), (FORWARDED_IDENTITY, "alice")]);
        let caller =
            authorize(&partial, plaintext, "up", Access::Mutate).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(caller.identity, "bob");
    }

    #[test]
    fn plaintext_changes_need_insecure_even_when_forwarded() {
        let forwarded = request(&[
            (FORWARDED_IDENTITY, "alice"),
            (FORWARDED_ROLE, "operator"),
            (FORWARDED_BY, "ctl-2"),
        ]);
        let refused = authorize(
            &forwarded,
            Transport::Plaintext { insecure: false },
            "up",
            Access::Mutate,
        );
        assert!(refused.is_err_and(|s| s.code() == tonic::Code::PermissionDenied));
    }
}
