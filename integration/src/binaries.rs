//! The workspace's binaries, built with the same profile as the test or bench that uses them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Directory of the binaries: `QSERV_BIN_DIR` if set, else the profile directory this test
/// executable was built into (`target/<profile>/deps/…` → `target/<profile>`), after making sure
/// they are built and current.
pub fn bin_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("QSERV_BIN_DIR") {
            return PathBuf::from(dir);
        }
        let exe = std::env::current_exe()
            .unwrap_or_else(|e| panic!("cannot find the test executable: {e}"));
        let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        if dir.ends_with("deps") {
            dir.pop();
        }
        build(dir.file_name().and_then(|n| n.to_str()) == Some("release"));
        dir
    })
}

/// Runs `cargo build` for the three binaries; a no-op when they are current.
fn build(release: bool) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "--workspace", "--bins"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        command.arg("--release");
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build the binaries: {e}"));
    assert!(
        status.success(),
        "building the qserv binaries failed: {status}"
    );
}

pub fn path(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.is_file(), "binary {} is missing", path.display());
    path
}
