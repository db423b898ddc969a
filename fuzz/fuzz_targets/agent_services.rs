//! An agent's config file with its `[[services]]`: any text is parsed and checked or refused,
//! never a panic; every service it accepts has a valid name and a probe that parses again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use qserv_agent::config::Settings;
use qserv_agent::node::services::{
    ControllerChoice, Readiness, SingleService, definitions, readiness,
};
use qserv_model::Role;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = readiness(text);
    let Ok(settings) = toml::from_str::<Settings>(text) else {
        return;
    };
    for choice in [
        ControllerChoice::None,
        ControllerChoice::Exec,
        ControllerChoice::Systemd,
    ] {
        let defined = definitions(
            choice,
            Role::Worker,
            SingleService::default(),
            settings.services.clone(),
            std::time::Duration::from_secs(30),
        );
        for def in defined.into_iter().flatten() {
            assert!(qserv_model::ServiceName::parse(def.name.as_str()).is_ok());
            let again = match &def.ready {
                Readiness::Running => continue,
                Readiness::Tcp { host, port } if host.contains(':') => {
                    readiness(&format!("tcp://[{host}]:{port}"))
                }
                Readiness::Tcp { host, port } => readiness(&format!("tcp://{host}:{port}")),
                Readiness::Http { host, port, path } if host.contains(':') => {
                    readiness(&format!("http://[{host}]:{port}{path}"))
                }
                Readiness::Http { host, port, path } => {
                    readiness(&format!("http://{host}:{port}{path}"))
                }
            };
            assert_eq!(again.as_ref(), Ok(&def.ready), "{def:?}");
        }
    }
});
