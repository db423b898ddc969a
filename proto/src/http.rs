//! The plaintext HTTP port's connections: at most a cap of them, none kept past an idle timeout.
//!
//! The port is open to anyone (kubelet, Prometheus), so a connection that sends nothing, or one
//! header byte a second, must not hold a descriptor for long. A connection that has no request
//! in progress for [`IDLE_TIMEOUT`] is closed, whether it is between requests or still sending
//! its first header; and when the cap is reached, the connection idle longest makes room for the
//! new one, so a flood of idle connections never shuts out a health check.

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::limits::ConnectionCounters;

/// How long a connection may go without a request in progress.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a connection checks whether it has been idle too long.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// One connection as the accept loop sees it.
struct Conn {
    requests: AtomicUsize,
    last_activity: Mutex<Instant>,
    close: Notify,
    closed: AtomicBool,
}

impl Conn {
    fn new() -> Arc<Conn> {
        Arc::new(Conn {
            requests: AtomicUsize::new(0),
            last_activity: Mutex::new(Instant::now()),
            close: Notify::new(),
            closed: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        *self
            .last_activity
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn idle_since(&self) -> Option<Instant> {
        (self.requests.load(Ordering::SeqCst) == 0).then(|| {
            *self
                .last_activity
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        })
    }
}

/// A request in progress on a connection, for as long as it lives.
struct InRequest(Arc<Conn>);

impl InRequest {
    fn start(conn: &Arc<Conn>) -> InRequest {
        conn.requests.fetch_add(1, Ordering::SeqCst);
        conn.touch();
        InRequest(Arc::clone(conn))
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.touch();
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Which connection makes room for a new one: the one idle longest, if any is idle.
fn evictable(live: &[Arc<Conn>]) -> Option<&Arc<Conn>> {
    live.iter()
        .filter_map(|c| c.idle_since().map(|since| (since, c)))
        .min_by_key(|(since, _)| *since)
        .map(|(_, c)| c)
}

/// Serves `app` on `listener` until `shutdown`, at most `cap` connections at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    cap: usize,
    counters: ConnectionCounters,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let live: Arc<Mutex<Vec<Arc<Conn>>>> = Arc::new(Mutex::new(Vec::new()));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors, most likely: wait for some to be closed.
                    tracing::warn!(error = %err, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let conn = {
            let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
            live.retain(|c| !c.closed.load(Ordering::SeqCst));
            if live.len() >= cap {
                match evictable(&live) {
                    Some(idle) => {
                        idle.closed.store(true, Ordering::SeqCst);
                        idle.close.notify_one();
                        counters.http_evicted.inc();
                        live.retain(|c| !c.closed.load(Ordering::SeqCst));
                    }
                    None => {
                        counters.http_refused.inc();
                        continue;
                    }
                }
            }
            let conn = Conn::new();
            live.push(Arc::clone(&conn));
            conn
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_one(stream, app.clone(), conn, counters.clone()));
    }
}

async fn serve_one(
    stream: tokio::net::TcpStream,
    app: Router,
    conn: Arc<Conn>,
    counters: ConnectionCounters,
) {
    let inner = TowerToHyperService::new(app);
    let in_conn = Arc::clone(&conn);
    let service = hyper::service::service_fn(move |request| {
        let busy = InRequest::start(&in_conn);
        let response = hyper::service::Service::call(&inner, request);
        async move {
            let response: Result<_, Infallible> = response.await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT);
    let served = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(served);
    let mut check = tokio::time::interval(IDLE_CHECK);
    loop {
        tokio::select! {
            _ = &mut served => break,
            () = conn.close.notified() => break,
            _ = check.tick() => {
                if conn.idle_since().is_some_and(|since| since.elapsed() >= IDLE_TIMEOUT) {
                    counters.http_idle_closed.inc();
                    break;
                }
            }
        }
    }
    conn.closed.store(true, Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_idle_longest_makes_room_and_a_busy_one_never_does() {
        let old = Conn::new();
        std::thread::sleep(Duration::from_millis(5));
        let newer = Conn::new();
        let busy = Conn::new();
        let _request = InRequest::start(&busy);
        let live = vec![Arc::clone(&newer), Arc::clone(&busy), Arc::clone(&old)];
        assert!(evictable(&live).is_some_and(|c| Arc::ptr_eq(c, &old)));
        let only_busy = vec![Arc::clone(&busy)];
        assert!(evictable(&only_busy).is_none());
    }
}
