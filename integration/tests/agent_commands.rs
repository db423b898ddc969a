//! An agent checks every command (DESIGN §2): meant for its node, role and instance, not older
//! than the highest epoch it has seen, and for changes, out of `normal` with services stopped.
//! A refused command leaves the database untouched; an accepted one replies with the status
//! checked after it.

use std::time::Duration;

use qserv_integration::{AgentProcess, MariaDb};
use qserv_proto::v1::agent_client::AgentClient;
use qserv_proto::v1::*;
use tonic::transport::Channel;

const SCRIPT: &str = "CREATE DATABASE qservw_worker;\n\
    CREATE TABLE qservw_worker.QMetadata (metakey CHAR(64) NOT NULL PRIMARY KEY, value TEXT);\n\
    INSERT INTO qservw_worker.QMetadata VALUES ('version', '1');\n";

fn target(instance: &str, node: &str, role: Role, epoch: u64) -> Option<CommandTarget> {
    Some(CommandTarget {
        instance: instance.to_owned(),
        node: node.to_owned(),
        role: role.into(),
        epoch,
        fencing_token: 0,
    })
}

fn migrate(target: Option<CommandTarget>) -> MigrateRequest {
    MigrateRequest {
        job_id: "j1".to_owned(),
        ..shipment_request(target, &[("migrate-None-to-1.sql", SCRIPT)], None)
    }
}

fn set_mode(target: Option<CommandTarget>, mode: Mode) -> SetModeRequest {
    SetModeRequest {
        target,
        mode: mode.into(),
        release: None,
    }
}

/// The code and message of a refused call; panics on success.
fn refused<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> String {
    match result {
        Ok(reply) => panic!("accepted: {:?}", reply.into_inner()),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
            status.message().to_owned()
        }
    }
}

fn qserv_databases(db: &MariaDb) -> String {
    db.execute("SHOW DATABASES LIKE 'qserv%'")
}

#[test]
fn an_agent_refuses_commands_not_meant_for_it_and_changes_nothing() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut agent = AgentProcess::start("worker-1", "worker", &db, dir.path());
    agent.set_args(&["--service-controller", "exec", "--service-cmd", "sleep 600"]);
    agent.restart();
    let url = agent.url();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let channel = Channel::from_shared(url)
            .unwrap_or_else(|e| panic!("{e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut client = AgentClient::new(channel);
        let me = |epoch| target("dr1", "worker-1", Role::Worker, epoch);

        // Another node, another role, no target at all.
        let why = refused(
            client
                .migrate(migrate(target("dr1", "worker-2", Role::Worker, 1)))
                .await,
        );
        assert!(
            why.contains("this agent is worker-1 (worker)") && why.contains("meant for worker-2"),
            "{why}"
        );
        let why = refused(
            client
                .migrate(migrate(target("dr1", "worker-1", Role::Czar, 1)))
                .await,
        );
        assert!(why.contains("meant for worker-1 (czar)"), "{why}");
        let status = client.migrate(migrate(None)).await.err().map(|s| s.code());
        assert_eq!(status, Some(tonic::Code::InvalidArgument));

        // Bound to dr1 by its first mode; dr2 is refused from then on.
        let reply = client
            .set_mode(set_mode(me(5), Mode::Maintenance))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        let status = reply.status.unwrap_or_default();
        assert_eq!(
            (status.instance.as_str(), status.epoch, status.seen_epoch),
            ("dr1", 5, 5)
        );
        let why = refused(
            client
                .migrate(migrate(target("dr2", "worker-1", Role::Worker, 9)))
                .await,
        );
        assert!(
            why.contains("belongs to instance 'dr1', not 'dr2'"),
            "{why}"
        );

        // A stale epoch, for a command and for a mode.
        let why = refused(client.migrate(migrate(me(4))).await);
        assert!(
            why.contains("stale epoch 4") && why.contains("seen epoch 5"),
            "{why}"
        );
        let why = refused(client.set_mode(set_mode(me(3), Mode::Normal)).await);
        assert!(why.contains("stale epoch 3"), "{why}");

        // Normal with services running: no change.
        client
            .set_mode(set_mode(me(6), Mode::Normal))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let running = until(&mut client, "services running", |s| {
            s.services == i32::from(ServiceState::Running)
        })
        .await;
        assert_eq!(running.mode, i32::from(Mode::Normal));
        let why = refused(client.migrate(migrate(me(6))).await);
        assert!(
            why.contains("holds mode normal") && why.contains("qserv down"),
            "{why}"
        );
        let why = refused(client.purge(PurgeRequest { target: me(6) }).await);
        assert!(why.contains("holds mode normal"), "{why}");
        assert_eq!(qserv_databases(&db), "", "nothing was created");

        // Maintenance: the migration runs, and its reply already shows version 1.
        client
            .set_mode(set_mode(me(7), Mode::Maintenance))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        until(&mut client, "services stopped", |s| {
            s.services == i32::from(ServiceState::Stopped)
        })
        .await;
        let before = client
            .get_status(AgentStatusRequest {})
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        let reply = client
            .migrate(migrate(me(7)))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        let status = reply.status.unwrap_or_default();
        assert_eq!(
            status.schemas.first().and_then(|s| s.version),
            Some(1),
            "{status:?}"
        );
        assert!(
            status.seq > before.seq,
            "a fresh status: {} after {}",
            status.seq,
            before.seq
        );
        assert_eq!(qserv_databases(&db), "qserv_agent\nqservw_worker");

        let probed = client
            .probe(ProbeRequest::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert!(probed.seq > status.seq, "a probe publishes a newer status");
        assert_eq!(probed.boot_id, status.boot_id);
        // A probe of the services only checks nothing: it returns what stands.
        let services = client
            .probe(ProbeRequest {
                scope: ProbeScope::Services.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert_eq!(services.seq, probed.seq, "nothing new published");
        assert_eq!(services.schemas, probed.schemas);
    });
    drop(runtime);

    // The binding and the highest epoch survive a restart.
    let boot = {
        agent.restart();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(async {
            let mut client = AgentClient::connect(agent.url())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let why = refused(
                client
                    .migrate(migrate(target("dr1", "worker-1", Role::Worker, 6)))
                    .await,
            );
            assert!(
                why.contains("stale epoch 6") && why.contains("seen epoch 7"),
                "{why}"
            );
            let status = client
                .get_status(AgentStatusRequest {})
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .into_inner();
            assert_eq!((status.instance.as_str(), status.seen_epoch), ("dr1", 7));
            status.boot_id
        })
    };
    assert!(!boot.is_empty());
}

/// Polls the agent's status until `check` accepts it (30 s at most).
async fn until(
    client: &mut AgentClient<Channel>,
    what: &str,
    check: impl Fn(&AgentStatus) -> bool,
) -> AgentStatus {
    for _ in 0..1500 {
        let status = client
            .get_status(AgentStatusRequest {})
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        if check(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

fn shipment_request(
    target: Option<CommandTarget>,
    files: &[(&str, &str)],
    current: Option<i64>,
) -> MigrateRequest {
    let set = qserv_migrations::MigrationSet::for_module(
        qserv_migrations::Module::Worker,
        files
            .iter()
            .map(|(n, c)| ((*n).to_owned(), (*c).to_owned())),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let shipment = set
        .shipment(qserv_migrations::Module::Worker, current)
        .unwrap_or_else(|e| panic!("{e}"));
    MigrateRequest {
        target,
        module: "worker".to_owned(),
        scripts: shipment
            .scripts
            .into_iter()
            .map(|(file_name, content)| MigrationScript { file_name, content })
            .collect(),
        job_id: "j2".to_owned(),
        requested_by: "test".to_owned(),
        stop_at: shipment.stop_at,
        manifest: shipment
            .manifest
            .into_iter()
            .map(|e| ManifestEntry {
                file_name: e.file_name,
                checksum: e.checksum,
            })
            .collect(),
        manifest_digest: shipment.digest,
    }
}

fn repair_request(
    target: Option<CommandTarget>,
    version: i64,
    force: bool,
    max_version: Option<i64>,
) -> RepairRequest {
    RepairRequest {
        target,
        module: "worker".to_owned(),
        version,
        job_id: "j3".to_owned(),
        requested_by: "op@host".to_owned(),
        force,
        reason: "checked by hand".to_owned(),
        max_version,
    }
}

#[test]
fn an_agent_checks_what_it_is_sent_and_guards_repairs() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let agent = AgentProcess::start("worker-1", "worker", &db, dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let slow = "DO SLEEP(3);\nCREATE TABLE qservw_worker.t2 (x INT);\n";
    let files = [
        ("migrate-None-to-1.sql", SCRIPT),
        ("migrate-1-to-2.sql", slow),
        (
            "migrate-2-to-3.sql",
            "CREATE TABLE qservw_worker.t3 (x INT);\n",
        ),
    ];
    runtime.block_on(async {
        let mut client = AgentClient::connect(agent.url())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let me = || target("dr1", "worker-1", Role::Worker, 1);
        client
            .set_mode(set_mode(me(), Mode::Maintenance))
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        // A list that does not match its digest, or a text that does not match the list.
        let mut damaged = shipment_request(me(), &files, None);
        damaged.manifest.pop();
        let why = refused(client.migrate(damaged).await);
        assert!(why.contains("does not match its digest"), "{why}");
        let mut damaged = shipment_request(me(), &files, None);
        damaged.scripts[0]
            .content
            .push_str("DROP DATABASE mysql;\n");
        let why = refused(client.migrate(damaged).await);
        assert!(why.contains("does not match its checksum"), "{why}");
        assert_eq!(qserv_databases(&db), "", "nothing ran");

        // Planned from a view newer than the database: the agent lacks a script and says so.
        let stale = client
            .migrate(shipment_request(me(), &files, Some(2)))
            .await
            .err()
            .unwrap_or_else(|| panic!("a stale plan was accepted"));
        assert_eq!(stale.code(), tonic::Code::OutOfRange, "{stale:?}");
        let why = stale.message().to_owned();
        assert!(
            why.contains("needs migrate-None-to-1.sql") && why.contains("run the command again"),
            "{why}"
        );

        // A repair of a clean database, or outside 0..=target, is refused.
        client
            .migrate(shipment_request(me(), &files[..1], None))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let why = refused(client.repair(repair_request(me(), 1, false, Some(3))).await);
        assert!(why.contains("is not dirty"), "{why}");
        let why = refused(client.repair(repair_request(me(), -1, true, Some(3))).await);
        assert!(why.contains("versions start at 0"), "{why}");
        let why = refused(client.repair(repair_request(me(), 4, true, Some(3))).await);
        assert!(why.contains("above qservw_worker's target 3"), "{why}");

        // Never while a migration of the module runs here: its caller gave up (the agent
        // serializes commands, so only a migration whose request is gone can overlap), but the
        // migration goes on.
        let mut migrating = client.clone();
        let running = tokio::spawn(async move {
            migrating
                .migrate(shipment_request(me(), &files, Some(1)))
                .await
        });
        tokio::time::sleep(Duration::from_millis(1000)).await;
        running.abort();
        let why = refused(client.repair(repair_request(me(), 1, true, Some(3))).await);
        assert!(
            why.contains("a migration of qservw_worker is running"),
            "{why}"
        );
        until(&mut client, "the abandoned migration finished", |s| {
            s.schemas.first().and_then(|m| m.version) == Some(3)
        })
        .await;
    });

    // ...nor while another migrator (smig, by hand) holds the database's lock.
    std::thread::scope(|scope| {
        let holder = scope
            .spawn(|| db.execute("SELECT GET_LOCK('qserv_migrate.qservw_worker', 0), SLEEP(4)"));
        std::thread::sleep(Duration::from_millis(800));
        let why = runtime.block_on(async {
            let mut client = AgentClient::connect(agent.url())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let me = target("dr1", "worker-1", Role::Worker, 1);
            refused(client.repair(repair_request(me, 3, true, Some(3))).await)
        });
        assert!(why.contains("holds its lock"), "{why}");
        assert_eq!(
            holder.join().ok().as_deref(),
            Some("1\t0"),
            "the lock was held"
        );
    });
    let repairs = db.execute("SELECT COUNT(*) FROM qserv_agent.repairs");
    assert_eq!(repairs, "0", "no refused repair was recorded");
}
