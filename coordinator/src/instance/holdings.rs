//! What removing a worker would erase from Qserv's replication records, said to an operator
//! before anything is erased (DESIGN §16). Pure.

use crate::agents::api::Holdings;

/// The refusal for removing `name` while the cascade would delete rows; `None` when it would
/// delete none (nothing held, or a schema without those tables).
pub fn refusal(name: &str, held: &Holdings) -> Option<String> {
    if held.cascaded.is_empty() {
        return None;
    }
    let mut parts: Vec<String> = held
        .databases
        .iter()
        .map(|d| {
            let mut text = format!("database {}: {} replica(s)", d.database, d.replicas);
            if d.sole_copies > 0 {
                let chunks: Vec<String> = d.sole_chunks.iter().map(u32::to_string).collect();
                let more = d.sole_copies.saturating_sub(d.sole_chunks.len() as u64);
                text.push_str(&format!(
                    ", {} chunk(s) with no other replica ({}{})",
                    d.sole_copies,
                    chunks.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    }
                ));
            }
            if d.contributions > 0 {
                text.push_str(&format!(", {} ingest contribution(s)", d.contributions));
            }
            text
        })
        .collect();
    let rows: Vec<String> = held
        .cascaded
        .iter()
        .map(|(table, n)| format!("{table} {n}"))
        .collect();
    parts.push(format!("rows: {}", rows.join(", ")));
    Some(format!(
        "removing {name} would delete, through Qserv's own foreign keys, its replication records: {}; nothing was changed. Re-replicate its chunks first, or pass --forget-replicas to save the rows on the repl node and delete them",
        parts.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::api::DatabaseHoldings;

    #[test]
    fn nothing_held_is_no_refusal() {
        assert_eq!(refusal("worker-1", &Holdings::default()), None);
    }

    #[test]
    fn a_refusal_names_the_database_the_sole_copies_and_the_way_out() {
        let held = Holdings {
            databases: vec![DatabaseHoldings {
                database: "dp1".to_owned(),
                replicas: 6,
                sole_copies: 12,
                sole_chunks: (1..=10).collect(),
                contributions: 4,
            }],
            cascaded: vec![("replica".to_owned(), 6), ("replica_file".to_owned(), 12)],
        };
        let why = refusal("worker-1", &held).unwrap_or_default();
        assert!(why.contains("database dp1: 6 replica(s)"), "{why}");
        assert!(
            why.contains("12 chunk(s) with no other replica (1, 2, 3"),
            "{why}"
        );
        assert!(why.contains("and 2 more"), "{why}");
        assert!(why.contains("4 ingest contribution(s)"), "{why}");
        assert!(why.contains("replica_file 12"), "{why}");
        assert!(why.contains("--forget-replicas"), "{why}");
    }
}
