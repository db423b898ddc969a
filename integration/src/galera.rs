//! A Galera cluster on loopback for tests: MariaDB servers with synchronous multi-primary
//! replication (`galera-4`), each started once the previous one is `Synced`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::free_port;
use crate::mariadb::MariaDb;

const PROVIDER: &str = "/usr/lib/galera/libgalera_smm.so";
const SYNC_LIMIT: Duration = Duration::from_secs(120);

/// The ports one node listens on besides SQL: group communication, incremental and full state
/// transfer.
#[derive(Debug, Clone, Copy)]
struct Ports {
    group: u16,
    ist: u16,
    sst: u16,
}

#[derive(Debug)]
pub struct Galera {
    pub nodes: Vec<MariaDb>,
    ports: Vec<Ports>,
}

impl Galera {
    /// Starts `size` nodes; returns once every one is `Synced` in a cluster of `size`.
    pub fn start(size: usize) -> Galera {
        assert!(
            PathBuf::from(PROVIDER).is_file(),
            "{PROVIDER} not found: install it with 'apt-get install -y galera-4 rsync'"
        );
        let ports: Vec<Ports> = (0..size)
            .map(|_| Ports {
                group: free_port(),
                ist: free_port(),
                sst: free_port(),
            })
            .collect();
        let mut galera = Galera {
            nodes: Vec::new(),
            ports,
        };
        for index in 0..size {
            let mut node = MariaDb::prepare(true);
            node.set_extra(galera.options(index, index == 0));
            node.spawn();
            node.wait_ready(SYNC_LIMIT);
            wait_synced(&node);
            // Later restarts join the cluster instead of founding a new one.
            node.set_extra(galera.options(index, false));
            galera.nodes.push(node);
        }
        let size_now = galera.nodes[0].execute("SHOW STATUS LIKE 'wsrep_cluster_size'");
        assert!(
            size_now.trim().ends_with(&size.to_string()),
            "the cluster did not reach {size} nodes: {size_now}"
        );
        galera
    }

    fn options(&self, index: usize, founder: bool) -> Vec<String> {
        let peers: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{}", p.group))
            .collect();
        let own = self.ports[index];
        let mut options = vec![
            "--wsrep-on=ON".to_owned(),
            format!("--wsrep-provider={PROVIDER}"),
            format!("--wsrep-cluster-address=gcomm://{}", peers.join(",")),
            format!(
                "--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:{};ist.recv_addr=127.0.0.1:{}",
                own.group, own.ist
            ),
            format!("--wsrep-node-address=127.0.0.1:{}", own.group),
            format!("--wsrep-sst-receive-address=127.0.0.1:{}", own.sst),
            "--wsrep-sst-method=rsync".to_owned(),
            "--binlog-format=ROW".to_owned(),
            "--innodb-autoinc-lock-mode=2".to_owned(),
        ];
        if founder {
            options.push("--wsrep-new-cluster".to_owned());
        }
        options
    }

    /// The SQL URLs of every node, as a coordinator's `--store` takes them.
    pub fn urls(&self, user: &str, database: &str) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("mysql://{user}@127.0.0.1:{}/{database}", n.port()))
            .collect()
    }

    /// Restarts a killed node; it rejoins the cluster and catches up.
    pub fn rejoin(&mut self, index: usize) {
        self.nodes[index].restart();
        wait_synced(&self.nodes[index]);
    }
}

fn wait_synced(node: &MariaDb) {
    let start = Instant::now();
    loop {
        let state = node
            .try_execute("SHOW STATUS LIKE 'wsrep_local_state_comment'")
            .unwrap_or_default();
        if state.contains("Synced") {
            return;
        }
        assert!(
            start.elapsed() < SYNC_LIMIT,
            "the Galera node on port {} was not Synced within {SYNC_LIMIT:?}: {state}",
            node.port()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
