//! A stand-in for one Qserv service (`worker-xrootd`, `proxy`, …), for tests, benchmarks, the
//! docker rig and the playground: it writes down when it starts, becomes ready (listens) and
//! stops, and answers `GET /meta/version` as Qserv's HTTP services do.
//!
//! `qserv-standin --service NAME --node NODE --port PORT --events FILE [--ready-after MS]
//!  [--exit-at-start CODE] [--exit-after MS] [--api-version N] [--instance-id ID]`
//!
//! `--exit-after` stands for a service that dies on its own a while after it became ready.
//!
//! Each event is one line appended to FILE: `start|ready|stop SERVICE NODE UNIX_NANOS`.
//!
//! A stand-in outlives its agent, as a real service does (a restarted agent takes it over),
//! but not the test that made it: it exits once the folder of FILE is gone.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{SigSet, Signal};

struct Args {
    service: String,
    node: String,
    port: u16,
    events: String,
    ready_after: Duration,
    exit_at_start: Option<u8>,
    exit_after: Option<Duration>,
    api_version: u32,
    instance_id: String,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        service: String::new(),
        node: String::new(),
        port: 0,
        events: String::new(),
        ready_after: Duration::ZERO,
        exit_at_start: None,
        exit_after: None,
        api_version: 55,
        instance_id: "qserv".to_owned(),
    };
    let mut words = std::env::args().skip(1);
    while let Some(flag) = words.next() {
        let value = words
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        let number = |what: &str| {
            value
                .parse::<u64>()
                .map_err(|e| format!("{what} '{value}': {e}"))
        };
        match flag.as_str() {
            "--service" => args.service = value.clone(),
            "--node" => args.node = value.clone(),
            "--port" => args.port = u16::try_from(number("port")?).map_err(|e| e.to_string())?,
            "--events" => args.events = value.clone(),
            "--ready-after" => args.ready_after = Duration::from_millis(number("delay")?),
            "--exit-at-start" => {
                args.exit_at_start =
                    Some(u8::try_from(number("exit code")?).map_err(|e| e.to_string())?);
            }
            "--exit-after" => args.exit_after = Some(Duration::from_millis(number("delay")?)),
            "--api-version" => {
                args.api_version =
                    u32::try_from(number("api version")?).map_err(|e| e.to_string())?;
            }
            "--instance-id" => args.instance_id = value.clone(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.service.is_empty() || args.node.is_empty() || args.events.is_empty() || args.port == 0 {
        return Err("--service, --node, --port and --events are required".to_owned());
    }
    Ok(args)
}

fn record(args: &Args, kind: &str) {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let line = format!("{kind} {} {} {nanos}\n", args.service, args.node);
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.events)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(err) = written {
        eprintln!(
            "qserv-standin: cannot record {kind} in {}: {err}",
            args.events
        );
    }
}

fn serve(listener: TcpListener, body: String) {
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 1024];
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let _ = stream.read(&mut request);
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(answer.as_bytes());
    }
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(args) => args,
        Err(err) => {
            eprintln!("qserv-standin: {err}");
            return ExitCode::from(2);
        }
    };
    // Blocked before any thread starts, so that only the wait below takes them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    if let Err(err) = signals.thread_block() {
        eprintln!("qserv-standin: cannot block signals: {err}");
        return ExitCode::from(1);
    }
    record(&args, "start");
    println!("{} on {} starting", args.service, args.node);
    if let Some(code) = args.exit_at_start {
        eprintln!(
            "{}: cannot start: standing in for a service that fails",
            args.service
        );
        return ExitCode::from(code);
    }
    std::thread::sleep(args.ready_after);
    let listener = match TcpListener::bind(("127.0.0.1", args.port)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("{}: cannot listen on {}: {err}", args.service, args.port);
            return ExitCode::from(1);
        }
    };
    let body = format!(
        "{{\"version\": {}, \"instance_id\": \"{}\", \"service\": \"{}\"}}",
        args.api_version, args.instance_id, args.service
    );
    std::thread::spawn(move || serve(listener, body));
    let folder = std::path::Path::new(&args.events)
        .parent()
        .map(std::path::Path::to_owned)
        .unwrap_or_default();
    std::thread::spawn(move || {
        while folder.is_dir() {
            std::thread::sleep(Duration::from_millis(500));
        }
        std::process::exit(0);
    });
    record(&args, "ready");
    if let Some(after) = args.exit_after {
        std::thread::spawn(move || {
            std::thread::sleep(after);
            eprintln!("dying on its own, as asked");
            std::process::exit(7);
        });
    }
    let _ = signals.wait();
    record(&args, "stop");
    ExitCode::SUCCESS
}
