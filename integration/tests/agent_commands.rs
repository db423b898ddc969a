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
    })
}

fn migrate(target: Option<CommandTarget>) -> MigrateRequest {
    MigrateRequest {
        target,
        module: "worker".to_owned(),
        scripts: vec![MigrationScript {
            file_name: "migrate-None-to-1.sql".to_owned(),
            content: SCRIPT.to_owned(),
        }],
        job_id: "j1".to_owned(),
        requested_by: "test".to_owned(),
    }
}

fn set_mode(target: Option<CommandTarget>, mode: Mode) -> SetModeRequest {
    SetModeRequest {
        target,
        mode: mode.into(),
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
            .probe(ProbeRequest {})
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert!(probed.seq > status.seq, "a probe publishes a newer status");
        assert_eq!(probed.boot_id, status.boot_id);
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
