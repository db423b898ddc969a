//! Fresh install (DESIGN §7): `qserv install` of a whole instance (czar-0, repl-0, N workers, each
//! with its own MariaDB and agent) from a migrations directory laid out like Qserv's: for each
//! module the bundled None-to-1 script and a chain of 16 upgrade scripts (a table created,
//! altered, indexed and filled, a view, and `DO SLEEP(0.05)` as a known floor), one of them a
//! template. Reports the install's wall time ÷ the slowest node's own script time (the sum of
//! `duration_ms` in its `qserv_agent.applied_scripts`).
//!
//! `cargo bench -p qserv-integration --bench install` (sizes: QSERV_BENCH_SIZES=8,16,32).

use std::time::{Duration, Instant};

use qserv_integration::migrations::migrations_dir;
use qserv_integration::{Cluster, NodeSetup};

const LIMIT: Duration = Duration::from_secs(120);
/// The version every module reaches: None-to-1, then 1-to-2 … 16-to-17.
const TARGET: i64 = 17;
/// The step whose script is a template.
const TEMPLATE_STEP: i64 = 8;
const MODULES: [&str; 3] = ["czar", "worker", "repl"];
const MODULE_DATABASES: &str = "'qservMeta', 'qservw_worker', 'qservReplica'";
const ROWS: i64 = 50;

/// The script that takes a module's database from `from` to `from + 1`; it runs with that
/// database as the default one, as smig runs Qserv's own.
fn upgrade_script(module: &str, from: i64) -> String {
    let table = format!("bench_{module}_step_{from}");
    let rows: Vec<String> = (1..=ROWS)
        .map(|i| format!("({}, 'chunk-{from}-{i}')", i % 7))
        .collect();
    let mut sql = format!(
        "-- {module} schema {from} -> {}: a new table, its index and view, seeded.\n\
         CREATE TABLE IF NOT EXISTS `{table}` (\n  \
           `id` INT NOT NULL AUTO_INCREMENT,\n  \
           `chunk_id` INT NOT NULL,\n  \
           `label` VARCHAR(64) NOT NULL,\n  \
           PRIMARY KEY (`id`)\n\
         ) ENGINE = InnoDB;\n\n\
         ALTER TABLE `{table}` ADD COLUMN `updated` TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP;\n\n\
         CREATE INDEX `idx_chunk` ON `{table}` (`chunk_id`);\n\n\
         INSERT INTO `{table}` (`chunk_id`, `label`) VALUES\n  {};\n\n",
        from + 1,
        rows.join(",\n  ")
    );
    if from == TEMPLATE_STEP {
        sql.push_str(&format!(
            "INSERT INTO `{table}` (`chunk_id`, `label`)\n  \
             SELECT -1, COALESCE(NULLIF('{{{{ worker_name | default(\"\") }}}}', ''), 'unnamed') FROM DUAL;\n\n"
        ));
    }
    if from > 1 {
        sql.push_str(&format!(
            "ALTER TABLE `bench_{module}_step_{}` ADD COLUMN `superseded_by` INT NULL;\n\n",
            from - 1
        ));
    }
    sql.push_str(&format!(
        "CREATE OR REPLACE VIEW `{table}_per_chunk` AS\n  \
         SELECT `chunk_id`, COUNT(*) AS `n` FROM `{table}` GROUP BY `chunk_id`;\n\n\
         DO SLEEP(0.05);\n"
    ));
    sql
}

/// (module, file name, content) of the 16 upgrade scripts of every module.
fn upgrade_chain() -> Vec<(&'static str, String, String)> {
    MODULES
        .iter()
        .flat_map(|module| {
            (1..TARGET).map(move |from| {
                let suffix = if from == TEMPLATE_STEP {
                    ".sql.jinja"
                } else {
                    ".sql"
                };
                (
                    *module,
                    format!("migrate-{from}-to-{}{suffix}", from + 1),
                    upgrade_script(module, from),
                )
            })
        })
        .collect()
}

/// (scripts applied, own time in ms, module databases present) of one node.
fn node_facts(cluster: &Cluster, name: &str) -> (usize, f64, usize) {
    let db = cluster.db(name);
    let row = db
        .execute("SELECT COUNT(*), COALESCE(SUM(duration_ms), 0) FROM qserv_agent.applied_scripts");
    let mut fields = row.split('\t');
    let count = fields
        .next()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("{name}: unreadable applied_scripts count: {row:?}"));
    let own_ms = fields
        .next()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{name}: unreadable applied_scripts durations: {row:?}"));
    let databases = db
        .execute(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ({MODULE_DATABASES})"
        ))
        .parse::<usize>()
        .unwrap_or_else(|e| panic!("{name}: unreadable database count: {e}"));
    for database in ["qservMeta", "qservw_worker", "qservReplica"] {
        let present = db.execute(&format!(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{database}'"
        ));
        if present == "1" {
            let version = db.execute(&format!(
                "SELECT value FROM `{database}`.QMetadata WHERE metakey = 'version'"
            ));
            assert_eq!(
                version,
                TARGET.to_string(),
                "{name}: {database} reads version {version}"
            );
        }
    }
    (count, own_ms, databases)
}

/// How long each step of job `id` took, from the coordinator's own record.
fn step_times(url: String, id: String) -> Vec<(String, i64)> {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    runtime.block_on(async move {
        use qserv_proto::v1::JobRequest;
        use qserv_proto::v1::coordinator_client::CoordinatorClient;
        let Ok(mut client) = CoordinatorClient::connect(url).await else {
            return Vec::new();
        };
        let Ok(job) = client.get_job(JobRequest { id }).await else {
            return Vec::new();
        };
        job.into_inner()
            .steps
            .into_iter()
            .map(|s| (s.name, s.finished_at_ms - s.started_at_ms))
            .collect()
    })
}

fn run(n: usize) {
    let names = Cluster::standard_nodes(n);
    let setup: Vec<NodeSetup<'_>> = names
        .iter()
        .map(|(name, role)| NodeSetup { name, role })
        .collect();
    let started = Instant::now();
    let mut cluster = Cluster::start("bench", &setup);
    let chain = upgrade_chain();
    let extra: Vec<(&str, &str, &str)> = chain
        .iter()
        .map(|(module, file, content)| (*module, file.as_str(), content.as_str()))
        .collect();
    let dir = migrations_dir(true, &extra);
    cluster.use_migrations(&dir);
    for (name, _) in &names {
        cluster
            .coordinator
            .wait_node(name, "ready at target 17", LIMIT, |node| {
                node["db_ready"] == true
                    && node["schema"]
                        .as_array()
                        .is_some_and(|s| !s.is_empty() && s.iter().all(|m| m["target"] == TARGET))
            });
    }
    eprintln!(
        "n={n}: {} nodes up in {:.1} s",
        names.len(),
        started.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let out = cluster.coordinator.cli(&["-o", "json", "install"]);
    let wall = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(
        out.code, 0,
        "install failed:\n{}\n{}",
        out.stdout, out.stderr
    );
    let job = out.json();

    let status = cluster.coordinator.status();
    let mut scripts = 0;
    let mut databases = 0;
    let mut slowest = (0.0_f64, String::new());
    for (name, _) in &names {
        let node = status["nodes"]
            .as_array()
            .and_then(|nodes| nodes.iter().find(|n| n["name"] == name.as_str()))
            .unwrap_or_else(|| panic!("no node {name} in the status"));
        let schema = node["schema"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no schema in the status: {node}"));
        assert!(!schema.is_empty(), "{name}: no module in the status");
        for module in schema {
            assert!(
                module["version"] == TARGET && module["target"] == TARGET,
                "{name}: not at version {TARGET} after install: {module}"
            );
        }
        let (count, own_ms, present) = node_facts(&cluster, name);
        assert_eq!(
            present,
            schema.len(),
            "{name}: {present} module databases, {} in the status",
            schema.len()
        );
        assert_eq!(
            count,
            present * TARGET as usize,
            "{name}: {count} scripts applied for {present} module databases"
        );
        scripts += count;
        databases += present;
        if own_ms > slowest.0 {
            slowest = (own_ms, name.clone());
        }
    }
    assert_eq!(
        scripts,
        databases * TARGET as usize,
        "{scripts} scripts applied across {databases} module databases"
    );
    assert!(
        databases >= names.len(),
        "only {databases} module databases on {} nodes",
        names.len()
    );
    assert!(slowest.0 > 0.0, "no node spent any time applying scripts");

    let id = job["id"].as_str().unwrap_or_default().to_owned();
    let steps: Vec<String> = step_times(cluster.coordinator.url(), id)
        .into_iter()
        .map(|(name, ms)| format!("{name} {ms}"))
        .collect();
    eprintln!(
        "n={n}: slowest node {} ({:.0} ms); steps (ms): {}",
        slowest.1,
        slowest.0,
        steps.join(", ")
    );
    println!(
        "| {n:>2} | {wall:>8.0} | {:>8.0} | {:>5.2} | {scripts:>5} |",
        slowest.0,
        wall / slowest.0,
    );
}

fn main() {
    let sizes: Vec<usize> = std::env::var("QSERV_BENCH_SIZES")
        .unwrap_or_else(|_| "8,16,32".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "fresh install: None-to-1 + 16 upgrade scripts per module (each with DO SLEEP(0.05)); \
         ratio = install wall / slowest node's own script time [target <= 1.2 at N = 32]"
    );
    println!("|  N | install wall ms | slowest node ms | ratio | scripts applied |");
    println!("|---:|---:|---:|---:|---:|");
    for n in sizes {
        run(n);
    }
}
