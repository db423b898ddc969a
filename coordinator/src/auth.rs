//! Who is asking, and whether their role allows it (DESIGN §4, issue on security): with mutual
//! TLS the certificate's CN is the identity and its O the role; without TLS the CLI's
//! self-declared user is recorded, reads are served, and changes only when the coordinator was
//! started with `--insecure` (any local user could otherwise send them).

use qserv_proto::tls::peer;
use tonic::{Request, Status};

#[derive(Debug, Clone)]
pub struct Caller {
    pub identity: String,
    pub role: String,
}

impl Caller {
    pub fn describe(&self) -> String {
        format!("{} ({})", self.identity, self.role)
    }
}

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
        return Ok(Caller {
            identity,
            role: "unauthenticated".to_owned(),
        });
    }
    // The TLS handshake already required a certificate signed by the CA.
    let Some(peer) = peer(request) else {
        return Err(Status::unauthenticated(
            "a client certificate signed by the instance's CA is required",
        ));
    };
    let caller = Caller {
        identity: peer.identity,
        role: peer.role,
    };
    let allowed = match caller.role.as_str() {
        "operator" => true,
        "viewer" => access == Access::Read,
        _ => false,
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
