use proptest::prelude::*;
use qserv_model::ServiceName;

use super::*;

const STOP: Duration = Duration::from_secs(30);

fn raw(name: &str) -> RawService {
    RawService {
        name: name.to_owned(),
        ..RawService::default()
    }
}

fn refusal(choice: ControllerChoice, entries: Vec<RawService>) -> String {
    match definitions(
        choice,
        Role::Worker,
        SingleService::default(),
        entries,
        STOP,
    ) {
        Ok(defs) => panic!("accepted: {defs:?}"),
        Err(e) => e.0,
    }
}

#[test]
fn the_single_service_flags_are_one_service_named_after_the_role() {
    let single = SingleService {
        command: Some("entrypoint worker-svc".to_owned()),
        unit: None,
    };
    let defs = definitions(
        ControllerChoice::Exec,
        Role::Worker,
        single,
        Vec::new(),
        STOP,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(defs.len(), 1);
    assert_eq!(defs[0].name.as_str(), "worker");
    assert_eq!(
        defs[0].launch,
        Launch::Exec("entrypoint worker-svc".to_owned())
    );
    assert_eq!(defs[0].ready, Readiness::Running);
    let none = definitions(
        ControllerChoice::None,
        Role::Czar,
        SingleService::default(),
        Vec::new(),
        STOP,
    );
    assert_eq!(none, Ok(Vec::new()));
    let missing = definitions(
        ControllerChoice::Systemd,
        Role::Czar,
        SingleService::default(),
        Vec::new(),
        STOP,
    );
    assert!(missing.is_err_and(|e| e.0.contains("--service-unit")));
}

#[test]
fn services_are_declared_with_launch_probe_and_stop_timeout() {
    let entries = vec![
        RawService {
            exec: Some("entrypoint worker-xrootd".to_owned()),
            ready: Some("tcp://127.0.0.1:1094".to_owned()),
            stop_timeout: Some("5s".to_owned()),
            config: Some(PathBuf::from("/etc/qserv/xrootd.cfg")),
            ..raw("worker-xrootd")
        },
        RawService {
            ready: Some("http://localhost:25081/meta/version".to_owned()),
            version: Some("http://localhost:25081/meta/version".to_owned()),
            ..raw("worker-repl")
        },
    ];
    let defs = definitions(
        ControllerChoice::Exec,
        Role::Worker,
        SingleService::default(),
        entries,
        STOP,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        defs[0].ready,
        Readiness::Tcp {
            host: "127.0.0.1".to_owned(),
            port: 1094
        }
    );
    assert_eq!(defs[0].stop_timeout, Duration::from_secs(5));
    assert_eq!(defs[1].launch, Launch::External);
    assert_eq!(defs[1].stop_timeout, STOP);
    assert_eq!(
        defs[1].ready,
        Readiness::Http {
            host: "localhost".to_owned(),
            port: 25081,
            path: "/meta/version".to_owned()
        }
    );
}

#[test]
fn a_launch_the_controller_cannot_run_is_refused_naming_the_service() {
    let exec = RawService {
        exec: Some("x".to_owned()),
        ..raw("proxy")
    };
    let why = refusal(ControllerChoice::Systemd, vec![exec.clone()]);
    assert!(why.contains("'proxy'") && why.contains("\"exec\""), "{why}");
    let both = RawService {
        unit: Some("qserv-proxy.service".to_owned()),
        ..exec
    };
    assert!(refusal(ControllerChoice::Exec, vec![both]).contains("both exec and unit"));
    let twice = refusal(ControllerChoice::None, vec![raw("proxy"), raw("proxy")]);
    assert_eq!(twice, "service 'proxy' is declared twice");
    let bad = refusal(ControllerChoice::None, vec![raw("proxy service")]);
    assert!(bad.contains("invalid service name"), "{bad}");
}

#[test]
fn flags_and_services_together_are_refused() {
    let single = SingleService {
        command: Some("x".to_owned()),
        unit: None,
    };
    let refused = definitions(
        ControllerChoice::Exec,
        Role::Worker,
        single,
        vec![raw("a")],
        STOP,
    );
    assert!(refused.is_err_and(|e| e.0.contains("[[services]]")));
}

#[test]
fn probes_are_tcp_or_http_with_a_host_and_port() {
    assert_eq!(
        readiness("tcp://[::1]:7000"),
        Ok(Readiness::Tcp {
            host: "::1".to_owned(),
            port: 7000
        })
    );
    assert_eq!(
        readiness("http://czar"),
        Ok(Readiness::Http {
            host: "czar".to_owned(),
            port: 80,
            path: "/".to_owned()
        })
    );
    for (bad, why) in [
        ("127.0.0.1:1094", "no scheme"),
        ("tcp://127.0.0.1", "no port"),
        ("tcp://h:0", "invalid port"),
        ("tcp://h:99999", "invalid port"),
        ("tcp://h:1/x", "has a path"),
        ("https://h/", "not supported"),
        ("http://u:p@h/", "user information"),
        ("udp://h:1", "unknown scheme"),
        ("http://:80/", "no valid host"),
        ("http://7[::0]$:4040/meta/version", "no valid host"),
        ("tcp://[::1]x:1", "after the ']'"),
        ("tcp://[h]:1", "not an IPv6 address"),
        ("tcp://a:b:1", "invalid port"),
    ] {
        let got = readiness(bad);
        assert!(
            got.as_ref().is_err_and(|e| e.contains(why)),
            "{bad}: {got:?}"
        );
    }
}

proptest! {
    #[test]
    fn any_probe_text_parses_or_is_refused_without_panicking(text in "\\PC{0,40}") {
        let _ = readiness(&text);
    }

    #[test]
    fn an_accepted_probe_written_out_again_parses_to_itself(text in "(tcp|http)://\\PC{0,30}") {
        if let Ok(ready) = readiness(&text) {
            let again = match &ready {
                Readiness::Running => return Ok(()),
                Readiness::Tcp { host, port } if host.contains(':') => format!("tcp://[{host}]:{port}"),
                Readiness::Tcp { host, port } => format!("tcp://{host}:{port}"),
                Readiness::Http { host, port, path } if host.contains(':') => format!("http://[{host}]:{port}{path}"),
                Readiness::Http { host, port, path } => format!("http://{host}:{port}{path}"),
            };
            prop_assert_eq!(readiness(&again), Ok(ready));
        }
    }

    #[test]
    fn a_tcp_probe_keeps_its_host_and_port(host in "[a-z0-9.-]{1,30}", port in 1u16..) {
        prop_assert_eq!(
            readiness(&format!("tcp://{host}:{port}")),
            Ok(Readiness::Tcp { host, port })
        );
    }

    #[test]
    fn any_service_entry_is_checked_without_panicking(
        name in "\\PC{0,20}",
        exec in proptest::option::of("\\PC{0,10}"),
        unit in proptest::option::of("\\PC{0,10}"),
        ready in proptest::option::of("\\PC{0,20}"),
        stop in proptest::option::of("\\PC{0,8}"),
    ) {
        let entry = RawService { name, exec, unit, ready, stop_timeout: stop, ..RawService::default() };
        for choice in [ControllerChoice::None, ControllerChoice::Exec, ControllerChoice::Systemd] {
            let _ = definitions(choice, Role::Repl, SingleService::default(), vec![entry.clone()], STOP);
        }
    }
}

/// The example configs shipped for systemd and the Kubernetes ConfigMaps pass the agent's own
/// checks, and declare Qserv's layout for their role.
#[test]
fn the_shipped_example_configs_declare_the_layouts_services() {
    let deploy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let order = qserv_model::ServiceOrder::the_qserv_layout();
    for role in Role::ALL {
        let text =
            std::fs::read_to_string(deploy.join(format!("systemd/agent-{role}.toml.example")))
                .unwrap_or_else(|e| panic!("{e}"));
        let settings: crate::config::Settings =
            toml::from_str(&text).unwrap_or_else(|e| panic!("agent-{role}.toml.example: {e}"));
        let choice =
            ControllerChoice::parse(settings.service_controller.as_deref().unwrap_or("none"))
                .unwrap_or_else(|e| panic!("{e}"));
        let defs = definitions(
            choice,
            role,
            SingleService::default(),
            settings.services,
            STOP,
        )
        .unwrap_or_else(|e| panic!("agent-{role}.toml.example: {e}"));
        let names: Vec<&ServiceName> = defs.iter().map(|d| &d.name).collect();
        assert_eq!(names, order.node_order(role), "{role}");
        assert!(
            defs.iter().all(|d| matches!(d.launch, Launch::Unit(_))),
            "{role}"
        );
    }
}
