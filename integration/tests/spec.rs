//! A bad spec stops the coordinator at start with the file, the line and the problem.

use qserv_integration::CoordinatorProcess;

const GOOD: &str = r#"name = "dr1"

[[nodes]]
name = "czar-0"
role = "czar"
agent = "http://127.0.0.1:7080"

[[nodes]]
name = "worker-1"
role = "worker"
agent = "http://127.0.0.1:7082"
"#;

/// Starts a coordinator with `spec`; returns its log after it refused to start.
fn refused(spec: &str) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("spec.toml");
    std::fs::write(&path, spec).unwrap_or_else(|e| panic!("{e}"));
    match CoordinatorProcess::try_start(
        &dir.path().join("c"),
        &[format!("--spec={}", path.display())],
    ) {
        Ok(_) => panic!("the coordinator started with a bad spec:\n{spec}"),
        Err((status, log)) => {
            assert_eq!(status.code(), Some(1), "{log}");
            assert!(
                log.contains(&path.display().to_string()),
                "names the file: {log}"
            );
            log
        }
    }
}

#[test]
fn malformed_toml_names_the_line() {
    let log = refused(&GOOD.replace("role = \"czar\"", "role = czar"));
    assert!(log.contains("line 5"), "{log}");
}

#[test]
fn duplicate_node_name_is_refused() {
    let log = refused(&GOOD.replace("\"worker-1\"", "\"czar-0\""));
    assert!(log.contains("line 9"), "{log}");
    assert!(
        log.contains("duplicate node name 'czar-0' (first defined on line 4)"),
        "{log}"
    );
}

#[test]
fn unknown_role_is_refused() {
    let log = refused(&GOOD.replace("\"worker\"", "\"master\""));
    assert!(log.contains("line 10"), "{log}");
    assert!(log.contains("unknown role 'master'"), "{log}");
}

#[test]
fn sql_in_a_name_is_refused() {
    let log = refused(&GOOD.replace("worker-1", "x'; DROP DATABASE mysql; --"));
    assert!(log.contains("invalid node name"), "{log}");
}

#[test]
fn good_spec_starts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("spec.toml");
    std::fs::write(&path, GOOD).unwrap_or_else(|e| panic!("{e}"));
    let c = CoordinatorProcess::start(
        &dir.path().join("c"),
        &[format!("--spec={}", path.display())],
    );
    let status = c.status();
    assert_eq!(status["instance"], "dr1");
    assert_eq!(status["nodes"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        status["health"], "degraded",
        "no agent answers at those addresses"
    );
}
