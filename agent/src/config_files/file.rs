//! A configuration file written so that a crash at any point leaves the old file or the new
//! one at its path, never part of either: the new text is staged beside it (temporary name,
//! fsync), the file there is copied aside as the previous one, then the staged file is renamed
//! over it and the directory synced. Blocking: callers run it off the async threads.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Beside the file: what was there before the last install.
const PREVIOUS_SUFFIX: &str = ".qserv-previous";
/// Beside the file: rendered and waiting for the second phase.
const STAGED_SUFFIX: &str = ".qserv-staged";
/// Beside the file: a copy being written.
const PARTIAL_SUFFIX: &str = ".qserv-partial";
/// Readable by the service's group, which may be another user than the agent's.
const FILE_MODE: u32 = 0o640;

#[derive(Debug, thiserror::Error)]
#[error(
    "cannot {what} {path}: {source}; check that the directory exists and that the agent may write in it"
)]
pub struct FileError {
    what: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

fn failed(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
    let path = path.to_owned();
    move |source| FileError { what, path, source }
}

/// `path` with `suffix` appended to its file name.
fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

pub fn previous_path(path: &Path) -> PathBuf {
    beside(path, PREVIOUS_SUFFIX)
}

pub use qserv_model::template::sha256_hex;

/// The hash of what is at `path`; `None` when nothing is.
pub fn hash_of(path: &Path) -> Result<Option<String>, FileError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(sha256_hex(&bytes))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(failed("read", path)(e)),
    }
}

/// The text at `path`; `None` when nothing is.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(failed("read", path)(e)),
    }
}

/// Writes `bytes` to `to` through a partial file renamed into place, mode [`FILE_MODE`].
pub(crate) fn write_whole(to: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let partial = beside(to, PARTIAL_SUFFIX);
    let mut file: File = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&partial)
        .map_err(failed("create", &partial))?;
    // A partial file left by an earlier crash keeps its old mode; `mode` applies to new ones.
    file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
        .map_err(failed("set the mode of", &partial))?;
    file.write_all(bytes).map_err(failed("write", &partial))?;
    file.sync_all().map_err(failed("sync", &partial))?;
    std::fs::rename(&partial, to).map_err(failed("rename into place", to))
}

fn sync_dir(path: &Path) -> Result<(), FileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(failed("sync the directory of", path))
}

/// Stages `text` beside `path` (the first phase); returns its hash.
pub fn stage(path: &Path, text: &str) -> Result<String, FileError> {
    write_whole(&beside(path, STAGED_SUFFIX), text.as_bytes())?;
    Ok(sha256_hex(text.as_bytes()))
}

/// The hash of the file staged beside `path`; `None` when none is.
pub fn staged_hash(path: &Path) -> Result<Option<String>, FileError> {
    hash_of(&beside(path, STAGED_SUFFIX))
}

/// The second phase: the file at `path` (if any) is kept as the previous one, the staged file
/// takes its place. A file that did not exist leaves no previous one, so that putting the
/// previous back removes what was installed.
pub fn install(path: &Path) -> Result<(), FileError> {
    let staged = beside(path, STAGED_SUFFIX);
    let previous = previous_path(path);
    match read(path)? {
        Some(current) => write_whole(&previous, &current)?,
        None => match std::fs::remove_file(&previous) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("remove", &previous)(e)),
        },
    }
    std::fs::rename(&staged, path).map_err(failed("install", path))?;
    sync_dir(path)
}

/// Puts back what was at `path` before the last install: the previous file, or nothing.
pub fn restore_previous(path: &Path) -> Result<(), FileError> {
    match read(&previous_path(path))? {
        Some(bytes) => write_whole(path, &bytes)?,
        None => match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("remove", path)(e)),
        },
    }
    sync_dir(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn install_keeps_the_previous_file_and_restore_puts_it_back() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("qserv-czar.cnf");
        std::fs::write(&path, "old\n").unwrap_or_else(|e| panic!("{e}"));

        let hash = stage(&path, "new ✓\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(staged_hash(&path).ok().flatten(), Some(hash.clone()));
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("old\n"),
            "staging leaves the file alone"
        );
        install(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("new ✓\n")
        );
        assert_eq!(hash_of(&path).ok().flatten(), Some(hash));
        assert_eq!(mode(&path), FILE_MODE);
        assert_eq!(
            std::fs::read_to_string(previous_path(&path))
                .ok()
                .as_deref(),
            Some("old\n")
        );
        assert_eq!(staged_hash(&path).ok().flatten(), None);

        restore_previous(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(&path).ok().as_deref(),
            Some("old\n")
        );
        assert_eq!(mode(&path), FILE_MODE);
    }

    #[test]
    fn a_file_that_was_not_there_is_removed_again() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("new.cnf");
        std::fs::write(previous_path(&path), "stale").unwrap_or_else(|e| panic!("{e}"));
        stage(&path, "x").unwrap_or_else(|e| panic!("{e}"));
        install(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!previous_path(&path).exists(), "no stale previous file");
        restore_previous(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!path.exists());
    }

    #[test]
    fn a_missing_directory_is_a_clear_error() {
        let err = stage(Path::new("/nonexistent-dir/x.cnf"), "x")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.starts_with("cannot create /nonexistent-dir/x.cnf.qserv-staged"),
            "{err}"
        );
    }
}
