//! Which rows deleting a worker's `config_worker` row takes with it. Qserv's replication
//! schema ties `config_worker_ext`, `replica` (and `replica_file` under it) and
//! `transaction_contrib` (with `_ext`, `_warn`, `_retry`) to the worker by `ON DELETE
//! CASCADE`; the set is read from the server's own foreign keys, so any schema version is
//! covered, and one without those tables has nothing to lose.
//!
//! Pure: the foreign keys come in, the tables to read and how to select their rows go out.

use std::collections::{BTreeSet, VecDeque};

/// The database the cascade lives in.
pub const REPLICA_DATABASE: &str = "qservReplica";
/// The worker registry: the cascade's root.
pub const ROOT: &str = "config_worker";
/// Deeper than Qserv's schema goes (three levels); a cycle cannot make the walk endless.
const MAX_DEPTH: usize = 8;

/// A foreign key whose parent row's deletion deletes the child's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CascadeKey {
    pub child: String,
    pub parent: String,
    /// Child columns, in key order, and the parent columns they reference.
    pub columns: Vec<(String, String)>,
}

/// One table the cascade reaches, and the SQL condition that selects its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    pub table: String,
    pub condition: String,
}

/// A name quoted as a MariaDB identifier.
pub fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Every table the deletion of `worker`'s row reaches, parents before children (the order a
/// restore inserts them in), each with the condition selecting exactly its cascaded rows.
pub fn reach(worker_literal: &str, keys: &[CascadeKey]) -> Vec<Reached> {
    let root = Reached {
        table: ROOT.to_owned(),
        condition: format!("{} = {worker_literal}", ident("name")),
    };
    let mut out = vec![root.clone()];
    let mut seen: BTreeSet<String> = BTreeSet::from([ROOT.to_owned()]);
    let mut queue: VecDeque<(Reached, usize)> = VecDeque::from([(root, 0)]);
    while let Some((parent, depth)) = queue.pop_front() {
        if depth >= MAX_DEPTH {
            continue;
        }
        for key in keys.iter().filter(|k| k.parent == parent.table) {
            // A table reached twice (two paths from the worker) is read once, by the first;
            // Qserv's schema has no such diamond.
            if !seen.insert(key.child.clone()) {
                continue;
            }
            let child_cols: Vec<String> = key.columns.iter().map(|(c, _)| ident(c)).collect();
            let parent_cols: Vec<String> = key.columns.iter().map(|(_, p)| ident(p)).collect();
            let lhs = if child_cols.len() == 1 {
                child_cols[0].clone()
            } else {
                format!("({})", child_cols.join(", "))
            };
            let reached = Reached {
                table: key.child.clone(),
                condition: format!(
                    "{lhs} IN (SELECT {} FROM {}.{} WHERE {})",
                    parent_cols.join(", "),
                    ident(REPLICA_DATABASE),
                    ident(&parent.table),
                    parent.condition
                ),
            };
            out.push(reached.clone());
            queue.push_back((reached, depth + 1));
        }
    }
    out
}

/// How the server renders one column of a row as a SQL literal that loads back unchanged:
/// numbers as numbers, binary data in hex, text (any UTF-8) and temporal values quoted by
/// `QUOTE()`, NULL as NULL.
pub fn literal_expr(column: &str, data_type: &str) -> String {
    let c = ident(column);
    let expr = match data_type.to_ascii_lowercase().as_str() {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
        | "numeric" | "float" | "double" | "real" | "year" | "bit" => {
            format!("IF({c} IS NULL, 'NULL', CAST({c} + 0 AS CHAR))")
        }
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            format!("IF({c} IS NULL, 'NULL', IF(LENGTH({c}) = 0, '''''', CONCAT('0x', HEX({c}))))")
        }
        _ => format!("QUOTE({c})"),
    };
    format!("CONVERT({expr} USING utf8mb4)")
}

/// Rows per INSERT statement in a saved file: short enough for any `max_allowed_packet`.
pub const ROWS_PER_INSERT: usize = 200;

/// One INSERT of `rows` (each already a list of literals) into `table`.
pub fn insert_statement(table: &str, columns: &[String], rows: &[Vec<String>]) -> String {
    let cols: Vec<String> = columns.iter().map(|c| ident(c)).collect();
    let values: Vec<String> = rows
        .iter()
        .map(|row| format!("({})", row.join(", ")))
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES\n  {};\n",
        ident(table),
        cols.join(", "),
        values.join(",\n  ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(child: &str, parent: &str, cols: &[(&str, &str)]) -> CascadeKey {
        CascadeKey {
            child: child.to_owned(),
            parent: parent.to_owned(),
            columns: cols
                .iter()
                .map(|(c, p)| ((*c).to_owned(), (*p).to_owned()))
                .collect(),
        }
    }

    /// Qserv's replication schema, version 15, as its foreign keys with ON DELETE CASCADE.
    fn qserv_keys() -> Vec<CascadeKey> {
        vec![
            key(
                "config_worker_ext",
                "config_worker",
                &[("worker_name", "name")],
            ),
            key("replica", "config_worker", &[("worker", "name")]),
            key("replica", "config_database", &[("database", "database")]),
            key("replica_file", "replica", &[("replica_id", "id")]),
            key(
                "transaction_contrib",
                "config_worker",
                &[("worker", "name")],
            ),
            key(
                "transaction_contrib",
                "transaction",
                &[("transaction_id", "id")],
            ),
            key(
                "transaction_contrib_ext",
                "transaction_contrib",
                &[("contrib_id", "id")],
            ),
            key(
                "transaction_contrib_warn",
                "transaction_contrib",
                &[("contrib_id", "id")],
            ),
            key(
                "transaction_contrib_retry",
                "transaction_contrib",
                &[("contrib_id", "id")],
            ),
        ]
    }

    #[test]
    fn the_cascade_reaches_what_qserv_deletes_parents_first() {
        let reached = reach("'w1'", &qserv_keys());
        let tables: Vec<&str> = reached.iter().map(|r| r.table.as_str()).collect();
        assert_eq!(
            tables,
            [
                "config_worker",
                "config_worker_ext",
                "replica",
                "transaction_contrib",
                "replica_file",
                "transaction_contrib_ext",
                "transaction_contrib_warn",
                "transaction_contrib_retry"
            ]
        );
        assert_eq!(
            reached[4].condition,
            "`replica_id` IN (SELECT `id` FROM `qservReplica`.`replica` WHERE `worker` IN \
             (SELECT `name` FROM `qservReplica`.`config_worker` WHERE `name` = 'w1'))"
        );
        // Tables whose parents are not deleted are not reached.
        assert!(!tables.contains(&"transaction"));
    }

    #[test]
    fn a_schema_without_the_tables_reaches_only_the_row() {
        let reached = reach("'w1'", &[]);
        assert_eq!(reached.len(), 1);
        assert_eq!(reached[0].condition, "`name` = 'w1'");
    }

    #[test]
    fn a_cycle_ends() {
        let keys = vec![
            key("a", "config_worker", &[("w", "name")]),
            key("b", "a", &[("x", "id")]),
            key("a", "b", &[("y", "id")]),
        ];
        assert_eq!(reach("'w'", &keys).len(), 3);
    }

    #[test]
    fn composite_keys_compare_tuples() {
        let keys = vec![key("c", "config_worker", &[("a", "name"), ("b", "other")])];
        assert!(
            reach("'w'", &keys)[1]
                .condition
                .starts_with("(`a`, `b`) IN (SELECT `name`, `other`")
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a`b"), "`a``b`");
    }

    #[test]
    fn literals_by_type() {
        assert!(literal_expr("id", "INT").contains("CAST(`id` + 0 AS CHAR)"));
        assert!(literal_expr("context", "mediumblob").contains("HEX(`context`)"));
        assert!(literal_expr("url", "text").contains("QUOTE(`url`)"));
    }

    #[test]
    fn inserts_list_columns_and_rows() {
        let sql = insert_statement(
            "replica",
            &["id".to_owned(), "worker".to_owned()],
            &[
                vec!["1".to_owned(), "'w'".to_owned()],
                vec!["2".to_owned(), "NULL".to_owned()],
            ],
        );
        assert_eq!(
            sql,
            "INSERT INTO `replica` (`id`, `worker`) VALUES\n  (1, 'w'),\n  (2, NULL);\n"
        );
    }
}
