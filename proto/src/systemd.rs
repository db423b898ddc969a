//! The systemd notification protocol (`Type=notify`): `READY=1` once serving, and `WATCHDOG=1`
//! at half the interval systemd asks for. Without `NOTIFY_SOCKET` (not under systemd) it does
//! nothing.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn send(message: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (systemd in containers and user managers).
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(message.as_bytes(), &addr)?;
    } else {
        socket.send_to(message.as_bytes(), &path)?;
    }
    Ok(())
}

/// Tells systemd the service is ready, and starts the watchdog pings it asked for.
pub fn ready(status: &str) {
    if let Err(err) = send(&format!("READY=1\nSTATUS={status}\n")) {
        tracing::warn!(error = %err, "cannot notify systemd");
    }
    let Some(interval) = watchdog_interval() else {
        return;
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            if let Err(err) = send("WATCHDOG=1\n") {
                tracing::warn!(error = %err, "cannot ping the systemd watchdog");
            }
        }
    });
}

/// `WATCHDOG_USEC`, when it is meant for this process.
fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Some(pid) = std::env::var("WATCHDOG_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        && pid != std::process::id()
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    let _ = send("STOPPING=1\n");
}
