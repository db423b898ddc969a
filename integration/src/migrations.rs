//! Migration directories for tests: the bundled scripts plus or minus a few.

use std::path::Path;

use tempfile::TempDir;

/// A smig-layout directory with the bundled scripts (unless `bundled` is false) and `extra`
/// scripts as (module, file name, content).
pub fn migrations_dir(bundled: bool, extra: &[(&str, &str, &str)]) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("qserv-migrations-")
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot create a migrations directory: {e}"));
    for module in ["czar", "worker", "repl"] {
        std::fs::create_dir_all(dir.path().join(module)).unwrap_or_else(|e| panic!("{e}"));
    }
    if bundled {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/qserv");
        for module in ["czar", "worker", "repl"] {
            let entries = std::fs::read_dir(source.join(module)).unwrap_or_else(|e| panic!("{e}"));
            for entry in entries.flatten() {
                std::fs::copy(
                    entry.path(),
                    dir.path().join(module).join(entry.file_name()),
                )
                .unwrap_or_else(|e| panic!("cannot copy a bundled script: {e}"));
            }
        }
    }
    for (module, file, content) in extra {
        std::fs::write(dir.path().join(module).join(file), content)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

/// `--migrations-dir=…` for a coordinator.
pub fn arg(dir: &TempDir) -> String {
    format!("--migrations-dir={}", dir.path().display())
}
