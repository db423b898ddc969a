//! The exec controller's record of the process group it started. An agent killed with SIGKILL
//! leaves its services running; the next agent finds them through this record instead of
//! starting a second copy. The boot id guards against a group id reused after a reboot.

use std::path::{Path, PathBuf};

use nix::sys::signal::killpg;
use nix::unistd::Pid;
use qserv_model::ServiceName;

/// A recorded group: its id and the boot it was started in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub pgid: i32,
    pub boot_id: String,
}

impl GroupRecord {
    pub fn parse(text: &str) -> Option<GroupRecord> {
        let mut words = text.split_whitespace();
        let pgid = words.next()?.parse::<i32>().ok().filter(|p| *p > 1)?;
        let boot_id = words.next()?.to_owned();
        Some(GroupRecord { pgid, boot_id })
    }

    pub fn format(&self) -> String {
        format!("{} {}\n", self.pgid, self.boot_id)
    }
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Where a service's record lives in the agent's state directory.
pub fn record_path(state_dir: &Path, name: &ServiceName) -> PathBuf {
    state_dir.join("services").join(format!("{name}.pgid"))
}

/// Where an agent of the single-service versions kept its one record.
pub fn single_service_record(state_dir: &Path) -> PathBuf {
    state_dir.join("service.pgid")
}

/// Records `pgid` (written whole: a new file renamed over the old one).
pub fn save(path: &Path, pgid: i32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let record = GroupRecord {
        pgid,
        boot_id: boot_id(),
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, record.format())?;
    std::fs::rename(&tmp, path)
}

pub fn clear(path: &Path) {
    let _ = std::fs::remove_file(path);
}

/// Whether any process of the group is alive.
pub fn alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// The recorded group when it was started in this boot and still has a process.
pub fn find_running(path: &Path) -> Option<i32> {
    let record = GroupRecord::parse(&std::fs::read_to_string(path).ok()?)?;
    (record.boot_id == boot_id() && alive(record.pgid)).then_some(record.pgid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_ignored() {
        let record = GroupRecord {
            pgid: 4242,
            boot_id: "b-1".to_owned(),
        };
        assert_eq!(GroupRecord::parse(&record.format()), Some(record));
        for bad in ["", "x y", "1 boot", "0 boot", "-5 boot", "42"] {
            assert_eq!(GroupRecord::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_record_from_another_boot_or_a_dead_group_is_not_found() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let name = ServiceName::parse("worker-xrootd").unwrap_or_else(|e| panic!("{e}"));
        let path = record_path(dir.path(), &name);
        assert_eq!(save(&path, 4242).ok(), Some(()));
        std::fs::write(&path, "4242 another-boot\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(find_running(&path), None);
        assert_eq!(find_running(&dir.path().join("missing")), None);
    }
}
