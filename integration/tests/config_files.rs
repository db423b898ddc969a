//! A service's configuration file on a real agent (DESIGN §17): rendered from a template with
//! the node's values and its secrets, compared (secrets masked), staged, installed with the
//! previous file kept, put back, and watched for hand edits.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use qserv_integration::cluster::SECRET_QSMASTER;
use qserv_integration::{AgentProcess, MariaDb};
use qserv_proto::v1::agent_client::AgentClient;
use qserv_proto::v1::*;
use tonic::transport::Channel;

const TEMPLATE: &str = "[http]\nname = {{ node }}.{{ instance }} ({{ role }})\npassword = {{ mysqld_user_qserv_password }}\n";

fn me(epoch: u64) -> Option<CommandTarget> {
    Some(CommandTarget {
        instance: "dr1".to_owned(),
        node: "czar-0".to_owned(),
        role: Role::Czar.into(),
        epoch,
        fencing_token: 0,
    })
}

fn prepare(template: &str, stage: bool) -> PrepareConfigRequest {
    PrepareConfigRequest {
        target: me(1),
        service: "czar-http".to_owned(),
        template: template.to_owned(),
        stage,
    }
}

fn commit(version: u32, sha: &str, restore: bool, rolling: bool) -> CommitConfigRequest {
    CommitConfigRequest {
        target: me(1),
        service: "czar-http".to_owned(),
        version,
        rendered_sha256: sha.to_owned(),
        restore,
        rolling,
    }
}

fn refused<T: std::fmt::Debug>(result: Result<tonic::Response<T>, tonic::Status>) -> String {
    match result {
        Ok(reply) => panic!("accepted: {:?}", reply.into_inner()),
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
            status.message().to_owned()
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Waits until the agent's status shows `czar-http` with this version and drift.
async fn shows(client: &mut AgentClient<Channel>, version: u32, drift: bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = client
            .get_status(AgentStatusRequest {})
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        let service = status
            .service_states
            .iter()
            .find(|s| s.name == "czar-http")
            .cloned();
        if service
            .as_ref()
            .is_some_and(|s| s.config_version == version && s.config_drift == drift)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "czar-http never showed version {version}, drift {drift}: {service:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_config_file_is_rendered_staged_installed_watched_and_put_back() {
    let db = MariaDb::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut agent = AgentProcess::start("czar-0", "czar", &db, dir.path());
    let file = dir.path().join("czar-http.cnf");
    std::fs::write(&file, "[http]\nname = by hand\n").unwrap_or_else(|e| panic!("{e}"));
    let config = agent.dir().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "service-controller = \"exec\"\n[[services]]\nname = \"czar-http\"\nexec = \"sleep 600\"\nconfig = \"{}\"\n",
            file.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    agent.set_args(&["--config", &config.display().to_string()]);
    agent.restart();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let mut client = AgentClient::connect(agent.url())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        client
            .set_mode(SetModeRequest {
                target: me(1),
                mode: Mode::Maintenance.into(),
                release: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));

        // What would change, with the password masked; nothing written.
        let diff = client
            .prepare_config(prepare(TEMPLATE, false))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert!(diff.diff.contains("-name = by hand"), "{}", diff.diff);
        assert!(
            diff.diff.contains("+name = czar-0.dr1 (czar)"),
            "{}",
            diff.diff
        );
        assert!(
            diff.diff.contains("+password = [redacted]"),
            "{}",
            diff.diff
        );
        assert!(!diff.diff.contains(SECRET_QSMASTER));
        assert_eq!(read(&file), "[http]\nname = by hand\n");

        // Staged, then installed: the file holds the secret, mode 0640, the old one beside it.
        let staged = client
            .prepare_config(prepare(TEMPLATE, true))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert_eq!(read(&file), "[http]\nname = by hand\n", "staging alone");
        let why = refused(client.commit_config(commit(1, "0000", false, false)).await);
        assert!(why.contains("not the one prepared"), "{why}");
        client
            .commit_config(commit(1, &staged.rendered_sha256, false, false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read(&file),
            format!("[http]\nname = czar-0.dr1 (czar)\npassword = {SECRET_QSMASTER}\n")
        );
        // Asked again (a resumed job), the commit finds its file in place and changes nothing.
        client
            .commit_config(commit(1, &staged.rendered_sha256, false, false))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&file).map(|m| m.permissions().mode() & 0o777);
        assert_eq!(mode.ok(), Some(0o640));
        assert_eq!(
            read(&dir.path().join("czar-http.cnf.qserv-previous")),
            "[http]\nname = by hand\n"
        );
        shows(&mut client, 1, false).await;
        let again = client
            .prepare_config(prepare(TEMPLATE, false))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .into_inner();
        assert_eq!(again.diff, "", "nothing would change");

        // A template with an undefined value is refused, naming it; no file changes.
        let why = refused(
            client
                .prepare_config(prepare("a = {{ no_such_value }}\n", true))
                .await,
        );
        assert!(why.contains("'no_such_value'"), "{why}");
        assert!(read(&file).contains("czar-0.dr1"));

        // A hand edit shows as drift within seconds.
        std::fs::write(&file, "edited\n").unwrap_or_else(|e| panic!("{e}"));
        shows(&mut client, 1, true).await;

        // In normal, only a rolling apply writes.
        client
            .set_mode(SetModeRequest {
                target: me(2),
                mode: Mode::Normal.into(),
                release: None,
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let at = |mut r: CommitConfigRequest| {
            r.target = me(2);
            r
        };
        let why = refused(client.commit_config(at(commit(0, "", true, false))).await);
        assert!(why.contains("rolling"), "{why}");
        assert_eq!(read(&file), "edited\n");

        // The previous file put back (a rolling rollback): what was there before the install.
        client
            .commit_config(at(commit(0, "", true, true)))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read(&file), "[http]\nname = by hand\n");
        shows(&mut client, 0, false).await;
    });
    assert!(
        !agent.log_text().contains(SECRET_QSMASTER),
        "no secret in the agent's log"
    );
}
