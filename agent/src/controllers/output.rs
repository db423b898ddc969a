//! Where an exec service's output goes: a file per service in the agent's state directory, not a
//! pipe. A pipe would break when the agent dies, and the service with it at its next write; a
//! file outlives the agent, and an agent that takes the service over reads the same file.
//!
//! The file is bounded: once it passes `MAX_BYTES` it is cut back to nothing (the service writes
//! with `O_APPEND`, so it goes on at the new end). A failure quotes its last lines, with every
//! secret of the node masked.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use qserv_model::ServiceName;

use crate::node::secrets::Secrets;

/// The size at which an output file is cut back.
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;
/// How much of the end of the file a failure reads.
const TAIL_BYTES: u64 = 4096;
/// How many of the last lines a failure quotes.
const TAIL_LINES: usize = 10;

pub fn path(state_dir: &Path, name: &ServiceName) -> PathBuf {
    state_dir.join("services").join(format!("{name}.log"))
}

/// Opens the output file for a new start of the service: emptied, appended to.
pub fn open_for_start(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|file| {
            file.set_len(0)?;
            Ok(file)
        })
}

/// Cuts the file back when it passed the bound; says whether it did.
pub fn bound(path: &Path) -> bool {
    let too_big = std::fs::metadata(path).is_ok_and(|m| m.len() > MAX_BYTES);
    too_big
        && OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(0))
            .is_ok()
}

/// The last lines of the output, secrets masked, control characters dropped; empty when there
/// is none.
pub fn tail(path: &Path, secrets: &Secrets) -> String {
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut file| {
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))?;
        file.read_to_end(&mut bytes)
    });
    if read.is_err() {
        return String::new();
    }
    last_lines(&String::from_utf8_lossy(&bytes), secrets)
}

/// The text's last lines, masked and cleaned. The first line of a window that starts mid-line
/// may be cut; it is still the service's own words.
pub fn last_lines(text: &str, secrets: &Secrets) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(TAIL_LINES);
    let joined = lines[from..]
        .iter()
        .map(|line| {
            line.chars()
                .filter(|c| !c.is_control() || *c == '\t')
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n");
    secrets.redact(&joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(text: &str) -> Secrets {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("secrets.toml");
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
        Secrets::load(&path, true).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_tail_quotes_the_last_lines_with_secrets_masked() {
        let secrets = secrets("repl_password = \"s3cret-Ünï-pass\"\n");
        let mut text = String::new();
        for i in 0..30 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str("connecting with s3cret-Ünï-pass\x1b[31m\n\n");
        let tail = last_lines(&text, &secrets);
        assert_eq!(tail.lines().count(), 10);
        assert!(tail.starts_with("line 21"), "{tail}");
        assert!(tail.ends_with("connecting with [redacted][31m"), "{tail}");
        assert!(!tail.contains("s3cret"), "{tail}");
    }

    #[test]
    fn a_file_past_the_bound_is_cut_back_and_a_new_start_empties_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let name = ServiceName::parse("proxy").unwrap_or_else(|e| panic!("{e}"));
        let path = path(dir.path(), &name);
        let file = open_for_start(&path).unwrap_or_else(|e| panic!("{e}"));
        file.set_len(MAX_BYTES + 1)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(bound(&path));
        assert_eq!(std::fs::metadata(&path).map(|m| m.len()).ok(), Some(0));
        assert!(!bound(&path));
        std::fs::write(&path, "old run\n").unwrap_or_else(|e| panic!("{e}"));
        drop(open_for_start(&path));
        assert_eq!(tail(&path, &Secrets::default()), "");
    }
}
