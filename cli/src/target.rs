//! Which coordinator a command talks to, and which instance it means: from `--instance`, the
//! configuration file, `--coordinator` and the TLS flags. Pure, so every precedence rule is
//! tested here.

use std::path::PathBuf;

use qserv_cli::config::{ALL, Config, InstanceEntry};

/// Where a flag's value came from: a value typed on the command line beats the configuration
/// file, which beats the environment and the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    CommandLine,
    Environment,
    Default,
}

#[derive(Debug, Clone)]
pub struct Flag<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Flag<T> {
    pub fn typed(&self) -> bool {
        self.origin == Origin::CommandLine
    }
}

/// The connection flags as given.
#[derive(Debug, Clone)]
pub struct Flags {
    pub instance: Option<String>,
    pub coordinator: Flag<String>,
    pub tls_cert: Flag<Option<PathBuf>>,
    pub tls_key: Flag<Option<PathBuf>>,
    pub tls_ca: Flag<Option<PathBuf>>,
}

/// One coordinator (or the list of one instance's coordinators) and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The instance meant, when known: mutating requests carry it.
    pub instance: Option<String>,
    pub urls: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_ca: Option<PathBuf>,
}

impl Target {
    /// The target an instance of the configuration names.
    pub fn of(name: &str, entry: &InstanceEntry) -> Target {
        Target {
            instance: Some(name.to_owned()),
            urls: entry.address_list(),
            tls_cert: entry.tls_cert.clone(),
            tls_key: entry.tls_key.clone(),
            tls_ca: entry.tls_ca.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    One(Target),
    /// `--instance all`: every configured instance, by name.
    All(Vec<(String, Target)>),
}

/// A TLS file: typed on the command line, else the instance's, else the environment's.
fn pick(flag: &Flag<Option<PathBuf>>, entry: Option<&Option<PathBuf>>) -> Option<PathBuf> {
    match entry {
        Some(from_entry) if !flag.typed() => from_entry.clone(),
        _ => flag.value.clone(),
    }
}

/// Resolves the flags against `config`; the error is a usage error's message.
pub fn select(flags: &Flags, config: &Config, config_path: &str) -> Result<Selection, String> {
    let known = || {
        if config.instances.is_empty() {
            format!(
                "no instance is configured in {config_path}; add one with 'qserv instances add'"
            )
        } else {
            format!(
                "the instances configured in {config_path} are {}",
                config
                    .instances
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    };
    let Some(name) = flags.instance.as_deref().filter(|n| !n.is_empty()) else {
        let urls = flags.coordinator.value.clone();
        let named = config.instance_at(&urls).map(str::to_owned);
        let entry = named.as_ref().and_then(|n| config.instances.get(n));
        return Ok(Selection::One(Target {
            urls,
            tls_cert: pick(&flags.tls_cert, entry.map(|e| &e.tls_cert)),
            tls_key: pick(&flags.tls_key, entry.map(|e| &e.tls_key)),
            tls_ca: pick(&flags.tls_ca, entry.map(|e| &e.tls_ca)),
            instance: named,
        }));
    };
    if name == ALL {
        if config.instances.is_empty() {
            return Err(known());
        }
        return Ok(Selection::All(
            config
                .instances
                .iter()
                .map(|(name, entry)| (name.clone(), Target::of(name, entry)))
                .collect(),
        ));
    }
    let Some(entry) = config.instances.get(name) else {
        return Err(format!("no instance '{name}': {}", known()));
    };
    if flags.coordinator.typed() && config.instance_at(&flags.coordinator.value) != Some(name) {
        return Err(format!(
            "--instance {name} reaches {} but --coordinator says {}: give one of them",
            entry.address_list(),
            flags.coordinator.value
        ));
    }
    Ok(Selection::One(Target {
        instance: Some(name.to_owned()),
        urls: entry.address_list(),
        tls_cert: pick(&flags.tls_cert, Some(&entry.tls_cert)),
        tls_key: pick(&flags.tls_key, Some(&entry.tls_key)),
        tls_ca: pick(&flags.tls_ca, Some(&entry.tls_ca)),
    }))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config() -> Config {
        Config::parse(
            r#"
[instances.dr1]
coordinator = ["https://a:7070", "https://b:7070"]
tls-ca = "/pki/dr1-ca.pem"
[instances.dr2]
coordinator = "https://c:7070"
"#,
            Path::new("/"),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn flags(instance: Option<&str>, coordinator: &str, origin: Origin) -> Flags {
        let none = Flag {
            value: None,
            origin: Origin::Default,
        };
        Flags {
            instance: instance.map(str::to_owned),
            coordinator: Flag {
                value: coordinator.to_owned(),
                origin,
            },
            tls_cert: none.clone(),
            tls_key: none.clone(),
            tls_ca: none,
        }
    }

    fn one(selection: Result<Selection, String>) -> Target {
        match selection {
            Ok(Selection::One(target)) => target,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_instance_brings_its_coordinators_and_tls() {
        let target = one(select(
            &flags(Some("dr1"), "http://127.0.0.1:7070", Origin::Default),
            &config(),
            "cfg",
        ));
        assert_eq!(target.urls, "https://a:7070,https://b:7070");
        assert_eq!(target.instance.as_deref(), Some("dr1"));
        assert_eq!(target.tls_ca.as_deref(), Some(Path::new("/pki/dr1-ca.pem")));
    }

    #[test]
    fn a_typed_tls_flag_beats_the_instance_and_the_instance_beats_the_environment() {
        let mut given = flags(Some("dr1"), "x", Origin::Default);
        given.tls_ca = Flag {
            value: Some(PathBuf::from("/env/ca.pem")),
            origin: Origin::Default,
        };
        let target = one(select(&given, &config(), "cfg"));
        assert_eq!(target.tls_ca.as_deref(), Some(Path::new("/pki/dr1-ca.pem")));
        given.tls_ca.origin = Origin::CommandLine;
        let target = one(select(&given, &config(), "cfg"));
        assert_eq!(target.tls_ca.as_deref(), Some(Path::new("/env/ca.pem")));
    }

    #[test]
    fn an_address_of_a_configured_instance_names_it() {
        let target = one(select(
            &flags(None, "https://b:7070", Origin::CommandLine),
            &config(),
            "cfg",
        ));
        assert_eq!(target.instance.as_deref(), Some("dr1"));
        assert_eq!(target.tls_ca.as_deref(), Some(Path::new("/pki/dr1-ca.pem")));
        let target = one(select(
            &flags(None, "https://other:7070", Origin::CommandLine),
            &config(),
            "cfg",
        ));
        assert_eq!(
            (target.instance, target.urls.as_str()),
            (None, "https://other:7070")
        );
    }

    #[test]
    fn a_typed_coordinator_of_another_instance_is_refused() {
        let why = select(
            &flags(Some("dr1"), "https://c:7070", Origin::CommandLine),
            &config(),
            "cfg",
        );
        assert!(
            matches!(&why, Err(m) if m.contains("--instance dr1") && m.contains("https://c:7070")),
            "{why:?}"
        );
        let same = select(
            &flags(Some("dr1"), "https://a:7070", Origin::CommandLine),
            &config(),
            "cfg",
        );
        assert!(same.is_ok(), "{same:?}");
    }

    #[test]
    fn unknown_instances_are_named_with_the_known_ones() {
        let why = select(&flags(Some("dr9"), "x", Origin::Default), &config(), "cfg");
        assert!(
            matches!(&why, Err(m) if m.contains("dr9") && m.contains("dr1, dr2")),
            "{why:?}"
        );
        let why = select(
            &flags(Some("all"), "x", Origin::Default),
            &Config::default(),
            "cfg",
        );
        assert!(
            matches!(&why, Err(m) if m.contains("instances add")),
            "{why:?}"
        );
    }

    #[test]
    fn all_lists_every_instance_in_name_order() {
        match select(&flags(Some("all"), "x", Origin::Default), &config(), "cfg") {
            Ok(Selection::All(all)) => {
                let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                assert_eq!(names, ["dr1", "dr2"]);
                assert_eq!(all[1].1.urls, "https://c:7070");
            }
            other => panic!("{other:?}"),
        }
    }
}
