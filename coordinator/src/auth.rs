//! Who is asking, and whether their role allows it (DESIGN §4, issue on security): with mutual
//! TLS the certificate's CN is the identity and its O the role; without TLS (loopback or an
//! explicit --insecure) the CLI's self-declared user is recorded and everything is allowed.

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

/// The caller of `request`, checked against what `operation` needs.
pub fn authorize<T>(
    request: &Request<T>,
    tls_on: bool,
    operation: &str,
    access: Access,
) -> Result<Caller, Status> {
    if !tls_on {
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
