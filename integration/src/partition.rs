//! A network partition between one process and its MariaDB server: a TCP relay the process
//! connects through, which the test can cut and heal. A cut link drops nothing and answers
//! nothing, as a lost network does: bytes sent either way wait, connections stay open with no
//! FIN or RST, and new ones get no greeting. Healed, the link delivers what waited, in order.
//!
//! The relay reads the MySQL packets the client sends, so that a test can cut the link at the
//! one moment that matters: when the client asks to commit, its transaction holding its locks.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

/// A MySQL `COM_QUERY` packet's payload for `COMMIT`, as a client ends a transaction.
const COMMIT: &[u8] = b"\x03COMMIT";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Open until the client next asks to commit; cut from that request on (it waits too).
    CutAtCommit,
    Cut,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    closed: AtomicBool,
}

impl Shared {
    fn set(&self, next: State) {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner) = next;
        self.changed.notify_all();
    }

    fn state(&self) -> State {
        *self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks while the link is cut.
    fn pass(&self) {
        let guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let _open = self
            .changed
            .wait_while(guard, |s| *s == State::Cut)
            .unwrap_or_else(PoisonError::into_inner);
    }
}

/// A relay on a port of its own to a server on `127.0.0.1:upstream`.
#[derive(Debug)]
pub struct Link {
    port: u16,
    shared: Arc<Shared>,
}

impl Link {
    pub fn to(upstream: u16) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("cannot listen for a relay: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("relay address: {e}"))
            .port();
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("relay listener: {e}"));
        let shared = Arc::new(Shared {
            state: Mutex::new(State::Open),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || accept(&listener, upstream, &accepting));
        Link { port, shared }
    }

    /// The port the process connects to instead of the server's.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Cuts the link the next time the client asks to commit a transaction: the server never
    /// receives that request, and holds the transaction open with its locks.
    pub fn cut_at_next_commit(&self) {
        self.shared.set(State::CutAtCommit);
    }

    pub fn is_cut(&self) -> bool {
        self.shared.state() == State::Cut
    }

    pub fn heal(&self) {
        self.shared.set(State::Open);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.heal();
    }
}

fn accept(listener: &TcpListener, upstream: u16, shared: &Arc<Shared>) {
    while !shared.closed.load(Ordering::SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            Err(_) => return,
        };
        let shared = shared.clone();
        std::thread::spawn(move || {
            // A connection made across a cut link gets no greeting until it heals.
            shared.pass();
            let _ = client.set_nonblocking(false);
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                return;
            };
            let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone())
            else {
                return;
            };
            let upstream_shared = shared.clone();
            std::thread::spawn(move || {
                relay_requests(client_reader, server_writer, &upstream_shared)
            });
            relay_replies(server, client, &shared);
        });
    }
}

/// Server to client: bytes as they come, held while the link is cut.
fn relay_replies(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).unwrap_or(0);
        shared.pass();
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Client to server, packet by packet, so that a commit request can be recognised and held.
fn relay_requests(mut from: TcpStream, mut to: TcpStream, shared: &Shared) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).unwrap_or(0);
        if n == 0 {
            shared.pass();
            let _ = to.shutdown(Shutdown::Both);
            return;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(len) = packet_len(&pending) {
            if shared.state() == State::CutAtCommit && pending[4..len] == *COMMIT {
                shared.set(State::Cut);
            }
            shared.pass();
            if to.write_all(&pending[..len]).is_err() {
                let _ = from.shutdown(Shutdown::Both);
                return;
            }
            pending.drain(..len);
        }
    }
}

/// The length, header included, of the complete MySQL packet at the start of `bytes`.
fn packet_len(bytes: &[u8]) -> Option<usize> {
    let header = bytes.get(..4)?;
    let payload =
        usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let len = 4 + payload;
    (bytes.len() >= len).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_is_complete_only_with_its_whole_payload() {
        let commit = [&[7u8, 0, 0, 0][..], COMMIT].concat();
        assert_eq!(packet_len(&commit), Some(11));
        assert_eq!(packet_len(&commit[..10]), None);
        assert_eq!(packet_len(&commit[..3]), None);
        let two = [&commit[..], &commit[..]].concat();
        assert_eq!(packet_len(&two), Some(11));
    }
}
