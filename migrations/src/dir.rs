//! Reading a smig-layout directory from disk (`--migrations-dir`): only regular files inside
//! it, never what a link points at.

use std::path::Path;

use crate::Module;
use crate::set::{MAX_SCRIPT_BYTES, MigrationError, MigrationSet, ScriptName};

impl MigrationSet {
    /// Reads a smig-layout directory (`czar/`, `worker/`, `repl/`); missing module folders are
    /// modules without migrations.
    pub fn load_dir(dir: &Path) -> Result<MigrationSet, MigrationError> {
        let read_err = |path: &Path, source| MigrationError::Read {
            path: path.to_owned(),
            source,
        };
        let mut files = Vec::new();
        let mut found_any = false;
        for module in Module::ALL {
            let folder = dir.join(module.name());
            match std::fs::symlink_metadata(&folder) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(read_err(&folder, e)),
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(MigrationError::NotRegular {
                        path: folder,
                        what: "a symbolic link",
                    });
                }
                Ok(meta) if !meta.is_dir() => continue,
                Ok(_) => {}
            }
            found_any = true;
            for entry in std::fs::read_dir(&folder).map_err(|e| read_err(&folder, e))? {
                let entry = entry.map_err(|e| read_err(&folder, e))?;
                let path = entry.path();
                let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                // Files smig would skip are never opened, whatever they are.
                if ScriptName::parse(file_name).is_none() {
                    continue;
                }
                let content = read_script(&path)?;
                files.push((module, file_name.to_owned(), content));
            }
        }
        if !found_any {
            return Err(MigrationError::Empty(dir.to_owned()));
        }
        MigrationSet::from_files(files)
    }
}

/// The text of the script at `path`, which must be a regular file itself: a symbolic link
/// there would ship whatever it points at (a key, a file only root may read) to every agent,
/// and a failed statement would quote it. The file is opened without following links and
/// checked on the handle, so it cannot be swapped for a link between check and read.
fn read_script(path: &Path) -> Result<String, MigrationError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| MigrationError::Read {
        path: path.to_owned(),
        source,
    };
    let not_regular = |what| MigrationError::NotRegular {
        path: path.to_owned(),
        what,
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(not_regular("a symbolic link"));
        }
        Err(e) => return Err(read_err(e)),
    };
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        return Err(not_regular(if meta.is_dir() {
            "a directory"
        } else {
            "not a regular file"
        }));
    }
    if meta.len() > MAX_SCRIPT_BYTES {
        return Err(MigrationError::TooLarge {
            path: path.to_owned(),
            size: meta.len(),
        });
    }
    let mut content = String::new();
    file.take(MAX_SCRIPT_BYTES + 1)
        .read_to_string(&mut content)
        .map_err(read_err)?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let worker = dir.path().join("worker");
        std::fs::create_dir(&worker).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            worker.join("migrate-None-to-1.sql"),
            "CREATE TABLE t (i INT);",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        dir
    }

    fn refusal(dir: &Path) -> String {
        match MigrationSet::load_dir(dir) {
            Ok(_) => panic!("loaded"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn regular_scripts_load_and_other_names_are_never_opened() {
        let dir = layout();
        let worker = dir.path().join("worker");
        std::os::unix::fs::symlink("/etc/hostname", worker.join("README"))
            .unwrap_or_else(|e| panic!("{e}"));
        let set = MigrationSet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.scripts(Module::Worker).len(), 1);
    }

    #[test]
    fn a_linked_script_is_refused_naming_it() {
        let dir = layout();
        let target = dir.path().join("secret.key");
        std::fs::write(&target, "-----BEGIN PRIVATE KEY-----").unwrap_or_else(|e| panic!("{e}"));
        let link = dir.path().join("worker/migrate-1-to-2-x.sql");
        std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        let why = refusal(dir.path());
        assert!(
            why.contains("migrate-1-to-2-x.sql") && why.contains("symbolic link"),
            "{why}"
        );
        assert!(!why.contains("PRIVATE"), "{why}");
    }

    #[test]
    fn a_linked_module_folder_is_refused() {
        let dir = layout();
        let elsewhere = layout();
        std::os::unix::fs::symlink(elsewhere.path().join("worker"), dir.path().join("czar"))
            .unwrap_or_else(|e| panic!("{e}"));
        let why = refusal(dir.path());
        assert!(
            why.contains("czar") && why.contains("symbolic link"),
            "{why}"
        );
    }

    #[test]
    fn a_directory_or_a_fifo_named_like_a_script_is_refused() {
        let dir = layout();
        std::fs::create_dir(dir.path().join("worker/migrate-1-to-2.sql"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(refusal(dir.path()).contains("a directory"));

        let dir = layout();
        let fifo = dir.path().join("worker/migrate-1-to-2.sql");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .map(|s| s.success());
        if made.unwrap_or(false) {
            // Opening must neither block on the pipe nor read it.
            assert!(refusal(dir.path()).contains("not a regular file"));
        }
    }
}
