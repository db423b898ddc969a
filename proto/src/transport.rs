//! Channels and servers with the timing every hop of the control plane relies on.
//!
//! HTTP/2 keepalive pings are what turn a silent network loss (a cable pulled, a host frozen, a
//! container disconnected) into a broken stream: without them a `WatchStatus` stream can sit on a
//! dead TCP connection for minutes. A ping goes out once a connection has been silent for the
//! interval, and an unanswered one ends it after the timeout: a frozen peer is seen within
//! 850 ms. A false alarm needs a peer silent for the whole timeout, which on a host whose CPUs
//! are saturated (the scheduler's latency is tens of milliseconds) does not happen; the
//! `foundation` benchmark counts them under such a load.

use std::time::Duration;

use tonic::transport::{Endpoint, Server};

/// How long a connection may be silent before it is pinged.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(250);
/// How long a ping may go unanswered before the connection is declared dead.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(600);
/// The largest message a peer may send: specs and migration sets are far smaller; anything
/// bigger is refused before it is decoded.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How long establishing a TCP connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long a whole connection may take to set up, the TLS handshake included. A frozen peer's
/// kernel still completes the TCP handshake from its listen backlog; only this bounds the wait
/// for a ClientHello nobody answers.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum BadAddress {
    #[error("invalid address '{url}': {reason}; expected a URL such as http://127.0.0.1:7080")]
    Address { url: String, reason: String },
    #[error(
        "cannot use the TLS settings for '{url}': {reason}; check --tls-cert, --tls-key and --tls-ca"
    )]
    Tls { url: String, reason: String },
}

/// An endpoint for a peer of the control plane, with keepalive and connect timeouts set.
pub fn endpoint(url: &str) -> Result<Endpoint, BadAddress> {
    let bad = |reason: String| BadAddress::Address {
        url: url.to_owned(),
        reason,
    };
    if let Some(userinfo) = crate::names::url_userinfo(url) {
        // Never echoed: it may be a password.
        return Err(BadAddress::Address {
            url: url.replacen(&format!("{userinfo}@"), "…@", 1),
            reason: "it holds user information (user:password@); peers are known by certificate, never by a password in an address: remove it".to_owned(),
        });
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(bad("the scheme must be http:// or https://".to_owned()));
    }
    let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|e| bad(e.to_string()))?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// A channel that connects on first use and again whenever its connection breaks, each time
/// within [`HANDSHAKE_TIMEOUT`] including TLS. (tonic's own lazy channel bounds the TCP connect
/// alone, so a request behind a handshake that never ends waited for ever.)
pub fn lazy_channel(endpoint: Endpoint) -> tonic::transport::Channel {
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
    endpoint
        .connect_timeout(HANDSHAKE_TIMEOUT)
        .connect_with_connector_lazy(tcp)
}

/// The connections a server accepts on `listener`, with Nagle's algorithm off. A server fed its
/// own listener does not apply `Server::tcp_nodelay`; without this, every small response on a
/// kept-alive connection waited ~40 ms for the peer's delayed ACK.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// An endpoint that speaks TLS when `tls` is given. The scheme must agree with it: `https://`
/// needs a TLS configuration, and a TLS-configured binary never falls back to plaintext.
pub fn secure_endpoint(
    url: &str,
    tls: Option<&tonic::transport::ClientTlsConfig>,
) -> Result<Endpoint, BadAddress> {
    let endpoint = endpoint(url)?;
    let bad = |reason: &str| BadAddress::Address {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    match (url.starts_with("https://"), tls) {
        (true, Some(tls)) => endpoint
            .tls_config(tls.clone())
            .map_err(|e| BadAddress::Tls {
                url: url.to_owned(),
                reason: describe_error(&e),
            }),
        (false, None) => Ok(endpoint),
        (true, None) => Err(bad("https:// needs --tls-cert, --tls-key and --tls-ca")),
        (false, Some(_)) => Err(bad(
            "TLS is configured, so plaintext http:// is refused; use https://",
        )),
    }
}

/// A gRPC server builder that also pings its clients, so streams to vanished peers are dropped.
pub fn server() -> Server {
    Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
}

/// An error with its chain of causes, e.g. `transport error: tcp connect error: Connection
/// refused (os error 111)`; tonic's own `Display` stops at the first, least useful, level.
pub fn describe_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Metadata naming the instance a request is meant for (DESIGN §14): a coordinator of another
/// instance refuses a change that carries it.
pub const INSTANCE_METADATA: &str = "x-qserv-instance";

/// Metadata on a refusal that applied nothing because the coordinators are between leaders (no
/// lease held, the leader unreachable or just deposed): the same request may be sent again.
const BETWEEN_LEADERS_KEY: &str = "x-qserv-between-leaders";

/// A refusal of a change that applied nothing while the leadership moves (see
/// [`is_between_leaders`]).
pub fn between_leaders(message: impl Into<String>) -> tonic::Status {
    let mut status = tonic::Status::unavailable(message);
    status.metadata_mut().insert(
        BETWEEN_LEADERS_KEY,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    status
}

/// Whether `status` is a coordinator's refusal that applied nothing because the leadership moves:
/// sending the same change again is safe. A transport failure is not one: the change may have
/// arrived.
pub fn is_between_leaders(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::Unavailable && status.metadata().contains_key(BETWEEN_LEADERS_KEY)
}

/// Whether a failed call was answered by its peer (a status the peer sent, even a refusal),
/// rather than lost on the way: tonic carries a transport failure (a refused or reset
/// connection, a broken pipe, a keep-alive that timed out) as the status's source.
pub fn answered(status: &tonic::Status) -> bool {
    use std::error::Error as _;
    status.source().is_none()
}

/// A gRPC status as one line: its message and the transport causes beneath it.
pub fn describe_status(status: &tonic::Status) -> String {
    use std::error::Error as _;
    let mut text = if status.message().is_empty() {
        format!("{:?}", status.code())
    } else {
        status.message().to_owned()
    };
    if let Some(source) = status.source() {
        let causes = describe_error(source);
        if !text.contains(&causes) {
            text.push_str(": ");
            text.push_str(&causes);
        }
    }
    text
}

/// A port on 127.0.0.1 that is free now and was never handed out before by this process (for
/// the playground and the test harness, which start many servers at once).
///
/// Ports come from below the kernel's ephemeral range (32768 and up): a port picked there can be
/// taken by any outgoing connection (an agent's, the coordinator's) before the server that was
/// meant to listen on it binds it. Each process starts at its own offset so concurrent
/// processes rarely meet.
pub fn free_local_port() -> Option<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    (0..SPAN).find_map(|_| {
        let port = u16::try_from(LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN).ok()?;
        std::net::TcpListener::bind(("127.0.0.1", port))
            .ok()
            .map(|_| port)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_addresses_without_scheme() {
        let err = endpoint("127.0.0.1:7080").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid address '127.0.0.1:7080': the scheme must be http:// or https://; \
                 expected a URL such as http://127.0.0.1:7080"
            )
        );
        assert!(endpoint("http://127.0.0.1:7080").is_ok());
    }

    #[test]
    fn an_address_with_user_information_is_refused_without_echoing_it() {
        let err = endpoint("https://admin:hunter2@10.0.0.5:7080")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("user information"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains("admin"), "{err}");
    }
}
