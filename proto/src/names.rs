//! Lower-case names of the wire enums, as they appear in specs, flags, tables and JSON.

use crate::v1::{Health, ServiceState};

pub use qserv_model::UnknownName;

pub use qserv_model::name::{InvalidName, validate_name};

/// The user information of `scheme://user[:password]@host…` (`user` or `user:password`), if the
/// URL has any: a password there would sit on command lines and in unit files, and an agent
/// URL's would be echoed into errors and the audit trail.
pub fn url_userinfo(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    authority.rsplit_once('@').map(|(userinfo, _)| userinfo)
}

/// The password part of a URL's user information, if any.
pub fn url_password(url: &str) -> Option<&str> {
    url_userinfo(url)?
        .split_once(':')
        .map(|(_, password)| password)
}

pub fn health_name(health: Health) -> &'static str {
    match health {
        Health::Ok => "ok",
        Health::Degraded => "degraded",
        Health::Unknown => "unknown",
    }
}

pub fn services_name(state: ServiceState) -> &'static str {
    match state {
        ServiceState::Stopped => "stopped",
        ServiceState::Running => "running",
        ServiceState::Unknown => "unknown",
        ServiceState::None => "none",
        ServiceState::Starting => "starting",
    }
}

/// A registry row's state as Qserv reads its flags (`is_enabled`, `is_read_only`): disabled
/// whatever the read-only flag says.
pub fn worker_state_name(is_enabled: bool, is_read_only: bool) -> &'static str {
    match (is_enabled, is_read_only) {
        (false, _) => "disabled",
        (true, true) => "read-only",
        (true, false) => "enabled",
    }
}

/// A name from a peer (a job id, a worker id) made safe as part of a file name: what is not
/// ASCII alphanumeric, `-`, `_` or `.` becomes `_`, and a leading dot too (no hidden files, no
/// `..`), at most 120 characters.
pub fn file_part(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    if out.is_empty() {
        out.push('_');
    }
    out.chars().take(120).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_states_follow_qservs_flags() {
        assert_eq!(worker_state_name(true, false), "enabled");
        assert_eq!(worker_state_name(true, true), "read-only");
        assert_eq!(worker_state_name(false, false), "disabled");
        assert_eq!(worker_state_name(false, true), "disabled");
    }

    #[test]
    fn file_parts_cannot_climb_or_hide() {
        assert_eq!(file_part("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(file_part("東京"), "__");
        assert_eq!(file_part(""), "_");
        assert_eq!(file_part("j12"), "j12");
    }

    proptest::proptest! {
        #[test]
        fn a_file_part_is_one_plain_name(text in "\\PC{0,200}") {
            let part = file_part(&text);
            proptest::prop_assert!(!part.is_empty() && part.chars().count() <= 120);
            proptest::prop_assert!(!part.starts_with('.'));
            proptest::prop_assert!(part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')));
        }
    }

    #[test]
    fn user_information_of_urls() {
        assert_eq!(
            url_password("mysql://root:s3cr@t@db:3306/x"),
            Some("s3cr@t")
        );
        assert_eq!(url_password("mysql://root@db:3306"), None);
        assert_eq!(url_userinfo("https://u:p@h:7080"), Some("u:p"));
        assert_eq!(url_userinfo("https://h:7080/a@b"), None);
        assert_eq!(url_userinfo("no scheme"), None);
    }

    #[test]
    fn names_are_restricted() {
        assert!(validate_name("node", "worker-1.a_b").is_ok());
        assert!(validate_name("node", "").is_err());
        assert!(validate_name("node", &"x".repeat(65)).is_err());
        assert!(validate_name("node", "x'; DROP DATABASE mysql; --").is_err());
    }
}
