//! How many connections a process serves at once, and what it counts when it turns one away.
//!
//! Connections hold file descriptors, and a process whose descriptors are gone answers nothing,
//! not even `/readyz`: 200 idle connections to an agent with 128 descriptors made its health
//! check time out and its gRPC calls miss their deadlines. The caps below are fractions of the
//! descriptors the process may open, so connections never take the last of them.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// The most HTTP connections (health checks and scrapes) served at once, however many
/// descriptors there are.
const MAX_HTTP: usize = 64;
/// The most gRPC connections served at once.
const MAX_GRPC: usize = 256;

/// What the process counts of connections it did not serve.
#[derive(Clone, Debug, Default)]
pub struct ConnectionCounters {
    /// HTTP connections closed at once because every slot was busy with a request.
    pub http_refused: Counter,
    /// Idle HTTP connections closed to make room for a new one.
    pub http_evicted: Counter,
    /// HTTP connections closed after sending no complete request for the idle timeout.
    pub http_idle_closed: Counter,
    /// gRPC connections closed at once because the cap was reached.
    pub grpc_refused: Counter,
    /// gRPC connections closed because they sent nothing within the idle timeout.
    pub grpc_idle_closed: Counter,
}

impl ConnectionCounters {
    pub fn register(&self, registry: &mut Registry, prefix: &str) {
        let entries: [(&str, &str, &Counter); 5] = [
            (
                "http_connections_refused",
                "HTTP connections closed at once: every slot was serving a request",
                &self.http_refused,
            ),
            (
                "http_connections_evicted",
                "idle HTTP connections closed to make room for a new one",
                &self.http_evicted,
            ),
            (
                "http_connections_idle_closed",
                "HTTP connections closed after sending no complete request in time",
                &self.http_idle_closed,
            ),
            (
                "grpc_connections_refused",
                "gRPC connections closed at once: the connection cap was reached",
                &self.grpc_refused,
            ),
            (
                "grpc_connections_idle_closed",
                "gRPC connections closed after sending nothing in time",
                &self.grpc_idle_closed,
            ),
        ];
        for (name, help, counter) in entries {
            registry.register(format!("{prefix}_{name}"), help, counter.clone());
        }
    }
}

/// The caps of one process and its counters.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    pub http: usize,
    pub grpc: usize,
    pub counters: ConnectionCounters,
}

impl ConnectionLimits {
    /// Caps for this process: its soft descriptor limit is first raised to the hard one (as
    /// Go's runtime does), then HTTP gets an eighth of it and gRPC a quarter, within the maxima.
    pub fn for_this_process() -> ConnectionLimits {
        ConnectionLimits::for_descriptors(raise_descriptor_limit())
    }

    pub fn for_descriptors(descriptors: u64) -> ConnectionLimits {
        let share = |part: u64, max: usize| {
            usize::try_from(descriptors / part)
                .unwrap_or(max)
                .clamp(4, max)
        };
        ConnectionLimits {
            http: share(8, MAX_HTTP),
            grpc: share(4, MAX_GRPC),
            counters: ConnectionCounters::default(),
        }
    }
}

/// Raises the soft limit on open descriptors to the hard one; returns the limit now in force.
fn raise_descriptor_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(err) => {
                tracing::warn!(soft, hard, error = %err, "cannot raise the limit on open files");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the limit on open files");
            1024
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_leave_most_descriptors_free() {
        let small = ConnectionLimits::for_descriptors(128);
        assert_eq!((small.http, small.grpc), (16, 32));
        let large = ConnectionLimits::for_descriptors(1 << 20);
        assert_eq!((large.http, large.grpc), (MAX_HTTP, MAX_GRPC));
        let tiny = ConnectionLimits::for_descriptors(8);
        assert_eq!((tiny.http, tiny.grpc), (4, 4));
    }
}
