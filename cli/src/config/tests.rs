use std::path::Path;

use proptest::prelude::*;

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("/etc/qserv"))
}

#[test]
fn one_address_or_a_list_and_paths_relative_to_the_file() {
    let config = parse(
        r#"
# two data releases
[instances.dr1]
coordinator = "https://ctl-1:7070"
tls-cert = "operator.pem"
tls-key = "/secrets/operator.key"
tls-ca = "ca.pem"

[instances.dr2]
coordinator = ["https://a:7070", "https://b:7070"]
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let dr1 = &config.instances["dr1"];
    assert_eq!(dr1.coordinators, ["https://ctl-1:7070"]);
    assert_eq!(
        dr1.tls_cert.as_deref(),
        Some(Path::new("/etc/qserv/operator.pem"))
    );
    assert_eq!(
        dr1.tls_key.as_deref(),
        Some(Path::new("/secrets/operator.key"))
    );
    assert_eq!(
        config.instances["dr2"].address_list(),
        "https://a:7070,https://b:7070"
    );
    assert_eq!(config.instance_at("https://b:7070"), Some("dr2"));
    assert_eq!(
        config.instance_at("http://x:1,https://ctl-1:7070"),
        Some("dr1")
    );
    assert_eq!(config.instance_at("https://elsewhere:7070"), None);
}

#[test]
fn an_empty_file_has_no_instances() {
    assert_eq!(parse(""), Ok(Config::default()));
}

#[test]
fn refuses_what_would_send_a_command_astray() {
    for (text, says) in [
        ("[instances.dr1]\ncoordinators = \"x\"\n", "unknown field"),
        ("[instances.dr1]\n", "missing field"),
        ("[instances.\"dr 1\"]\ncoordinator = \"x\"\n", "instance"),
        ("[instances.all]\ncoordinator = \"x\"\n", "every instance"),
        ("[instances.dr1]\ncoordinator = []\n", "no address"),
        ("[instances.dr1]\ncoordinator = \"a,b\"\n", "comma"),
        ("[instances.dr1]\ncoordinator = \"\"\n", "empty"),
        (
            "[instances.dr1]\ncoordinator = \"x\"\ntls-cert = \"c.pem\"\n",
            "go together",
        ),
        ("[instance.dr1]\ncoordinator = \"x\"\n", "unknown field"),
    ] {
        match parse(text) {
            Ok(config) => panic!("{text:?} was taken: {config:?}"),
            Err(why) => assert!(why.contains(says), "{text:?}: {why}"),
        }
    }
}

#[test]
fn the_default_path_follows_xdg() {
    assert_eq!(
        default_path(Some("/cfg"), Some("/home/op")),
        Some(PathBuf::from("/cfg/qserv/config.toml"))
    );
    assert_eq!(
        default_path(Some("relative"), Some("/home/op")),
        Some(PathBuf::from("/home/op/.config/qserv/config.toml")),
        "a relative XDG_CONFIG_HOME is ignored, as the spec says"
    );
    assert_eq!(default_path(None, None), None);
}

#[test]
fn add_appends_and_keeps_what_was_there() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("qserv").join("config.toml");
    let entry = |address: &str| InstanceEntry {
        coordinators: vec![address.to_owned()],
        tls_cert: None,
        tls_key: None,
        tls_ca: Some(PathBuf::from("/pki/ca.pem")),
    };
    add(&path, "dr1", &entry("https://one:7070")).unwrap_or_else(|e| panic!("{e}"));
    let with_comment = format!(
        "# kept\n{}",
        std::fs::read_to_string(&path).unwrap_or_default()
    );
    std::fs::write(&path, with_comment).unwrap_or_else(|e| panic!("{e}"));
    add(&path, "dr2", &entry("https://two:7070")).unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(text.starts_with("# kept\n"), "{text}");
    let config = Config::load(&path, false).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.instances.len(), 2);
    assert_eq!(config.instances["dr2"], entry("https://two:7070"));

    let again = add(&path, "dr1", &entry("https://other:7070"));
    assert!(
        matches!(&again, Err(ConfigError::Taken { name, .. }) if name == "dr1"),
        "{again:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap_or_default(),
        text,
        "nothing lost"
    );
}

#[test]
fn a_missing_file_is_empty_only_when_optional() {
    let missing = Path::new("/nonexistent/qserv/config.toml");
    assert_eq!(Config::load(missing, true).ok(), Some(Config::default()));
    assert!(matches!(
        Config::load(missing, false),
        Err(ConfigError::Read { .. })
    ));
}

fn name() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9_.-]{1,20}".prop_filter("reserved", |n| n != ALL)
}

fn address() -> impl Strategy<Value = String> {
    "(http|https)://[a-zé星0-9.-]{1,12}:[0-9]{1,5}"
}

proptest! {
    #[test]
    fn any_text_is_parsed_or_refused_without_panicking(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn any_table_text_is_parsed_or_refused(body in "(coordinator|tls-ca|tls-cert) = (\"[^\"\\\\]{0,20}\"|\\[(\"[^\"\\\\]{0,10}\", ?){0,3}\\]|[0-9]{1,3})\n") {
        let _ = parse(&format!("[instances.dr1]\n{body}"));
    }

    #[test]
    fn an_added_entry_reads_back_as_written(
        name in name(),
        coordinators in proptest::collection::vec(address(), 1..4),
        ca in proptest::option::of("/[a-z星]{1,10}\\.pem"),
    ) {
        let entry = InstanceEntry { coordinators, tls_cert: None, tls_key: None, tls_ca: ca.map(PathBuf::from) };
        let text = entry_text(&name, &entry).unwrap_or_else(|e| panic!("{e}"));
        let config = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        prop_assert_eq!(config.instances.get(&name), Some(&entry));
    }
}
