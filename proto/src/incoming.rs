//! The gRPC port's connections: at most a cap of them (one more is closed at once and counted),
//! TLS handshakes off the accept loop, and a deadline for a connection's first bytes, so that a
//! connection that never speaks does not keep its slot.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use crate::limits::ConnectionCounters;

/// How long a connection may take to send its first bytes (the TLS handshake has its own).
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A served connection: holds its slot until it is dropped.
pub struct Counted<T> {
    inner: T,
    _slot: OwnedSemaphorePermit,
    /// Until the first bytes arrive.
    first_bytes: Option<Pin<Box<Sleep>>>,
    counters: ConnectionCounters,
}

impl<T> Counted<T> {
    fn new(inner: T, slot: OwnedSemaphorePermit, counters: ConnectionCounters) -> Counted<T> {
        Counted {
            inner,
            _slot: slot,
            first_bytes: Some(Box::pin(tokio::time::sleep(FIRST_BYTES_TIMEOUT))),
            counters,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.first_bytes = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .first_bytes
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if !expired {
                    return Poll::Pending;
                }
                this.counters.grpc_idle_closed.inc();
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent nothing in time",
                )))
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The peer's address and certificate reach the service as they would without the wrapper.
impl<T: Connected> Connected for Counted<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// Accepts connections on `listener` while fewer than `cap` are served, turns each into what
/// `prepare` makes of it (off the accept loop), and hands them on.
pub fn accept<T, F, Fut>(
    listener: TcpListener,
    cap: usize,
    counters: ConnectionCounters,
    prepare: F,
) -> ReceiverStream<Result<Counted<T>, io::Error>>
where
    T: Send + 'static,
    F: Fn(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = Option<T>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let slots = Arc::new(Semaphore::new(cap));
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                counters.grpc_refused.inc();
                tracing::debug!(%peer, cap, "connection refused: the connection cap is reached");
                continue;
            };
            let _ = stream.set_nodelay(true);
            let tx = tx.clone();
            let counters = counters.clone();
            let prepared = prepare(stream, peer);
            tokio::spawn(async move {
                if let Some(ready) = prepared.await {
                    let _ = tx.send(Ok(Counted::new(ready, slot, counters))).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// Plaintext connections as they are.
pub fn plaintext(
    listener: TcpListener,
    cap: usize,
    counters: ConnectionCounters,
) -> ReceiverStream<Result<Counted<TcpStream>, io::Error>> {
    accept(
        listener,
        cap,
        counters,
        |stream, _| async move { Some(stream) },
    )
}
