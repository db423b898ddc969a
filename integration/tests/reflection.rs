//! gRPC server reflection: operators' tools (grpcurl, grpcui, Postman) explore the coordinator's
//! and an agent's API without the `.proto` files, and only whom a read would answer may.

use std::path::Path;

use qserv_integration::{Cluster, THREE_NODES, run_cli};
use qserv_proto::tls::TlsFiles;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

fn certs(dir: &Path) {
    let dir_flag = format!("--dir={}", dir.display());
    let out = run_cli(
        "http://127.0.0.1:1",
        &[
            "certs",
            "init",
            &dir_flag,
            "--coordinator=127.0.0.1,localhost",
            "--agent=czar-0=127.0.0.1,localhost",
            "--agent=worker-1=127.0.0.1,localhost",
            "--agent=repl-0=127.0.0.1,localhost",
        ],
    );
    assert_eq!(out.code, 0, "certs init failed: {}", out.stderr);
}

/// What one reflection request answers at `url`, presenting `<client>.pem`; the gRPC error
/// as `Code: message` when refused.
fn ask(
    url: &str,
    pki: &Path,
    client: &str,
    request: MessageRequest,
) -> Result<MessageResponse, String> {
    let files = TlsFiles {
        cert: pki.join(format!("{client}.pem")),
        key: pki.join(format!("{client}.key")),
        ca: pki.join("ca.pem"),
    };
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        runtime.block_on(async move {
            let tls = files.client().map_err(|e| e.to_string())?;
            let endpoint = qserv_proto::transport::secure_endpoint(&url, Some(&tls))
                .map_err(|e| e.to_string())?;
            let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
            let question = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            };
            let mut answers = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter([question]))
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                .into_inner();
            let answer: Option<ServerReflectionResponse> = answers
                .message()
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?;
            answer
                .and_then(|a| a.message_response)
                .ok_or_else(|| "no answer".to_owned())
        })
    })
    .join()
    .unwrap_or_else(|_| Err("the client thread panicked".to_owned()))
}

fn services(answer: Result<MessageResponse, String>) -> Vec<String> {
    match answer {
        Ok(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("expected a service list, got {other:?}"),
    }
}

#[test]
fn reflection_lists_and_describes_the_api_to_whom_a_read_would_answer() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pki = dir.path().join("pki");
    certs(&pki);
    let cluster = Cluster::start_secure("dr1", &THREE_NODES, &pki);
    let coordinator = cluster.coordinator.url();
    let list = || MessageRequest::ListServices(String::new());

    // A viewer may read, so it may explore.
    let listed = services(ask(&coordinator, &pki, "viewer", list()));
    assert!(
        listed.contains(&"qserv.v1.Coordinator".to_owned())
            && listed.contains(&"grpc.health.v1.Health".to_owned()),
        "{listed:?}"
    );
    assert!(
        !listed.contains(&"qserv.v1.Agent".to_owned()),
        "the coordinator lists its own service only: {listed:?}"
    );
    // The descriptor a tool builds its requests from names the methods and their messages.
    match ask(
        &coordinator,
        &pki,
        "viewer",
        MessageRequest::FileContainingSymbol("qserv.v1.Coordinator".to_owned()),
    ) {
        Ok(MessageResponse::FileDescriptorResponse(files)) => {
            let bytes: Vec<u8> = files.file_descriptor_proto.concat();
            let text = String::from_utf8_lossy(&bytes);
            for name in ["GetStatus", "UpgradePlanReply", "JobState"] {
                assert!(text.contains(name), "{name} is not described");
            }
        }
        other => panic!("expected descriptors, got {other:?}"),
    }
    // An agent's certificate reads nothing from the coordinator, reflection included.
    let refused = ask(&coordinator, &pki, "agent-worker-1", list());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.starts_with("PermissionDenied") && e.contains("explore the API")),
        "{refused:?}"
    );

    // An agent answers the coordinator's certificate, and nobody else's.
    let agent = cluster.agents[1].url();
    let listed = services(ask(&agent, &pki, "coordinator", list()));
    assert!(listed.contains(&"qserv.v1.Agent".to_owned()), "{listed:?}");
    let refused = ask(&agent, &pki, "operator", list());
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.starts_with("PermissionDenied")),
        "{refused:?}"
    );
}
