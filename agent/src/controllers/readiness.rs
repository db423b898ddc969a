//! Readiness probes of a node's services: a TCP connect, or an HTTP `GET` that answers 2xx.
//! Each probe is bounded in time; its error says what failed, in words an operator can act on.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::node::services::Readiness;

/// How long one probe may take: a service that needs longer to answer is not ready.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The status line is all a probe reads; a longer one is not HTTP.
const MAX_STATUS_LINE: usize = 1024;

/// `Ok` when the service answers as its probe asks; `Err` says why not. `Running` has no probe
/// and always answers.
pub async fn probe(ready: &Readiness) -> Result<(), String> {
    let attempt = async {
        match ready {
            Readiness::Running => Ok(()),
            Readiness::Tcp { host, port } => connect(host, *port).await.map(drop),
            Readiness::Http { host, port, path } => http_get(host, *port, path).await,
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())))
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))
}

async fn http_get(host: &str, port: u16, path: &str) -> Result<(), String> {
    let mut stream = connect(host, port).await?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the probe to {host}:{port}: {e}"))?;
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < MAX_STATUS_LINE {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("cannot read the answer of {host}:{port}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let status = status_code(&head)
        .ok_or_else(|| format!("http://{host}:{port}{path} did not answer HTTP"))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("http://{host}:{port}{path} answered {status}"))
    }
}

/// The status code of `HTTP/1.x NNN …`.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut words = text.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_status_code_of_an_http_answer() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\nx: y\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.0 503 Busy\r\n"), Some(503));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 \xff\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_not_ready_and_an_open_one_is() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
        let Ok(listener) = listener else {
            panic!("cannot listen on loopback")
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let open = Readiness::Tcp {
            host: "127.0.0.1".to_owned(),
            port,
        };
        assert_eq!(probe(&open).await, Ok(()));
        drop(listener);
        let closed = probe(&open).await;
        assert!(closed.is_err_and(|e| e.contains("cannot connect")));
    }

    #[tokio::test]
    async fn an_http_probe_wants_2xx() {
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("cannot listen on loopback")
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let server = tokio::spawn(async move {
            for answer in [
                "HTTP/1.1 503 Busy\r\n\r\n",
                "HTTP/1.1 204 No Content\r\n\r\n",
            ] {
                if let Ok((mut s, _)) = listener.accept().await {
                    let mut buf = [0u8; 512];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(answer.as_bytes()).await;
                }
            }
        });
        let ready = Readiness::Http {
            host: "127.0.0.1".to_owned(),
            port,
            path: "/meta/version".to_owned(),
        };
        let busy = probe(&ready).await;
        assert!(busy.is_err_and(|e| e.contains("answered 503")));
        assert_eq!(probe(&ready).await, Ok(()));
        let _ = server.await;
    }
}
