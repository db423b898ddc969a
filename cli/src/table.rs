//! Plain aligned text tables for terminals and `less`.

/// Text for a terminal cell: control characters (escape sequences, line breaks, tabs) and
/// bidirectional overrides become U+FFFD. Cells hold what agents and databases report, such as
/// worker ids that Qserv's own service accounts can write.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .map(|c| {
            let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || bidi { '\u{fffd}' } else { c }
        })
        .collect()
}

/// Renders rows under headers, columns separated by two spaces, the last column unpadded.
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| sanitize(cell)).collect())
        .collect();
    let rows = rows.as_slice();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths.get(i).copied().unwrap_or(0) - cell.chars().count() + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_columns() {
        let out = render(
            &["NODE", "ROLE"],
            &[
                vec!["worker-10".into(), "worker".into()],
                vec!["c".into(), "czar".into()],
            ],
        );
        assert_eq!(out, "NODE       ROLE\nworker-10  worker\nc          czar\n");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let out = render(
            &["ID"],
            &[vec!["w\u{1b}[31mred\u{7}\nx\u{202e}y\u{9b}".into()]],
        );
        assert_eq!(
            out,
            "ID\nw\u{fffd}[31mred\u{fffd}\u{fffd}x\u{fffd}y\u{fffd}\n"
        );
    }
}
