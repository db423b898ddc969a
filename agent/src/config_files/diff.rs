//! What writing a configuration file would change, as a unified diff (made by `similar`).

use similar::TextDiff;

/// The unified diff from `old` (the file at `path`, empty when there is none) to `new`; empty
/// when they are the same. The caller masks secrets: the rendered text holds them.
pub fn unified(path: &str, old: &str, new: &str) -> String {
    if old == new {
        return String::new();
    }
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (now)"), &format!("{path} (rendered)"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_text_has_no_diff_and_a_change_shows_its_lines() {
        assert_eq!(unified("/etc/x.cnf", "a\nb\n", "a\nb\n"), "");
        let diff = unified("/etc/x.cnf", "a\nport = 1\n", "a\nport = 2 ✓\n");
        assert!(
            diff.starts_with("--- /etc/x.cnf (now)\n+++ /etc/x.cnf (rendered)\n"),
            "{diff}"
        );
        assert!(diff.contains("-port = 1\n+port = 2 ✓\n"), "{diff}");
    }
}
